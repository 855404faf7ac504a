"""`liveagent render` of sessions as `serve --record` writes them (the Recorder itself, real FluidSynth, the
real CLI): a single note, an agent that played once after a long wait, a long break in the middle. A
musician expects a WAV they can hear: the lead-in cut, the note audible, a break kept as it happened."""

from __future__ import annotations

import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from liveagent.live.engine.recording import Recorder
from tests.live.test_render import require_fluidsynth

pytestmark = pytest.mark.timeout(180)

Note = tuple[str, float, int, float]
"""(who: "p" performer or "a" agent, start s, pitch, duration s)."""


def record(directory: Path, notes: list[Note]) -> Path:
    rec = Recorder(directory, bpm=120.0, beats_per_bar=4)
    t = rec.t0_ns
    for who, at_s, pitch, dur in notes:
        put = rec.performer_note if who == "p" else rec.agent_note
        put(t + round(at_s * 1e9), pitch, 80)
        put(t + round((at_s + dur) * 1e9), pitch, 0)
    rec.close()
    return rec.midi_path


def render(mid: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "liveagent", "render", str(mid), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=150,
    )


def envelope(path: Path, hop_s: float = 0.1) -> tuple[np.ndarray, float]:
    """RMS per ``hop_s`` window (full scale 1) and the file's length in seconds."""
    with wave.open(str(path), "rb") as w:
        rate, ch = w.getframerate(), w.getnchannels()
        x = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float64) / 32768
    mono = x.reshape(-1, ch).mean(axis=1)
    hop = round(hop_s * rate)
    n = len(mono) // hop
    frames = mono[: n * hop].reshape(n, hop)
    return np.sqrt((frames**2).mean(axis=1)), len(mono) / rate


@pytest.mark.parametrize(
    "notes",
    [[("p", 0.0, 60, 0.4)], [("a", 30.0, 43, 0.4)]],
    ids=["one-performer-note", "one-agent-note-after-30s"],
)
def test_render_a_single_note(tmp_path: Path, notes: list[Note]) -> None:
    require_fluidsynth()
    out = tmp_path / "one.wav"
    r = render(record(tmp_path / "rec", notes), out)
    assert r.returncode == 0, r.stderr
    env, seconds = envelope(out)
    loud = np.flatnonzero(env > 10 ** (-40 / 20))
    assert loud.size, "the note is not heard"
    assert loud[0] * 0.1 <= 0.5, f"the note starts {loud[0] * 0.1:.1f} s in: the lead-in was not cut"
    assert seconds <= 8.0, f"{seconds:.1f} s for one note"


def test_render_keeps_a_long_break_and_both_ends_are_heard(tmp_path: Path) -> None:
    """Two bars, a 5-minute break (the band stepped off stage, serve kept recording), two bars."""
    require_fluidsynth()
    phrase = [
        (w, 0.5 * i, p - (24 if w == "a" else 0), 0.45) for i, p in enumerate((60, 62, 64, 65)) for w in "pa"
    ]
    later = [(w, 300.0 + t, p, d) for w, t, p, d in phrase]
    out = tmp_path / "break.wav"
    r = render(record(tmp_path / "rec", phrase + later), out)
    assert r.returncode == 0, r.stderr
    env, seconds = envelope(out)
    assert 300.0 <= seconds <= 310.0, seconds
    heard = env > 10 ** (-40 / 20)
    assert heard[:30].any(), "the first phrase is not heard"
    assert heard[-60:].any(), "the last phrase is not heard"
    assert not heard[100:2900].any(), "sound in the break"
