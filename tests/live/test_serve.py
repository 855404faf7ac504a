"""`liveagent serve` end to end: a real subprocess, real UDP on loopback, independent peers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import mido
import pytest

from tests.live.policies import PATTERN, write_pattern_policy
from tests.live.receiver_notes import before_first_burst, first_burst_time, osc_notes, overlaps, sounding_at
from tests.live.serve_helpers import ServeProcess, proc_has_torch
from tests.support import require_tool

pytestmark = pytest.mark.timeout(90)

LEADS = "--no-wait-for-performer"
"""The agent leads: it plays from the first step whether or not the performer plays. For the tests about
transport, mute, panic, shutdown and the exact pattern from bar 1, where the agent must be playing on its
own; the silence gate (the default: rest until the performer plays) is tested in
tests/live/test_serve_silence.py."""


@pytest.fixture(scope="module")
def pattern_policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_pattern_policy(tmp_path_factory.mktemp("policy") / "pattern.onnx")


def _wait(pred: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


def test_serve_plays_over_osc_and_shuts_down_clean(pattern_policy: Path, tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    with ServeProcess("--policy", str(pattern_policy), "--bpm", "240", "--record", str(rec), LEADS) as sp:
        assert sp.fields["policy"] == "pattern" and sp.fields["clock"] == "internal"
        assert sp.fields["wait_for_performer"] == "0"
        st = sp.status()
        assert st["policy"] == "pattern" and st["torch_loaded"] == 0
        assert st["waits_for_performer"] == 0 and st["waiting"] == 0
        assert not proc_has_torch(sp.proc.pid)
        sp.send("/liveagent/start")
        # the performer plays a few notes while the agent plays its pattern (from bar 1: it leads)
        for p in (72, 74, 76):
            sp.send("/liveagent/note", p, 90)
            time.sleep(0.1)
            sp.send("/liveagent/note", p, 0)
        assert _wait(lambda: len(sp.rx.of("/liveagent/out/note")) >= 12)
        notes = sp.rx.of("/liveagent/out/note")
        ons = [p for p, v in notes if v > 0]
        assert ons[:4] == [PATTERN[k] for k in sorted(PATTERN)], notes
        beats = sp.rx.of("/liveagent/out/beat")
        assert beats[:3] == [[0, 0], [0, 1], [0, 2]]
        st = sp.status()
        assert st["notes_in"] == 3 and st["steps"] > 0 and st["bpm"] == pytest.approx(240.0)
        rc = sp.terminate(signal.SIGTERM)
        assert rc == 0, sp.stderr
        assert any(ln.startswith("stopped ") for ln in sp.stdout)
        # released by the engine, not by the 128 note-offs that follow on the way out
        assert before_first_burst(osc_notes(sp.rx)) == {}, "a note was left to the exit burst"
    mids = list(rec.glob("*.mid"))
    assert len(mids) == 1
    mf = mido.MidiFile(str(mids[0]))
    agent_ons = [m.note for m in mf.tracks[2] if m.type == "note_on" and m.velocity > 0]
    perf_ons = [m.note for m in mf.tracks[1] if m.type == "note_on" and m.velocity > 0]
    assert perf_ons == [72, 74, 76] and agent_ons[:4] == [48, 52, 55, 60]
    assert list(rec.glob("*.jsonl"))


def test_serve_sigint_stop_mute_panic_leave_no_stuck_note(pattern_policy: Path) -> None:
    """Each release is checked at the receiver before any all-notes-off burst could hide a stuck note
    (the bursts of /panic and of the exit are ignored: only the engine's own note-offs count)."""

    def sounding() -> dict[int, int]:
        return sounding_at(osc_notes(sp.rx))

    with ServeProcess("--policy", str(pattern_policy), "--bpm", "200", "--autostart", LEADS) as sp:
        assert _wait(lambda: len(sp.rx.of("/liveagent/out/note")) >= 3)
        assert _wait(lambda: bool(sounding()))  # the pattern holds each note up to the next
        sp.send("/liveagent/mute", 1)
        time.sleep(0.3)
        assert sounding() == {}, "a note outlived the mute"
        n = len(sp.rx.of("/liveagent/out/note"))
        time.sleep(0.4)
        assert not [v for _, v in sp.rx.of("/liveagent/out/note")[n:] if v > 0], "muted but still playing"
        sp.send("/liveagent/mute", 0)
        assert _wait(lambda: any(v > 0 for _, v in sp.rx.of("/liveagent/out/note")[n:]))
        assert _wait(lambda: bool(sounding()))
        sp.send("/liveagent/stop")  # before any panic: its burst would hide a note the stop left
        time.sleep(0.3)
        assert sounding() == {}, "a note outlived the transport stop"
        m = len(sp.rx.of("/liveagent/out/note"))
        sp.send("/liveagent/start")
        assert _wait(lambda: any(v > 0 for _, v in sp.rx.of("/liveagent/out/note")[m:]))
        assert _wait(lambda: bool(sounding()))
        sp.send("/liveagent/panic")
        assert _wait(lambda: first_burst_time(osc_notes(sp.rx)) is not None)
        assert before_first_burst(osc_notes(sp.rx)) == {}, "panic left a note to its burst"
        assert _wait(lambda: bool(sounding()))  # still playing after the panic
        assert sp.terminate(signal.SIGINT) == 0
        assert sounding() == {}, "a note was left to the exit burst"
        assert overlaps(osc_notes(sp.rx)) == [], "a note started while another still sounded"


def test_serve_reports_bad_input_and_survives_flood(pattern_policy: Path) -> None:
    with ServeProcess("--policy", str(pattern_policy), "--bpm", "240", "--autostart") as sp:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for _ in range(20):
            s.sendto(b"\x00garbage\xff", ("127.0.0.1", sp.osc_port))
        sp.send("/liveagent/tempo", float("nan"))
        sp.send("/liveagent/note", 300, 1)
        sp.send("/liveagent/whatever")
        assert sp.rx.wait_for("/liveagent/error", 1)
        # a flood of valid notes well above 1,000 msg/s
        note_on = __import__("liveagent.live.io.osc", fromlist=["build_message"]).build_message(
            "/liveagent/note", [60, 1]
        )
        for _ in range(3000):
            s.sendto(note_on, ("127.0.0.1", sp.osc_port))
        s.close()
        time.sleep(0.5)
        st = sp.status()
        assert st["osc_errors"] >= 23
        assert st["input_errors"] >= 1
        assert st["osc_in"] + st["osc_flood_dropped"] >= 3000 * 0.5  # UDP may drop some under load
        assert sp.proc.poll() is None, "server died"
        steps = st["steps"]
        assert _wait(lambda: sp.status()["steps"] > steps), "the engine stopped keeping time"
        assert sp.terminate() == 0


def test_serve_policy_swap_over_osc(pattern_policy: Path, tmp_path: Path) -> None:
    other = write_pattern_policy(tmp_path / "other.onnx")
    with ServeProcess("--policy", str(pattern_policy), "--bpm", "240", "--autostart") as sp:
        sp.send("/liveagent/policy", str(other))
        assert _wait(lambda: sp.status().get("policy") == "other", timeout=10)
        sp.send("/liveagent/policy", str(tmp_path / "missing.onnx"))
        errs = sp.rx.wait_for("/liveagent/error", 1)
        assert errs and "missing.onnx" in errs[-1][0]
        assert sp.status()["policy"] == "other"
        assert sp.terminate() == 0


def _serve_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "liveagent", "serve", "--osc-port", "0", *args]


