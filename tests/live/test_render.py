"""`liveagent render` and the FluidSynth rendering: a real fluidsynth subprocess, the WAV read back."""

from __future__ import annotations

import subprocess
import sys
import wave
from pathlib import Path

import mido
import numpy as np
import pytest

from liveagent.live.commands.duet import write_duet_midi
from liveagent.live.commands.render import (
    AGENT_PROGRAM,
    PERFORMER_PROGRAM,
    SILENCE_RMS,
    RenderError,
    find_soundfont,
    render_wav,
    wav_rms,
    with_instruments,
)
from liveagent.live.engine.recording import Recorder
from liveagent.music.tokens import Grid, Note
from tests.support import require, require_tool

pytestmark = pytest.mark.timeout(120)


def require_fluidsynth() -> None:
    require_tool("fluidsynth")
    try:
        find_soundfont()
    except Exception as e:
        require(False, f"no General MIDI soundfont ({e})")


def duet(path: Path) -> Path:
    grid = Grid(4, 4)
    perf = [Note(4 * i, 4, p, 90) for i, p in enumerate((64, 64, 65, 67))]
    agent = [Note(4 * i, 4, p, 75) for i, p in enumerate((48, 52, 53, 55))]
    return write_duet_midi(path, perf, agent, 120.0, grid)


def programs(path: Path) -> dict[int, int]:
    tracks = mido.MidiFile(str(path)).tracks
    return {m.channel: m.program for t in tracks for m in t if m.type == "program_change"}


def note_messages(path: Path) -> list[tuple[str, int, int]]:
    tracks = mido.MidiFile(str(path)).tracks
    return [(m.type, m.note, m.channel) for t in tracks for m in t if "note" in m.type]


def test_with_instruments_gives_each_part_its_program(tmp_path: Path) -> None:
    src = duet(tmp_path / "duet.mid")
    dst = with_instruments(src, tmp_path / "inst.mid")
    assert programs(dst) == {0: PERFORMER_PROGRAM, 1: AGENT_PROGRAM}
    assert note_messages(dst) == note_messages(src)
    assert mido.MidiFile(str(dst)).length == pytest.approx(mido.MidiFile(str(src)).length)


def test_render_cli_writes_a_non_silent_wav(tmp_path: Path) -> None:
    require_fluidsynth()
    src = duet(tmp_path / "duet.mid")
    out = tmp_path / "duet.wav"
    r = subprocess.run(
        [sys.executable, "-m", "liveagent", "render", str(src), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert r.returncode == 0, r.stderr
    with wave.open(str(out), "rb") as w:
        assert w.getframerate() == 44100 and w.getnchannels() == 2 and w.getsampwidth() == 2
        seconds = w.getnframes() / 44100
    assert seconds >= 2.0  # 2 bars at 120 BPM (FluidSynth adds its release tail)
    rms = wav_rms(out)
    assert rms > SILENCE_RMS, rms
    assert f"RMS {rms:.3f}" in r.stdout


def wav_peak_dbfs_and_lead_s(path: Path) -> tuple[float, float]:
    """Peak (dBFS) of a 16-bit WAV and the seconds before its first sample above -50 dBFS."""
    with wave.open(str(path), "rb") as w:
        assert w.getsampwidth() == 2
        rate, ch = w.getframerate(), w.getnchannels()
        x = np.abs(np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float64)) / 32768
    loud = np.flatnonzero(x >= 10 ** (-50 / 20))
    assert loud.size, "silent"
    return 20 * np.log10(x.max()), float(loud[0] // ch) / rate


def test_render_is_normalised_and_starts_within_a_beat(tmp_path: Path) -> None:
    """A duet that opens with two bars of rest (as the demo's count-in, or a session recorded from the
    moment serve started) renders at about -1 dBFS peak and starts at most a beat before its first note."""
    require_fluidsynth()
    grid = Grid(4, 4)
    perf = [Note(32 + 4 * i, 4, p, 90) for i, p in enumerate((64, 64, 65, 67))]
    agent = [Note(36 + 4 * i, 4, p, 75) for i, p in enumerate((48, 52, 53))]
    src = write_duet_midi(tmp_path / "late.mid", perf, agent, 120.0, grid)
    out = tmp_path / "late.wav"
    r = subprocess.run(
        [sys.executable, "-m", "liveagent", "render", str(src), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert r.returncode == 0, r.stderr
    peak, lead = wav_peak_dbfs_and_lead_s(out)
    assert -3.0 <= peak <= 0.0, peak
    assert lead <= 0.5, lead  # one beat at 120 BPM (the rest was 4 s)
    assert render_wav(src, tmp_path / "again.wav") == pytest.approx(wav_rms(out), rel=1e-3)


def test_duet_midi_carries_its_programs(tmp_path: Path) -> None:
    """A DAW opening duet.mid plays the performer on piano and the agent on cello, not both on piano."""
    assert programs(duet(tmp_path / "duet.mid")) == {0: PERFORMER_PROGRAM, 1: AGENT_PROGRAM}


def test_render_a_recorded_session(tmp_path: Path) -> None:
    """A session as `serve --record` writes it (the Recorder itself): performer and agent notes."""
    require_fluidsynth()
    rec = Recorder(tmp_path / "rec", bpm=120.0, beats_per_bar=4)
    t = rec.t0_ns
    for i, (p, a) in enumerate(((60, 48), (62, 50), (64, 52), (65, 53))):
        at = t + i * 500_000_000
        rec.performer_note(at, p, 90)
        rec.agent_note(at, a, 80)
        rec.performer_note(at + 450_000_000, p, 0)
        rec.agent_note(at + 450_000_000, a, 0)
    rec.close()
    mid = rec.midi_path
    assert mid.is_file()
    out = tmp_path / "session.wav"
    rms = render_wav(mid, out)
    assert rms > SILENCE_RMS
    assert programs(with_instruments(mid, tmp_path / "i.mid")) == {0: PERFORMER_PROGRAM, 1: AGENT_PROGRAM}


def test_a_file_without_notes_is_an_error_before_rendering(tmp_path: Path) -> None:
    require_fluidsynth()
    mf = mido.MidiFile()
    tr = mido.MidiTrack()
    mf.tracks.append(tr)
    tr.append(mido.MetaMessage("end_of_track", time=480))
    src = tmp_path / "empty.mid"
    mf.save(str(src))
    with pytest.raises(RenderError, match="no notes in"):
        render_wav(src, tmp_path / "empty.wav")


def test_wav_rms_reads_pcm(tmp_path: Path) -> None:
    path = tmp_path / "tone.wav"
    x = (0.5 * 32767 * np.sin(np.linspace(0, 200 * np.pi, 44100))).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(44100)
        w.writeframes(x.tobytes())
    assert wav_rms(path) == pytest.approx(0.5 / np.sqrt(2), rel=1e-3)


def test_render_without_fluidsynth_says_how_to_install(tmp_path: Path) -> None:
    src = duet(tmp_path / "duet.mid")
    r = subprocess.run(
        [sys.executable, "-m", "liveagent", "render", str(src)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": str(tmp_path), "HOME": str(tmp_path)},
    )
    assert r.returncode == 2
    assert "fluidsynth is not installed" in r.stderr
    assert "apt-get install fluidsynth fluid-soundfont-gm" in r.stderr
