"""`liveagent demo` end to end: a melody over real OSC into a real `serve`, the duet and the report out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mido
import pytest

from liveagent.live.commands.duet import agent_notes, builtin_ode, load_melody, performer_events
from liveagent.music.tokens import Grid, Note
from tests.live.policies import PATTERN, write_pattern_policy
from tests.support import require_tool


def _demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "liveagent", "demo", "--no-monitor", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.timeout(150)
def test_demo_writes_duet_pianoroll_and_timing(tmp_path: Path) -> None:
    policy = write_pattern_policy(tmp_path / "pattern.onnx")
    out = tmp_path / "out"
    r = _demo("--melody", "ode", "--bars", "2", "--bpm", "150", "--policy", str(policy), "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "emission lateness at the receiver" in r.stdout
    report = json.loads((out / "timing.json").read_text())
    assert report["policy"] == "pattern" and report["melody"] == "ode"
    lat = report["emission_lateness_at_receiver_us"]
    assert lat["n"] > 20 and lat["p50"] <= lat["p99"] <= lat["max"]
    assert report["performer_notes"] == 8 and report["agent_notes"] >= 8
    assert report["beats_received"] >= 4 * 4  # count-in + 2 bars + tail
    mid = mido.MidiFile(str(out / "duet.mid"))
    names = [t.name for t in mid.tracks]
    assert names == ["performer", "agent"]
    perf = [m.note for m in mid.tracks[0] if m.type == "note_on" and m.velocity > 0]
    agent = [m.note for m in mid.tracks[1] if m.type == "note_on" and m.velocity > 0]
    assert perf == [64, 64, 65, 67, 67, 65, 64, 62]
    assert set(agent) <= set(PATTERN.values()) and len(agent) >= 8

    def first_on(track: mido.MidiTrack) -> int:
        t = 0
        for m in track:
            t += m.time
            if m.type == "note_on" and m.velocity > 0:
                return t
        raise AssertionError("no note")

    # The agent waits for the performer: silent through the count-in bar, it starts after the melody does.
    assert first_on(mid.tracks[1]) > first_on(mid.tracks[0])
    png = (out / "pianoroll.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert list((out / "server-recording").glob("*.mid"))


@pytest.mark.timeout(150)
def test_demo_writes_a_non_silent_duet_wav(tmp_path: Path) -> None:
    """duet.wav through FluidSynth: performer and agent on their own General MIDI programs, audible."""
    require_tool("fluidsynth")
    from liveagent.live.commands.render import AGENT_PROGRAM, PERFORMER_PROGRAM, SILENCE_RMS, wav_rms
    from tests.live.test_render import wav_peak_dbfs_and_lead_s

    policy = write_pattern_policy(tmp_path / "pattern.onnx")
    out = tmp_path / "out"
    r = _demo("--melody", "ode", "--bars", "1", "--bpm", "180", "--policy", str(policy), "--out", str(out))
    assert r.returncode == 0, r.stderr
    wav = out / "duet.wav"
    assert wav.is_file(), r.stdout
    assert wav_rms(wav) > SILENCE_RMS
    peak, lead = wav_peak_dbfs_and_lead_s(wav)
    assert -3.0 <= peak <= 0.0, peak  # it was -24 dBFS
    assert lead <= 60 / 180, lead  # at most a beat (the count-in bar was 1.3 s of silence)
    mid = mido.MidiFile(str(out / "duet.mid"))
    progs = [{m.program for m in t if m.type == "program_change"} for t in mid.tracks]
    assert progs == [{PERFORMER_PROGRAM}, {AGENT_PROGRAM}]
    assert json.loads((out / "timing.json").read_text())["files"]["sound"] == str(wav)
    assert f"sound:      {wav}" in r.stdout


def test_demo_without_fluidsynth_still_writes_its_midi(tmp_path: Path) -> None:
    """No FluidSynth on PATH: a clear line, status 0, the MIDI and the piano roll written."""
    policy = write_pattern_policy(tmp_path / "pattern.onnx")
    out = tmp_path / "out"
    env = {**os.environ, "PATH": os.path.dirname(sys.executable)}
    args = ["--melody", "ode", "--bars", "1", "--bpm", "180", "--policy", str(policy), "--out", str(out)]
    r = subprocess.run(
        [sys.executable, "-m", "liveagent", "demo", "--no-monitor", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert r.returncode == 0, r.stderr
    assert "no duet.wav: fluidsynth is not installed" in r.stdout
    assert (out / "duet.mid").is_file() and (out / "pianoroll.png").is_file()
    assert not (out / "duet.wav").exists()


@pytest.mark.timeout(150)
def test_demo_plays_a_user_midi_file(tmp_path: Path) -> None:
    policy = write_pattern_policy(tmp_path / "pattern.onnx")
    mf = mido.MidiFile(ticks_per_beat=480)
    tr = mido.MidiTrack()
    mf.tracks.append(tr)
    tr.append(mido.Message("note_on", note=72, velocity=80, time=480 * 4))  # a bar of silence first
    tr.append(mido.Message("note_off", note=72, velocity=0, time=480))
    tr.append(mido.Message("note_on", note=74, velocity=80, time=0))
    tr.append(mido.Message("note_off", note=74, velocity=0, time=480))
    path = tmp_path / "mine.mid"
    mf.save(str(path))
    out = tmp_path / "out"
    r = _demo(
        "--melody", str(path), "--bars", "1", "--bpm", "180", "--policy", str(policy), "--out", str(out)
    )
    assert r.returncode == 0, r.stderr
    report = json.loads((out / "timing.json").read_text())
    assert report["melody"] == "mine" and report["performer_notes"] == 2


def test_demo_bad_melody_and_bad_policy_exit_2(tmp_path: Path) -> None:
    r = _demo("--melody", str(tmp_path / "nope.mid"), "--out", str(tmp_path))
    assert r.returncode == 2 and "nope.mid" in r.stderr
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"garbage")
    r = _demo("--melody", "ode", "--policy", str(bad), "--out", str(tmp_path))
    assert r.returncode == 2 and "bad.onnx" in r.stderr


def test_demo_list() -> None:
    r = _demo("--list")
    assert r.returncode == 0 and "ode" in r.stdout.split()


def test_melody_helpers() -> None:
    g = Grid()
    notes = builtin_ode(g)
    assert sum(n.length for n in notes) == 8 * g.steps_per_bar
    name, two = load_melody("ode", g, bars=2)
    assert name == "ode" and sum(n.length for n in two) == 2 * g.steps_per_bar
    ev = performer_events([Note(0, 4, 60), Note(4, 4, 60)], offset=16)
    assert ev == [(16, 60, 80), (20, 60, 0), (20, 60, 80), (24, 60, 0)]  # off before the re-strike
    back = agent_notes([(0, 48, 80), (4, 48, 0), (4, 52, 70), (8, 52, 0)])
    assert [(n.start, n.length, n.pitch) for n in back] == [(0, 4, 48), (4, 4, 52)]
