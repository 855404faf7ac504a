"""Hostile OSC input and a lossy network, against a real `liveagent serve` over real UDP sockets.

Each test sends what a hostile network or a messy stage would (a bundle with a negative element size,
bundles of hundreds of messages, truncated messages, a flood from another sender, status and policy spam,
an output host that does not resolve) and then checks that the server still answers, obeys, stays cheap
on the CPU and stops within a few seconds of SIGTERM (the time is logged: run with ``--log-cli-level=INFO``).
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from liveagent.live.io.osc import build_message, osc_header, osc_string
from tests.live.osc_helpers import OscCollector
from tests.live.serve_helpers import ServeProcess, wait_until

log = logging.getLogger(__name__)

BASE = ("--policy", "rules", "--no-record", "--rt-priority", "0")
SIGTERM_BOUND_S = 3.0


def _bundle(*elements: bytes) -> bytes:
    out = b"#bundle\0" + struct.pack(">Q", 1)
    for e in elements:
        out += struct.pack(">i", len(e)) + e
    return out


def _udp() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    return s


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/<pid>/stat (fields 14 and 15, in clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_over(pid: int, seconds: float = 1.0) -> float:
    c0 = _cpu_seconds(pid)
    time.sleep(seconds)
    return (_cpu_seconds(pid) - c0) / seconds


def _sigterm(sp: ServeProcess, what: str) -> float:
    """SIGTERM the server, assert a clean exit within the bound and return (and log) how long it took."""
    t0 = time.perf_counter()
    rc = sp.terminate(timeout=10.0)
    dt = time.perf_counter() - t0 - 0.1  # terminate() sleeps 0.1 s after the exit
    log.info("SIGTERM after %s: exit %s in %.3f s", what, rc, dt)
    assert rc == 0, f"exit status {rc} after {what}: {''.join(sp.stderr)[-1500:]}"
    assert dt < SIGTERM_BOUND_S, f"SIGTERM after {what} took {dt:.2f} s"
    return dt


def _notes_in(sp: ServeProcess) -> int:
    return int(sp.status()["notes_in"])


# ------------------------------------------------------------------------------------------ parsing


@pytest.mark.timeout(60)
def test_negative_bundle_element_size_does_not_kill_input() -> None:
    """The 20-byte datagram that made python-osc loop forever on the input thread."""
    evil = b"#bundle\0" + b"\0" * 8 + b"\xff\xff\xff\xfc"
    assert len(evil) == 20
    with ServeProcess(*BASE) as sp:
        s = _udp()
        s.sendto(evil, ("127.0.0.1", sp.osc_port))
        time.sleep(0.2)
        st = sp.status(timeout=1.0)  # the input thread still answers, within 1 s
        assert int(st["osc_errors"]) >= 1
        assert int(st["osc_undecodable"]) >= 1
        cpu = _cpu_over(sp.proc.pid, 1.0)
        log.info("CPU after the evil bundle (stopped server): %.2f s/s", cpu)
        assert cpu < 0.5, f"the server burns {cpu:.2f} CPU-seconds per second after one bad datagram"
        # /start then /stop still obeyed: beats flow, then stop
        sp.send("/liveagent/start")
        assert wait_until(lambda: int(sp.status()["running"]) == 1, 3.0)
        sp.send("/liveagent/stop")
        assert wait_until(lambda: int(sp.status()["running"]) == 0, 1.0), "/stop ignored"
        _sigterm(sp, "the negative-size bundle")
        s.close()


@pytest.mark.timeout(60)
def test_malformed_bundles_and_truncated_messages_are_rejected_and_counted() -> None:
    note = build_message("/liveagent/note", [60, 100])
    truncated_note = osc_header("/liveagent/note", "ff") + struct.pack(">f", 60.0)  # promises 2 floats
    truncated_tempo = osc_header("/liveagent/tempo", "f") + b"\x42\xc8"  # half a float
    nested = note
    for _ in range(8):  # 8 levels of bundles in bundles: deeper than the limit
        nested = _bundle(nested)
    bad = [
        b"#bundle\0" + b"\0" * 8 + struct.pack(">i", 0x7FFFFFF0),  # element larger than the datagram
        b"#bundle\0" + b"\0" * 8 + struct.pack(">i", 6) + b"abcdefgh",  # size not a multiple of 4
        b"#bundle\0" + b"\0" * 4,  # truncated time tag
        nested,
        truncated_note,
        truncated_tempo,
        osc_string("/liveagent/policy") + osc_string(",s") + b"rules",  # string without its NUL
    ]
    with ServeProcess(*BASE) as sp:
        before = sp.status()
        s = _udp()
        for d in bad:
            s.sendto(d, ("127.0.0.1", sp.osc_port))
        assert wait_until(lambda: int(sp.status()["osc_errors"]) >= int(before["osc_errors"]) + len(bad), 3.0)
        st = sp.status()
        assert int(st["osc_errors"]) - int(before["osc_errors"]) == len(bad)
        assert int(st["osc_undecodable"]) - int(before.get("osc_undecodable", 0)) == len(bad)
        assert int(st["notes_in"]) == int(before["notes_in"]), "a truncated note was accepted"
        assert float(st["bpm"]) == float(before["bpm"]), "a truncated tempo was accepted"
        # a well-formed bundle of a chord still works
        s.sendto(_bundle(note, build_message("/liveagent/note", [64, 100])), ("127.0.0.1", sp.osc_port))
        assert wait_until(lambda: _notes_in(sp) == int(before["notes_in"]) + 2, 3.0)
        _sigterm(sp, "malformed bundles and truncated messages")
        s.close()


# -------------------------------------------------------------------------------------- rate limits


@pytest.mark.timeout(60)
def test_bundled_messages_count_against_the_rate_limit() -> None:
    """Bundles of 700 messages are refused whole; bundles of 60 are rate-limited per message."""
    # note messages (a note-off), which only the message rate limit can drop; /temperature is a
    # control, and the control limit (100/s) dropped it into osc_flood_dropped whatever the message limit did
    temp = build_message("/liveagent/note", [60, 0])
    huge = _bundle(*([temp] * 700))
    big = _bundle(*([temp] * 60))
    with ServeProcess(*BASE, "--osc-max-rate", "2000") as sp:
        before = sp.status()
        s = _udp()
        for _ in range(20):
            s.sendto(huge, ("127.0.0.1", sp.osc_port))
        t0 = time.perf_counter()
        for i in range(100):  # 6,000 messages in ~0.1 s: far above 2,000/s with a burst of 500
            s.sendto(big, ("127.0.0.1", sp.osc_port))
            if i % 10 == 9:
                time.sleep(0.01)
        elapsed = time.perf_counter() - t0
        assert wait_until(
            lambda: int(sp.status()["osc_messages"]) >= int(before.get("osc_messages", 0)) + 6000, 5.0
        )
        st = sp.status()
        accepted = int(st["osc_in"]) - int(before["osc_in"])
        dropped = int(st["osc_flood_dropped"]) - int(before["osc_flood_dropped"])
        log.info("6,000 bundled messages in %.3f s: %d accepted, %d dropped", elapsed, accepted, dropped)
        assert int(st["osc_errors"]) - int(before["osc_errors"]) >= 20, "700-message bundles not refused"
        assert dropped >= 6000 - (500 + 2000 * (elapsed + 0.5)), "bundled messages escaped the rate limit"
        assert accepted + dropped >= 6000
        _sigterm(sp, "bundles of 700 and 60 messages")
        s.close()


@pytest.mark.timeout(60)
def test_a_flood_from_another_sender_does_not_starve_the_performer() -> None:
    """4,000 datagrams/s of controls from one socket; the performer's 40 notes from another all arrive."""
    flood = build_message("/liveagent/temperature", [0.0])
    with ServeProcess(*BASE, "--osc-max-rate", "2000") as sp:
        n0 = _notes_in(sp)
        flooder, performer = _udp(), _udp()
        dest = ("127.0.0.1", sp.osc_port)
        sent = 0
        t_end = time.perf_counter() + 2.0
        next_note = time.perf_counter() + 0.2
        while time.perf_counter() < t_end:
            for _ in range(40):
                flooder.sendto(flood, dest)
            if sent < 40 and time.perf_counter() >= next_note:
                performer.sendto(build_message("/liveagent/note", [60 + sent % 12, 100]), dest)
                performer.sendto(build_message("/liveagent/note", [60 + sent % 12, 0]), dest)
                sent += 1
                next_note += 0.04
            time.sleep(0.01)
        assert sent == 40
        st: dict[str, Any] = {}
        assert wait_until(lambda: bool(st.update(sp.status())) or int(st["notes_in"]) >= n0 + 40, 3.0), (
            f"performer notes dropped: {int(st['notes_in']) - n0}/40 arrived"
        )
        assert int(st["osc_flood_dropped"]) > 0, "the flood was not limited at all"
        _sigterm(sp, "a flood from another sender")
        flooder.close()
        performer.close()


