"""Floods from many source ports, and an oversized policy file, against a real `liveagent serve` over UDP.

A network review found that the per-sender limits could be multiplied by opening more sockets (40 ports
sending ``/panic`` at ~100/s each backed the engine's queue up: ``/stop`` not honoured for 30 s, SIGTERM
stuck behind the backlog), that flooders kept their sender slots while a resting performer lost its own
(7 of 40 notes through), and that ``/liveagent/policy`` of a 1 GB file froze the engine for seconds.
Each test here reproduces one of those through the real path.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pythonosc.osc_message import OscMessage

from liveagent.live.events import Control, ControlEvent, InputEvent, NoteEvent
from liveagent.live.io.osc import OscServer, OscServerConfig, build_message
from liveagent.live.io.osc_limits import QUIET_CONTROL_TOTAL_BURST, QUIET_CONTROL_TOTAL_RATE
from tests.live.serve_helpers import ServeProcess, wait_until

log = logging.getLogger(__name__)

BASE = ("--policy", "rules", "--no-record", "--rt-priority", "0")
PLAYING = ("--autostart", "--bpm", "240", "--no-wait-for-performer")


def _udp(timeout: float | None = None) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    if timeout is not None:
        s.settimeout(timeout)
    return s


def _bundle(*elements: bytes) -> bytes:
    out = b"#bundle\0" + struct.pack(">Q", 1)
    for e in elements:
        out += struct.pack(">i", len(e)) + e
    return out


def _fresh_status(port: int, timeout: float = 0.5) -> dict[str, Any] | None:
    """A status request from a new socket (as ``oscsend`` does: a new source port every time)."""
    with _udp(timeout) as s:
        s.sendto(build_message("/liveagent/status", []), ("127.0.0.1", port))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data, _ = s.recvfrom(65536)
            except TimeoutError:
                return None
            msg = OscMessage(data)
            if msg.address == "/liveagent/status":
                p = msg.params
                return dict(zip(p[::2], p[1::2], strict=False))
    return None


class _Flood:
    """``n`` sockets (``n`` source ports) each sending ``data`` once per round, a round every ``period`` s,
    on a thread until :meth:`stop`."""

    def __init__(self, port: int, data: bytes, n: int = 40, period: float = 0.01) -> None:
        self.socks = [_udp() for _ in range(n)]
        self.dest = ("127.0.0.1", port)
        self.data = data
        self.period = period
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        nxt = time.perf_counter()
        while not self._stop.is_set():
            for s in self.socks:
                try:
                    s.sendto(self.data, self.dest)
                    self.sent += 1
                except OSError:
                    pass
            nxt += self.period
            delay = nxt - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            else:
                nxt = time.perf_counter()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)
        for s in self.socks:
            s.close()


@pytest.mark.timeout(90)
def test_a_panic_flood_from_40_ports_cannot_delay_stop_or_sigterm() -> None:
    """40 sockets send /panic at ~100/s each (each under the per-sender control limit); /stop from a new
    socket is honoured within 1 s while the flood goes on, and SIGTERM ends the server within 1.5 s."""
    with ServeProcess(*BASE, *PLAYING) as sp:
        assert wait_until(lambda: int(sp.status()["running"]) == 1, 5.0), "the transport did not start"
        flood = _Flood(sp.osc_port, build_message("/liveagent/panic", []), n=40, period=0.01)
        try:
            time.sleep(4.0)
            stopper = _udp()
            t_stop = time.monotonic()
            stopper.sendto(build_message("/liveagent/stop", []), ("127.0.0.1", sp.osc_port))
            stopper.close()
            honoured = None
            last: dict[str, Any] | None = None
            while time.monotonic() - t_stop < 3.0:
                last = _fresh_status(sp.osc_port, 0.3) or last
                if last is not None and int(last["running"]) == 0:
                    honoured = time.monotonic() - t_stop
                    break
                time.sleep(0.05)
            log.info(
                "panic flood: %d datagrams sent; /stop honoured after %s s; status %s",
                flood.sent,
                honoured,
                {k: (last or {}).get(k) for k in ("osc_control_limited", "osc_panic_collapsed", "misses")},
            )
            assert honoured is not None and honoured < 1.0, (
                f"/stop not honoured within 1 s under a 40-port /panic flood (last status: "
                f"{ {k: (last or {}).get(k) for k in ('running', 'step', 'misses')} })"
            )
            t0 = time.perf_counter()
            rc = sp.terminate(timeout=10.0)
            dt = time.perf_counter() - t0 - 0.1
        finally:
            flood.stop()
        log.info("SIGTERM during a 40-port /panic flood: exit %s in %.3f s", rc, dt)
        assert rc == 0, "".join(sp.stderr)[-1500:]
        assert dt < 1.5, f"SIGTERM took {dt:.2f} s after a 40-port /panic flood"


@pytest.mark.timeout(90)
def test_performers_notes_get_through_a_40_port_flood() -> None:
    """A performer who rests 3 s while 40 other ports flood (60-message bundles), a performer who joins
    during the flood, and status requests from fresh sockets: >= 90 % of the notes arrive, the status
    answers."""
    with ServeProcess(*BASE, "--autostart", "--bpm", "120") as sp:
        dest = ("127.0.0.1", sp.osc_port)
        early = _udp()
        for i in range(5):  # the early performer takes its slot before the flood
            early.sendto(build_message("/liveagent/note", [60 + i, 90]), dest)
            time.sleep(0.05)
            early.sendto(build_message("/liveagent/note", [60 + i, 0]), dest)
            time.sleep(0.05)
        junk = _bundle(*[build_message("/x", [])] * 60)
        flood = _Flood(sp.osc_port, junk, n=40, period=0.002)
        try:
            time.sleep(3.0)  # the early performer rests longer than the 2 s idle eviction
            st0 = _fresh_status(sp.osc_port, 1.0) or _fresh_status(sp.osc_port, 1.0)
            late = _udp()  # a performer joining during the flood
            for i in range(40):
                for s, base in ((early, 60), (late, 72)):
                    s.sendto(build_message("/liveagent/note", [base + i % 12, 90]), dest)
                time.sleep(0.05)
                for s, base in ((early, 60), (late, 72)):
                    s.sendto(build_message("/liveagent/note", [base + i % 12, 0]), dest)
                time.sleep(0.05)
            time.sleep(0.3)
            answered = [_fresh_status(sp.osc_port, 0.5) for _ in range(5)]
            st = next((a for a in answered if a is not None), None)
        finally:
            flood.stop()
        assert st0 is not None and st is not None, "no /status reply to fresh sockets during the flood"
        got = int(st["notes_in"]) - int(st0["notes_in"])
        log.info(
            "40-port flood (%d datagrams): %d/80 performer notes arrived; %d/5 fresh status requests "
            "answered; flood dropped %s",
            flood.sent,
            got,
            sum(a is not None for a in answered),
            st.get("osc_flood_dropped"),
        )
        assert got >= 72, f"only {got}/80 performer notes arrived through a 40-port flood"
        assert sum(a is not None for a in answered) >= 4, "fresh sockets get no /status reply"
        assert int(st["osc_flood_dropped"]) > 0
        early.close()
        late.close()


@pytest.mark.timeout(60)
def test_an_oversized_policy_file_is_refused_at_once(tmp_path: Path) -> None:
    """A 96 MB (sparse) .onnx: refused before reading, with a clear error, within 1 s and no misses."""
    big = tmp_path / "huge.onnx"
    with big.open("wb") as f:
        f.truncate(96 * 1024 * 1024)
    with ServeProcess(*BASE, *PLAYING) as sp:
        time.sleep(0.5)
        st0 = sp.status()
        client = _udp(0.2)
        t0 = time.monotonic()
        client.sendto(build_message("/liveagent/policy", [str(big)]), ("127.0.0.1", sp.osc_port))
        err = None
        while err is None and time.monotonic() - t0 < 3.0:
            try:
                data, _ = client.recvfrom(65536)
            except TimeoutError:
                continue
            msg = OscMessage(data)
            if msg.address == "/liveagent/error":
                err = str(msg.params[0])
        took = time.monotonic() - t0
        time.sleep(0.3)
        st = sp.status()
        client.close()
        misses = int(st["misses"]) - int(st0["misses"])
        log.info("96 MB policy file: %r after %.3f s, %d misses", err, took, misses)
        assert err is not None and "too large" in err, f"no 'too large' error for a 96 MB policy: {err!r}"
        assert took < 1.0, f"the refusal took {took:.2f} s"
        assert "64 MB" in err
        assert misses == 0, f"{misses} misses while a 96 MB policy file was refused"
        assert st["policy"] == st0["policy"]


# ------------------------------------------------------------------ the limiter's logic (handle_datagram)


def _server(**kw: Any) -> tuple[OscServer, list[InputEvent]]:
    got: list[InputEvent] = []
    return OscServer(got.append, OscServerConfig(port=0, **kw)), got


def test_repeated_panics_are_collapsed_and_counted() -> None:
    srv, got = _server()
    try:
        t = time.perf_counter_ns()
        panic = build_message("/liveagent/panic", [])
        for i in range(200):  # 200 /panic from 40 ports in 0.2 s
            srv.handle_datagram(panic, ("127.0.0.1", 5000 + i % 40), t + i * 1_000_000)
        n = sum(isinstance(e, ControlEvent) and e.kind is Control.PANIC for e in got)
        assert 4 <= n <= 5  # one per 50 ms
        assert srv.counters.panic_collapsed == 200 - n
    finally:
        srv.stop()


def test_controls_are_limited_per_address_and_in_total_but_stop_has_its_own_budget() -> None:
    srv, got = _server(control_rate=100.0, control_burst=20.0)
    try:
        t = time.perf_counter_ns()
        temp = build_message("/liveagent/temperature", [0.5])
        for i in range(400):  # 40 ports of one address, 10 each, in 0.2 s: under each port's own limit
            srv.handle_datagram(temp, ("127.0.0.1", 5000 + i % 40), t + i * 500_000)
        n = sum(isinstance(e, ControlEvent) and e.kind is Control.TEMPERATURE for e in got)
        quiet = QUIET_CONTROL_TOTAL_BURST + QUIET_CONTROL_TOTAL_RATE * 0.4  # quiet senders' allowance, 0.4 s
        assert n <= 20 + 100 * 0.2 + quiet + 2, f"{n} controls from 40 ports of one address"
        for i in range(400):  # 40 addresses: the total limit (200/s, burst 50)
            srv.handle_datagram(temp, (f"127.0.1.{i % 40}", 5000), t + 200_000_000 + i * 500_000)
        n2 = sum(isinstance(e, ControlEvent) and e.kind is Control.TEMPERATURE for e in got) - n
        assert n2 <= 50 + 200 * 0.2 + quiet + 2, f"{n2} controls from 40 addresses"
        srv.handle_datagram(build_message("/liveagent/stop", []), ("127.0.0.1", 7000), t + 400_000_000)
        assert any(isinstance(e, ControlEvent) and e.kind is Control.STOP for e in got)
    finally:
        srv.stop()


def test_a_quiet_performer_keeps_its_place_and_noisy_senders_give_theirs() -> None:
    srv, got = _server(max_senders=41)  # 40 flooding ports and the performer fill the table
    try:
        t = time.perf_counter_ns()
        note = build_message("/liveagent/note", [60, 90])
        srv.handle_datagram(note, ("127.0.0.1", 4000), t)  # the performer
        junk = _bundle(*[build_message("/x", [])] * 60)
        for i in range(2000):  # 40 flooding ports for 4 s; the performer rests
            srv.handle_datagram(junk, ("127.0.0.1", 5000 + i % 40), t + i * 2_000_000)
        t_end = t + 4_000_000_000
        assert ("127.0.0.1", 4000) in srv._senders, "the resting performer lost its place"
        n0 = sum(isinstance(e, NoteEvent) for e in got)
        srv.handle_datagram(note, ("127.0.0.1", 4000), t_end)
        srv.handle_datagram(note, ("127.0.0.1", 4001), t_end + 1)  # a late joiner takes a noisy one's place
        assert sum(isinstance(e, NoteEvent) for e in got) == n0 + 2
        assert ("127.0.0.1", 4001) in srv._senders
        assert srv.counters.senders_evicted > 0
    finally:
        srv.stop()
