"""`liveagent render` of a session recorded from the moment `serve` started, where the performer played after
a long wait (setting up on stage: 10 minutes) or had a long break. A review found render refusing these:
it checked for silence by the RMS of the WHOLE rendering, before cutting the lead-in, so 10 minutes of
waiting put one note under the threshold ("is silent ... did the soundfont load?", exit 2), and a session
with no note at all got the same misleading message. Now: a peak check, and "no notes" for no notes."""

from __future__ import annotations

import subprocess
import sys
import wave
from pathlib import Path

from liveagent.live.engine.recording import Recorder
from tests.live.test_render import require_fluidsynth


def record(directory: Path, notes: list[tuple[float, int, float]]) -> Path:
    rec = Recorder(directory, bpm=120.0, beats_per_bar=4)
    for at_s, pitch, dur in notes:
        rec.performer_note(rec.t0_ns + round(at_s * 1e9), pitch, 80)
        rec.performer_note(rec.t0_ns + round((at_s + dur) * 1e9), pitch, 0)
    rec.close()
    return rec.midi_path


def render(mid: Path, out: Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "liveagent", "render", str(mid), "-o", str(out)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=150)


def test_one_note_after_ten_minutes_of_waiting(tmp_path: Path) -> None:
    require_fluidsynth()
    out = tmp_path / "late.wav"
    r = render(record(tmp_path / "rec", [(600.0, 60, 0.2)]), out)
    assert r.returncode == 0, r.stderr
    with wave.open(str(out)) as w:
        assert w.getnframes() / w.getframerate() < 8.0


def test_a_phrase_after_twenty_minutes_of_break(tmp_path: Path) -> None:
    require_fluidsynth()
    phrase = [(0.5 * i, p, 0.45) for i, p in enumerate((60, 62, 64, 65))]
    later = [(1200.0 + t, p, d) for t, p, d in phrase]
    r = render(record(tmp_path / "rec", phrase + later), tmp_path / "b.wav")
    assert r.returncode == 0, r.stderr


def test_a_session_with_no_notes_says_so(tmp_path: Path) -> None:
    require_fluidsynth()
    r = render(record(tmp_path / "rec", []), tmp_path / "none.wav")
    assert r.returncode == 2
    assert "no note" in r.stderr and "soundfont" not in r.stderr, r.stderr


def test_a_corrupt_midi_file_is_a_clear_error(tmp_path: Path) -> None:
    require_fluidsynth()
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"MThd\x00\x00\x00\x06garbage")
    r = render(bad, tmp_path / "bad.wav")
    assert r.returncode == 2 and "not a readable MIDI file" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
