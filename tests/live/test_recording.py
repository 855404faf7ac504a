"""Recording: a valid MIDI file and a JSONL log, readable up to the last bar after SIGKILL."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
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
from tests.live.policies import PATTERN, write_pattern_policy
from tests.live.receiver_notes import osc_notes
from tests.live.serve_helpers import ServeProcess, env_with, wait_until

LEADS = "--no-wait-for-performer"

MS = 1_000_000


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
    assert a.midi_path != b.midi_path and a.log_path.exists() and b.log_path.exists()  # names reserved
    assert not a.midi_path.exists()  # written at the first flush
    a.close()
    b.close()
    assert a.midi_path.exists() and b.midi_path.exists()


def test_discard_leaves_nothing(tmp_path: Path) -> None:
    """A start that failed: the reserved log (and any MIDI file) go away."""
    rec = Recorder(tmp_path)
    rec.flush()
    rec.discard()
    assert list(tmp_path.iterdir()) == []


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
    assert flushes >= 2  # bar 0, bar 1
    mid = mido.MidiFile(str(rec.midi_path))
    assert [m.note for m in mid.tracks[1] if m.type == "note_on"] == [64]
    assert [m.note for m in mid.tracks[2] if m.type == "note_on"] == [40, 43]
    eng.close()
    mid = mido.MidiFile(str(rec.midi_path))
    assert [m.type for m in mid.tracks[2] if m.type.startswith("note")][-1] == "note_off"
    kinds = [json.loads(x)["kind"] for x in rec.log_path.read_text().splitlines()]
    assert kinds[0] == "session" and "start" in kinds and kinds[-1] == "end"


def _session_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("session-*")) if directory.exists() else []


def _blocked_folder(tmp_path: Path) -> Path:
    """A folder no one can make (its parent is a regular file): fails even for root."""
    (tmp_path / "a-file").write_text("not a folder")
    return tmp_path / "a-file" / "sessions"


@pytest.fixture(scope="module")
def pattern_policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_pattern_policy(tmp_path_factory.mktemp("policy") / "pattern.onnx")


@pytest.mark.timeout(60)
def test_a_bad_default_record_folder_is_a_warning_and_the_show_goes_on(
    pattern_policy: Path, tmp_path: Path
) -> None:
    env = env_with(LIVEAGENT_RECORD_DIR=str(_blocked_folder(tmp_path)))
    with ServeProcess("--policy", str(pattern_policy), "--bpm", "240", "--autostart", LEADS, env=env) as sp:
        assert wait_until(lambda: len(sp.rx.of("/liveagent/out/note")) >= 2), "the show did not go on"
        st = sp.status()
        assert st["record"] == "off" and "a-file" in st["record_error"], st
        assert "record" not in sp.fields
        assert sp.terminate() == 0
    err = "".join(sp.stderr)
    assert "warning" in err and "not recorded" in err and "a-file" in err, err


@pytest.mark.timeout(60)
def test_an_explicit_record_folder_that_fails_is_an_error_before_ready(
    pattern_policy: Path, tmp_path: Path
) -> None:
    r = subprocess.run(
        _serve("--policy", str(pattern_policy), "--record", str(_blocked_folder(tmp_path))),
        capture_output=True,
        text=True,
        timeout=30,  # under the test's 60 s: a serve that runs on fails here with a clear error
    )
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "ready" not in r.stdout
    assert "cannot record" in r.stderr and "a-file" in r.stderr, r.stderr


@pytest.mark.timeout(60)
def test_a_failed_start_leaves_no_session_files(pattern_policy: Path, tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind(("127.0.0.1", 0))
    try:
        port = str(taken.getsockname()[1])
        r = subprocess.run(
            _serve("--policy", str(pattern_policy), "--osc-port", port, "--record", str(rec)),
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        taken.close()
    assert r.returncode == 2 and "ready" not in r.stdout, (r.stdout, r.stderr)
    assert _session_files(rec) == [], "a start that failed left files behind"


def _serve(*args: str) -> list[str]:
    return [sys.executable, "-m", "liveagent", "serve", "--osc-port", "0", *args]


@pytest.mark.timeout(90)
@pytest.mark.parametrize("kill_bar", [6, 7])  # an even and an odd bar: a flush every 2nd bar fails one
def test_sigkill_leaves_the_recording_up_to_the_last_flushed_bar(
    pattern_policy: Path, tmp_path: Path, kill_bar: int
) -> None:
    """A real `serve` recording at 240 BPM (a bar a second) is SIGKILLed in the middle of bar 6 or later.
    The recording holds exactly what the receiver heard up to a flushed bar line: every agent note the
    receiver heard before the line of the bar before the last one it heard began, in order, and nothing it
    did not hear; the log and the MIDI file agree."""
    rec = tmp_path / "rec"
    with ServeProcess(
        "--policy", str(pattern_policy), "--bpm", "240", "--autostart", LEADS, "--record", str(rec)
    ) as sp:
        for p in (72, 74):  # the performer's track too
            sp.send("/liveagent/note", p, 90)
            time.sleep(0.05)
            sp.send("/liveagent/note", p, 0)
        assert wait_until(
            lambda: any(b >= kill_bar and beat >= 2 for b, beat in sp.rx.of("/liveagent/out/beat")), 20
        )
        sp.proc.send_signal(signal.SIGKILL)
        sp.proc.wait(10)
        time.sleep(0.1)  # datagrams in flight
        assert sp.proc.returncode == -signal.SIGKILL
        heard = [(t, p) for t, p, v in osc_notes(sp.rx) if v > 0]
        bar_lines = {
            a[0]: t for t, addr, a in list(sp.rx.messages) if addr == "/liveagent/out/beat" and a[1] == 0
        }
    last_bar = max(bar_lines)
    # killed 2 beats (500 ms) into bar last_bar, whose bar-line flush (slack time, ms after the
    # line) has run: everything heard before that bar line must be in the file
    flushed_by = bar_lines[last_bar]
    must = [p for t, p in heard if t < flushed_by]
    mids = list(rec.glob("*.mid"))
    assert len(mids) == 1
    mf = mido.MidiFile(str(mids[0]))
    recorded = [m.note for m in mf.tracks[2] if m.type == "note_on" and m.velocity > 0]
    assert recorded == [p for _, p in heard][: len(recorded)], "the recording is not what the receiver heard"
    assert len(must) >= 12 and len(recorded) >= len(must), (len(recorded), len(must), last_bar)
    assert len(recorded) <= len(must) + 2 * len(PATTERN), "more than the flushed bars"
    assert [m.note for m in mf.tracks[1] if m.type == "note_on" and m.velocity > 0] == [72, 74]
    lines = [json.loads(x) for x in mids[0].with_suffix(".jsonl").read_text().splitlines()]
    assert lines[0]["kind"] == "session"
    logged = [
        x["pitch"] for x in lines if x["kind"] == "note" and x["track"] == "agent" and x["velocity"] > 0
    ]
    # the log is appended before the MIDI file is replaced: at most one flush ahead of it
    assert logged[: len(recorded)] == recorded and len(logged) - len(recorded) <= len(PATTERN) + 1
