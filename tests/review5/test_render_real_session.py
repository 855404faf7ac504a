"""From the stage to a sound file, all real: `serve --policy style --mood busy --record DIR` answers a
performer over UDP, is stopped with SIGTERM, and `liveagent render` turns its recording into a WAV that holds
both players; `liveagent demo --policy style --mood calm` writes a duet.wav that is not silent."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import mido
import pytest

from liveagent.live.commands.render import SILENCE_RMS, wav_rms
from tests.live.serve_helpers import ServeProcess, wait_until
from tests.live.test_render import require_fluidsynth
from tests.review5.helpers import Performer

pytestmark = pytest.mark.timeout(200)

BPM = 120.0


def test_render_a_session_recorded_by_serve(tmp_path: Path) -> None:
    require_fluidsynth()
    rec = tmp_path / "rec"
    with ServeProcess(
        "--policy", "style", "--mood", "busy", "--bpm", f"{BPM:g}", "--record", str(rec), "--autostart"
    ) as serve:
        with Performer(serve, BPM):
            assert wait_until(lambda: serve.status()["notes_out"] >= 6, 20), serve.status()
            time.sleep(1.0)
        assert serve.terminate() == 0
    mids = list(rec.glob("*.mid"))
    assert len(mids) == 1, list(rec.iterdir())
    tracks = {
        next((m.name for m in t if m.type == "track_name"), ""): sum(
            m.type == "note_on" and m.velocity > 0 for m in t
        )
        for t in mido.MidiFile(str(mids[0])).tracks
    }
    assert sum(n for name, n in tracks.items() if "agent" in name.lower()) >= 6, tracks
    assert sum(n for name, n in tracks.items() if "agent" not in name.lower()) >= 4, tracks
    out = tmp_path / "session.wav"
    r = subprocess.run(
        [sys.executable, "-m", "liveagent", "render", str(mids[0]), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert r.returncode == 0, r.stderr
    assert wav_rms(out) > SILENCE_RMS


def test_demo_in_a_mood_writes_a_duet_wav(tmp_path: Path) -> None:
    require_fluidsynth()
    out = tmp_path / "out"
    demo = [sys.executable, "-m", "liveagent", "demo", "--no-monitor", "--policy", "style", "--mood", "calm"]
    r = subprocess.run(
        [*demo, "--melody", "ode", "--bars", "2", "--bpm", "150", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    wav = out / "duet.wav"
    assert wav.is_file(), list(out.iterdir())
    assert wav_rms(wav) > SILENCE_RMS
