"""Recording: a valid MIDI file and a JSONL log, readable up to the last bar after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import mido
import pytest

from liveagent.live.engine.clocks import ManualClock
from liveagent.live.engine.loop import Engine, EngineConfig
from liveagent.live.engine.recording import Recorder
from liveagent.live.events import NoteEvent
from liveagent.music.tokens import HOLD, onset
from tests.live.engine_helpers import FakeSink, script_policy

MS = 1_000_000
REPO = Path(__file__).resolve().parents[2]


def test_recorder_writes_a_valid_midi_file_and_log(tmp_path: Path) -> None:
    clock = ManualClock(bpm=125)
    rec = Recorder(tmp_path, name="s", bpm=120, now=clock.time)
    rec.performer_note(500 * MS, 60, 100)  # half a second = one beat at 120 BPM
    rec.agent_note(500 * MS, 48, 80)
    rec.performer_note(1000 * MS, 60, 0)
    rec.tempo(1000 * MS, 60.0)
    rec.agent_note(2000 * MS, 48, 0)  # one beat at 60 BPM after the tempo change
    rec.event(2000 * MS, "policy", name="x")
    rec.flush()
    mid = mido.MidiFile(str(rec.midi_path))
    assert mid.type == 1 and len(mid.tracks) == 3 and mid.ticks_per_beat == 480
    tempos = [m.tempo for m in mid.tracks[0] if m.type == "set_tempo"]
    assert tempos == [500_000, 1_000_000]
    perf = [(m.type, m.note, m.time) for m in mid.tracks[1] if m.type.startswith("note")]
    assert perf == [("note_on", 60, 480), ("note_off", 60, 480)]
    agent = [(m.type, m.note, m.channel, m.time) for m in mid.tracks[2] if m.type.startswith("note")]
    assert agent == [("note_on", 48, 1, 480), ("note_off", 48, 1, 960)]
    assert abs(mid.length - 2.0) < 1e-6
    lines = [json.loads(x) for x in rec.log_path.read_text().splitlines()]
    assert lines[0]["kind"] == "session" and lines[-1] == {"t": 2.0, "kind": "policy", "name": "x"}
    assert sum(1 for x in lines if x["kind"] == "note") == 4
    rec.close()
    rec.close()  # idempotent
    assert not list(tmp_path.glob("*.tmp"))


def test_unique_default_names(tmp_path: Path) -> None:
    a = Recorder(tmp_path)
    b = Recorder(tmp_path)
    assert a.midi_path != b.midi_path and a.midi_path.exists() and b.midi_path.exists()
    a.close()
    b.close()


def test_engine_records_both_tracks_and_flushes_every_bar(tmp_path: Path) -> None:
    clock = ManualClock(bpm=125)
    sink = FakeSink(now=clock.time)
    rec = Recorder(tmp_path, name="e", bpm=125, now=clock.time)
    pol = script_policy(default=HOLD, tokens={1: onset(40), 5: onset(43)})
    # The agent plays from step 1, before the performer's note: the silence gate is off.
    cfg = EngineConfig(lead_ms=5, warmup_calls=0, waits_for_performer=False)
    eng = Engine(pol, sink, clock, cfg, recorder=rec)
    clock.start(at_ns=10 * MS)
    eng.run_until(500 * MS)
    eng.submit(NoteEvent(500 * MS, 64, 90))
    eng.run_until(10 * MS + 16 * 120 * MS + 1)  # past the bar line of bar 1
    flushes = rec.flushes
    assert flushes >= 3  # at creation, bar 0, bar 1
    mid = mido.MidiFile(str(rec.midi_path))
    assert [m.note for m in mid.tracks[1] if m.type == "note_on"] == [64]
    assert [m.note for m in mid.tracks[2] if m.type == "note_on"] == [40, 43]
    eng.close()
    mid = mido.MidiFile(str(rec.midi_path))
    assert [m.type for m in mid.tracks[2] if m.type.startswith("note")][-1] == "note_off"
    kinds = [json.loads(x)["kind"] for x in rec.log_path.read_text().splitlines()]
    assert kinds[0] == "session" and "start" in kinds and kinds[-1] == "end"


CHILD = textwrap.dedent(
    """
    import sys, time, threading
    sys.path.insert(0, {repo!r})
    from liveagent.live.engine.clocks import InternalClock
    from liveagent.live.engine.loop import Engine, EngineConfig
    from liveagent.live.events import NoteEvent
    from liveagent.live.engine.recording import Recorder
    from liveagent.music.tokens import HOLD, onset
    from tests.live.engine_helpers import FakeSink, script_policy

    rec = Recorder({out!r}, name="killed", bpm=480)
    clock = InternalClock(bpm=480, preroll_ms=20)  # 16ths of 31 ms, a bar every 0.5 s
    pol = script_policy(default=HOLD, tokens={{i: onset(40 + i % 12) for i in range(0, 100000, 3)}})
    eng = Engine(pol, FakeSink(), clock, EngineConfig(lead_ms=3, warmup_calls=2), recorder=rec)
    clock.start()
    eng.start()
    i = 0
    while True:
        eng.submit(NoteEvent(time.perf_counter_ns(), 60 + i % 5, 100))
        time.sleep(0.05)
        eng.submit(NoteEvent(time.perf_counter_ns(), 60 + i % 5, 0))
        i += 1
        print(rec.flushes, flush=True)
    """
)


@pytest.mark.timeout(60)
def test_sigkill_leaves_a_readable_recording_up_to_the_last_bar(tmp_path: Path) -> None:
    code = CHILD.format(repo=str(REPO), out=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if int(line) >= 5:  # a few bars flushed
                break
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    mid = mido.MidiFile(str(tmp_path / "killed.mid"))
    agent = [m for m in mid.tracks[2] if m.type == "note_on"]
    perf = [m for m in mid.tracks[1] if m.type == "note_on"]
    assert len(agent) >= 8 and len(perf) >= 2
    assert mid.length >= 1.0  # at least two bars of 0.5 s
    lines = (tmp_path / "killed.jsonl").read_text().splitlines()
    parsed = [json.loads(x) for x in lines]
    assert parsed[0]["kind"] == "session" and any(p["kind"] == "note" for p in parsed)
    assert not (tmp_path / "killed.mid.tmp").exists() or mid is not None