def test_serve_bad_policy_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx file")
    r = subprocess.run(_serve_cmd("--policy", str(bad)), capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "bad.onnx" in r.stderr and "ready" not in r.stdout
    r = subprocess.run(_serve_cmd("--policy", "no-such-policy"), capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "no-such-policy" in r.stderr


def test_serve_non_loopback_without_allow_list_exits_2(pattern_policy: Path) -> None:
    r = subprocess.run(
        _serve_cmd("--policy", str(pattern_policy), "--osc-host", "0.0.0.0"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "allow" in r.stderr


def test_serve_with_oscsend_and_oscdump_peers(pattern_policy: Path) -> None:
    """Independent liblo peers on both sides: oscsend drives the server, oscdump hears the agent."""
    require_tool("oscsend", "oscdump")
    from tests.live.osc_helpers import free_udp_port

    port = free_udp_port()
    dump = subprocess.Popen(["oscdump", "-L", str(port)], stdout=subprocess.PIPE, text=True)
    proc = subprocess.Popen(
        _serve_cmd("--policy", str(pattern_policy), "--bpm", "240", "--osc-out", f"127.0.0.1:{port}"),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and dump.stdout is not None
        ready = proc.stdout.readline()
        assert ready.startswith("ready")
        osc_port = ready.split("osc=")[1].split()[0].rsplit(":", 1)[1]
        subprocess.run(["oscsend", "127.0.0.1", osc_port, "/liveagent/start"], check=True, timeout=10)
        # the performer (another liblo peer) holds a note: the agent answers it (it waits for one)
        subprocess.run(
            ["oscsend", "127.0.0.1", osc_port, "/liveagent/note", "ii", "60", "90"], check=True, timeout=10
        )
        lines: list[str] = []
        deadline = time.monotonic() + 10
        while sum("/liveagent/out/note" in ln for ln in lines) < 10 and time.monotonic() < deadline:
            lines.append(dump.stdout.readline())
        assert any("/liveagent/out/note ii 48 " in ln for ln in lines), lines  # bar 2's first note
        assert any("/liveagent/out/beat ii 0 0" in ln for ln in lines), lines
        subprocess.run(["oscsend", "127.0.0.1", osc_port, "/liveagent/stop"], check=True, timeout=10)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        for p in (proc, dump):
            if p.poll() is None:
                p.kill()
                p.wait(timeout=5)


def test_serve_status_json_on_exit(pattern_policy: Path) -> None:
    with ServeProcess("--policy", str(pattern_policy), "--status-json", "--autostart", "--bpm", "240") as sp:
        time.sleep(0.5)
        assert sp.terminate() == 0
        final = json.loads(sp.stdout[-1])
        assert final["steps"] > 0 and final["policy"] == "pattern"


def test_serve_osc_transport_clock(pattern_policy: Path) -> None:
    with ServeProcess("--policy", str(pattern_policy), "--clock", "osc", "--bpm", "120") as sp:
        sp.send("/liveagent/tempo", 150.0)
        sp.send("/liveagent/start")
        sp.send("/liveagent/note", 60, 90)  # the performer holds a note: the agent answers
        for i in range(4):
            time.sleep(0.4)
            sp.send("/liveagent/beat", i % 4)
        st = sp.status()
        assert st["clock"] == "OscTransportClock" and st["running"] == 1
        assert st["bpm"] == pytest.approx(150.0)
        assert sp.rx.of("/liveagent/out/note")
        assert sp.terminate() == 0


def test_serve_accepts_bundles(pattern_policy: Path) -> None:
    from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
    from pythonosc.osc_message_builder import OscMessageBuilder

    with ServeProcess("--policy", str(pattern_policy), "--bpm", "240", "--autostart") as sp:
        b = OscBundleBuilder(IMMEDIATELY)
        for p in (60, 64):
            m = OscMessageBuilder("/liveagent/note")
            m.add_arg(p)
            m.add_arg(100)
            b.add_content(m.build())  # type: ignore[arg-type]
        sp.client.send(b.build())
        assert _wait(lambda: sp.status()["notes_in"] == 2)
        assert sp.terminate() == 0


def test_serve_monitor_renders_and_exits_clean(pattern_policy: Path) -> None:
    import os

    env = {**os.environ, "TTY_COMPATIBLE": "1", "COLUMNS": "110"}
    with ServeProcess(
        "--policy", str(pattern_policy), "--bpm", "240", "--autostart", "--monitor", env=env
    ) as sp:
        assert _wait(lambda: any("BPM" in ln for ln in sp.stdout), timeout=10), sp.stdout[-5:]
        assert sp.terminate(signal.SIGINT) == 0
        assert any("stopped steps=" in ln for ln in sp.stdout), sp.stdout[-3:]


def test_serve_records_every_session_unless_told_not_to(pattern_policy: Path, tmp_path: Path) -> None:
    for flags, expect in (((), 1), (("--no-record",), 0)):
        sessions = tmp_path / f"sessions{len(flags)}"
        env = {**os.environ, "LIVEAGENT_RECORD_DIR": str(sessions)}
        with ServeProcess("--policy", str(pattern_policy), "--bpm", "240", *flags, env=env) as sp:
            sp.send("/liveagent/start")
            sp.send("/liveagent/note", 67, 90)  # the performer plays (and holds): the agent answers
            assert _wait(lambda sp=sp: len(sp.rx.of("/liveagent/out/note")) >= 2)
            assert sp.terminate(signal.SIGTERM) == 0, sp.stderr
        assert len(list(sessions.glob("*.mid"))) == expect