@pytest.mark.timeout(60)
def test_status_requests_are_no_amplifier_and_policy_loads_are_limited() -> None:
    with ServeProcess(*BASE) as sp:
        client = _udp()
        client.settimeout(0.2)
        dest = ("127.0.0.1", sp.osc_port)
        req = build_message("/liveagent/status", [])
        t0 = time.perf_counter()
        for _ in range(300):
            client.sendto(req, dest)
        replies: list[int] = []
        while True:
            try:
                data, _ = client.recvfrom(65536)
            except TimeoutError:
                break
            replies.append(len(data))
        elapsed = time.perf_counter() - t0
        log.info(
            "300 status requests: %d replies (max %d bytes) in %.2f s", len(replies), max(replies), elapsed
        )
        assert replies, "no status reply at all"
        assert len(replies) <= 20 + 50 * elapsed, f"{len(replies)} replies to 300 requests"
        assert max(replies) <= 8192
        for _ in range(30):
            client.sendto(build_message("/liveagent/policy", ["rules"]), dest)
        st: dict[str, Any] = {}
        assert wait_until(
            lambda: (
                bool(st.update(sp.status()))
                or int(st["osc_policy_limited"]) + int(st["osc_control_limited"]) >= 28
            ),
            3.0,
        ), "/policy spam was not limited"
        _sigterm(sp, "status and policy spam")
        client.close()


