"""`liveagent demo --band satb` end to end: a melody over real OSC into a real `serve --band satb`, the
band's four parts, piano roll, sound and timing out (the solo demo's tests are tests/live/test_demo.py)."""

from __future__ import annotations

import functools
import json
import statistics
import subprocess
import sys
from pathlib import Path

import matplotlib.image as mpimg
import mido
import numpy as np
import pytest

from liveagent.live.commands.band_demo import VOICES
from liveagent.live.commands.duet import PART_COLOURS
from liveagent.live.commands.render import SOPRANO_PROGRAM, VOICE_PROGRAMS
from tests.live.test_band_duet import _pixels_near, _rgb
from tests.support import require, require_tool

ODE_2_BARS = [64, 64, 65, 67, 67, 65, 64, 62]


@functools.cache
def _serve_plays_a_band() -> bool:
    r = subprocess.run(
        [sys.executable, "-m", "liveagent", "serve", "--help"], capture_output=True, text=True, timeout=60
    )
    return "--band" in r.stdout


def _band_demo(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    require(_serve_plays_a_band(), "`liveagent serve --band` is not there yet")
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "liveagent",
            "demo",
            "--no-monitor",
            "--band",
            "satb",
            "--out",
            str(out),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=150,
    )


@pytest.mark.timeout(180)
def test_band_demo_writes_four_parts_pianoroll_timing_and_recording(tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = _band_demo(out, "--melody", "ode", "--bars", "2", "--bpm", "150")
    assert r.returncode == 0, r.stderr
    assert "emission lateness at the receiver" in r.stdout
    report = json.loads((out / "timing.json").read_text())
    assert report["band"] == "satb" and report["voices"] == list(VOICES) and report["melody"] == "ode"
    assert report["performer_notes"] == 8
    assert isinstance(report["misses"], int)
    by_voice = report["emission_lateness_by_voice_us"]
    overall = report["emission_lateness_at_receiver_us"]
    for v in VOICES:
        assert report["voice_notes"][v] >= 2, report["voice_notes"]
        assert by_voice[v]["n"] >= report["voice_notes"][v], (v, by_voice[v])  # on and off of each note
        assert by_voice[v]["p50"] <= by_voice[v]["p99"] <= by_voice[v]["max"]
    assert overall["n"] == sum(by_voice[v]["n"] for v in VOICES) + report["beats_received"]
    assert report["beats_received"] >= 4 * 4  # count-in + 2 bars + tail

    mid = mido.MidiFile(str(out / "duet.mid"))
    assert [t.name for t in mid.tracks] == ["soprano", *VOICES]
    pitches = [[m.note for m in t if m.type == "note_on" and m.velocity > 0] for t in mid.tracks]
    assert pitches[0] == ODE_2_BARS
    assert [len(p) for p in pitches[1:]] == [report["voice_notes"][v] for v in VOICES]
    assert statistics.median(pitches[3]) < statistics.median(pitches[1])  # the bass under the alto
    channels = [{m.channel for m in t if m.type in ("note_on", "note_off")} for t in mid.tracks]
    assert all(len(c) == 1 for c in channels) and len(set.union(*channels)) == 4, channels
    programs = [{m.program for m in t if m.type == "program_change"} for t in mid.tracks]
    assert programs == [{SOPRANO_PROGRAM}, *({VOICE_PROGRAMS[v]} for v in VOICES)]

    img = np.asarray(mpimg.imread(str(out / "pianoroll.png")), dtype=np.float64)
    for part in ("soprano", *VOICES):
        assert _pixels_near(img, _rgb(PART_COLOURS[part]) * 0.9 + 0.1) > 50, part

    # the server's own recording: a track per voice, the voice in its log
    (rec,) = list((out / "server-recording").glob("*.mid"))
    names = [t.name for t in mido.MidiFile(str(rec)).tracks]
    assert names == ["tempo", "performer", *VOICES], names
    lines = [json.loads(x) for x in rec.with_suffix(".jsonl").read_text().splitlines()]
    logged = {x.get("voice") for x in lines if x["kind"] == "note" and x["track"] == "agent"}
    assert logged == set(VOICES), logged


@pytest.mark.timeout(180)
def test_band_demo_writes_a_non_silent_four_part_wav(tmp_path: Path) -> None:
    require_tool("fluidsynth")
    from liveagent.live.commands.render import SILENCE_RMS, wav_rms

    out = tmp_path / "out"
    r = _band_demo(out, "--melody", "ode", "--bars", "1", "--bpm", "180")
    assert r.returncode == 0, r.stderr
    wav = out / "duet.wav"
    assert wav.is_file(), r.stdout
    assert wav_rms(wav) > SILENCE_RMS
    assert json.loads((out / "timing.json").read_text())["files"]["sound"] == str(wav)
    assert "viola" in r.stdout and "contrabass" in r.stdout


def test_band_demo_with_a_one_line_policy_says_why_and_exits_2(tmp_path: Path) -> None:
    """A solo policy cannot play a band: serve refuses it before ready, and the demo passes the reason on."""
    from tests.live.policies import write_pattern_policy

    policy = write_pattern_policy(tmp_path / "pattern.onnx")
    r = _band_demo(tmp_path / "out", "--melody", "ode", "--bars", "1", "--policy", str(policy))
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "failed to start" in r.stderr and "--band" in r.stderr, r.stderr