# ------------------------------------------------------------------------------------------- output


@pytest.mark.timeout(60)
def test_unresolvable_osc_out_host_is_an_error_before_ready() -> None:
    host = "no-such-host.invalid"
    proc = subprocess.Popen(
        [sys.executable, "-m", "liveagent", "serve", *BASE, "--osc-port", "0", "--osc-out", f"{host}:9001"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"serve kept running with an unresolvable --osc-out: {out!r}")
    assert "ready" not in out
    assert proc.returncode != 0
    assert host in err, err


@pytest.mark.timeout(60)
def test_osc_out_host_name_is_resolved_once_and_works() -> None:
    rx = OscCollector()
    try:
        with ServeProcess(*BASE, "--osc-out", f"localhost:{rx.port}", "--autostart") as sp:
            assert sp.fields["osc_out"] == f"127.0.0.1:{rx.port}", sp.fields  # resolved once, at start
            assert len(rx.wait_for("/liveagent/out/beat", 3, timeout=5.0)) >= 3
            _sigterm(sp, "--osc-out localhost")
    finally:
        rx.close()


@pytest.mark.timeout(60)
def test_send_errors_are_counted_in_the_status() -> None:
    """Broadcast without SO_BROADCAST: every send fails (EACCES); counted, never raised, replies still go."""
    with ServeProcess(*BASE, "--osc-out", "255.255.255.255:9", "--osc-reply", "sender", "--autostart") as sp:
        client = _udp()
        client.settimeout(2.0)

        def send_errors() -> int:
            client.sendto(build_message("/liveagent/status", []), ("127.0.0.1", sp.osc_port))
            data, _ = client.recvfrom(65536)
            from pythonosc.osc_message import OscMessage

            p = OscMessage(data).params
            return int(dict(zip(p[::2], p[1::2], strict=False))["osc_send_errors"])

        assert wait_until(lambda: send_errors() >= 2, 5.0)
        _sigterm(sp, "failing sends")
        client.close()


def _duplicate_offs(notes: list[list[Any]]) -> tuple[int, int]:
    """(note-offs, note-offs that repeat the previous message of the same pitch) in a stream of /out/note."""
    last: dict[int, int] = {}
    offs = dups = 0
    for pitch, vel in notes:
        if vel == 0:
            offs += 1
            if last.get(pitch) == 0:
                dups += 1
        last[pitch] = vel
    return offs, dups


@pytest.mark.timeout(90)
@pytest.mark.parametrize("repeat", [True, False])
def test_note_off_safety_net(repeat: bool) -> None:
    flag = "--osc-noteoff-repeat" if repeat else "--no-osc-noteoff-repeat"
    with ServeProcess(*BASE, "--bpm", "240", "--autostart", "--no-wait-for-performer", flag) as sp:
        for i in range(32):
            sp.send("/liveagent/note", 60 + (i % 5) * 2, 100)
            time.sleep(0.06)
            sp.send("/liveagent/note", 60 + (i % 5) * 2, 0)
        sp.send("/liveagent/stop")
        time.sleep(0.3)
        notes = sp.rx.of("/liveagent/out/note")  # before the all-notes-off burst of the exit
        offs, dups = _duplicate_offs(notes)
        log.info("note-off repeat %s: %d note messages, %d offs, %d repeated", repeat, len(notes), offs, dups)
        assert offs >= 4, f"the agent played too little to judge: {notes}"
        if repeat:
            assert dups >= offs // 2 - 1, f"{dups} of {offs} note-offs repeated"
        else:
            assert dups == 0
        # A mono synth releases its voice on any note-off: none may come right after a newer note-on.
        cut = [
            notes[i - 1 : i + 1]
            for i in range(1, len(notes))
            if notes[i][1] == 0 and notes[i - 1][1] > 0 and notes[i - 1][0] != notes[i][0]
        ]
        assert not cut, f"note-offs after a newer note-on (a mono synth cuts the new note): {cut}"
        repeats = int(sp.status()["osc_noteoff_repeats"])
        assert (repeats >= dups) if repeat else (repeats == 0)
        _sigterm(sp, f"note-off repeat {repeat}")
