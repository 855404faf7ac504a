"""OSC input validation and output over real UDP on loopback, with python-osc and liblo peers."""

from __future__ import annotations

import contextlib
import math
import os
import queue
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest
from pythonosc.udp_client import SimpleUDPClient

from liveagent.live.events import Control, ControlEvent, InputError, InputEvent, NoteEvent
from liveagent.live.io.osc import (
    MessageError,
    OscServer,
    OscServerConfig,
    OscSink,
    OscSinkConfig,
    build_message,
    decode,
    parse_host_port,
)
from tests.live.osc_helpers import OscCollector
from tests.support import require_tool


def _drain(q: queue.Queue[InputEvent], n: int, timeout: float = 3.0) -> list[InputEvent]:
    out: list[InputEvent] = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        with contextlib.suppress(queue.Empty):
            out.append(q.get(timeout=0.05))
    return out


@pytest.fixture
def server() -> Iterator[tuple[OscServer, queue.Queue[InputEvent]]]:
    q: queue.Queue[InputEvent] = queue.Queue()
    srv = OscServer(q.put, OscServerConfig(port=0)).start()
    yield srv, q
    srv.stop()


# ------------------------------------------------------------------------------------------ decode


def test_decode_valid_messages() -> None:
    r = ("127.0.0.1", 5)
    assert decode("/liveagent/note", [60, 100], 7, r) == NoteEvent(7, 60, 100, "osc")
    assert decode("/liveagent/note", [60.0, 0.0], 7, r) == NoteEvent(7, 60, 0, "osc")  # Pd sends floats
    assert decode("/liveagent/noteoff", [61], 1, r) == NoteEvent(1, 61, 0, "osc")
    ev = decode("/liveagent/tempo", [96.5], 1, r)
    assert isinstance(ev, ControlEvent) and ev.kind is Control.TEMPO and ev.value == 96.5
    assert decode("/liveagent/beat", [], 1, r).value == -1  # type: ignore[union-attr]
    assert decode("/liveagent/beat", [2], 1, r).value == 2  # type: ignore[union-attr]
    assert decode("/liveagent/mute", [1], 1, r).value == 1  # type: ignore[union-attr]
    assert decode("/liveagent/policy", ["rules"], 1, r).text == "rules"  # type: ignore[union-attr]
    st = decode("/liveagent/status", [], 1, r)
    assert isinstance(st, ControlEvent) and st.kind is Control.STATUS and st.reply_to == r
    for addr, kind in [
        ("/liveagent/start", Control.START),
        ("/liveagent/stop", Control.STOP),
        ("/liveagent/continue", Control.CONTINUE),
        ("/liveagent/panic", Control.PANIC),
    ]:
        assert decode(addr, [], 1, None).kind is kind  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("addr", "params", "kind"),
    [
        ("/liveagent/note", [60], "arity"),
        ("/liveagent/note", [60, 100, 1], "arity"),
        ("/liveagent/note", ["c4", 100], "type"),
        ("/liveagent/note", [60.5, 100], "type"),
        ("/liveagent/note", [128, 100], "range"),
        ("/liveagent/note", [-1, 100], "range"),
        ("/liveagent/note", [60, 200], "range"),
        ("/liveagent/note", [math.nan, 100], "nonfinite"),
        ("/liveagent/tempo", [math.inf], "nonfinite"),
        ("/liveagent/tempo", [math.nan], "nonfinite"),
        ("/liveagent/tempo", [0.0], "range"),
        ("/liveagent/tempo", [10000.0], "range"),
        ("/liveagent/tempo", [True], "type"),
        ("/liveagent/temperature", [-1.0], "range"),
        ("/liveagent/mute", [2], "range"),
        ("/liveagent/policy", [3], "type"),
        ("/liveagent/policy", [""], "type"),
        ("/liveagent/start", [1], "arity"),
        ("/liveagent/nope", [], "unknown_address"),
        ("/other", [1], "unknown_address"),
    ],
)
def test_decode_rejects(addr: str, params: list[object], kind: str) -> None:
    with pytest.raises(MessageError) as ei:
        decode(addr, params, 0, None)
    assert ei.value.kind == kind


def test_parse_host_port() -> None:
    assert parse_host_port("127.0.0.1:9001") == ("127.0.0.1", 9001)
    assert parse_host_port(":9002") == ("127.0.0.1", 9002)
    assert parse_host_port("9003") == ("127.0.0.1", 9003)
    for bad in ("host:x", "host:0", "host:70000"):
        with pytest.raises(ValueError):
            parse_host_port(bad)


# ------------------------------------------------------------------------------------- real UDP in


@pytest.mark.timeout(30)
def test_python_osc_client_over_udp(server: tuple[OscServer, queue.Queue[InputEvent]]) -> None:
    srv, q = server
    c = SimpleUDPClient("127.0.0.1", srv.port)
    t0 = time.perf_counter_ns()
    c.send_message("/liveagent/note", [64, 90])
    c.send_message("/liveagent/tempo", 132.0)
    c.send_message("/liveagent/start", [])
    got = _drain(q, 3)
    assert got[0] == NoteEvent(got[0].t_ns, 64, 90, "osc")
    assert got[0].t_ns >= t0
    assert isinstance(got[1], ControlEvent) and got[1].kind is Control.TEMPO and got[1].value == 132.0
    assert isinstance(got[2], ControlEvent) and got[2].kind is Control.START
    assert srv.counters.accepted == 3 and srv.counters.errors == 0


@pytest.mark.timeout(30)
def test_oscsend_peer(server: tuple[OscServer, queue.Queue[InputEvent]]) -> None:
    require_tool("oscsend")
    srv, q = server
    for args in (
        ["/liveagent/note", "ii", "67", "80"],
        ["/liveagent/tempo", "f", "88.5"],
        ["/liveagent/stop"],
    ):
        subprocess.run(["oscsend", "127.0.0.1", str(srv.port), *args], check=True, timeout=10)
    got = _drain(q, 3)
    assert got[0][1:] == (67, 80, "osc")
    assert isinstance(got[1], ControlEvent) and got[1].value == pytest.approx(88.5)
    assert isinstance(got[2], ControlEvent) and got[2].kind is Control.STOP


@pytest.mark.timeout(30)
def test_garbage_is_counted_and_server_survives(server: tuple[OscServer, queue.Queue[InputEvent]]) -> None:
    srv, q = server
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dest = ("127.0.0.1", srv.port)
    garbage = [
        b"",
        b"\x00",
        b"not osc at all",
        os.urandom(64),
        b"/liveagent/note\x00,ii\x00\x00\x00\x00\x01",  # truncated ints
        b"#bundle\x00garbage",
        build_message("/liveagent/note", ["x", 1]),
        build_message("/liveagent/tempo", [float("nan")]),
        build_message("/liveagent/bogus", [1]),
    ]
    for g in garbage:
        s.sendto(g, dest)
    s.sendto(build_message("/liveagent/note", [60, 100]), dest)
    notes: list[InputEvent] = []
    errors: list[InputEvent] = []
    deadline = time.monotonic() + 3
    while not notes and time.monotonic() < deadline:
        for ev in _drain(q, 1, timeout=0.1):
            (notes if isinstance(ev, NoteEvent) else errors).append(ev)
    s.close()
    assert notes and notes[0][1:] == (60, 100, "osc")
    c = srv.counters
    assert c.datagrams == len(garbage) + 1
    assert c.errors == len(garbage)
    assert c.by_kind.get("undecodable", 0) >= 3
    assert c.by_kind.get("unknown_address") == 1 and c.by_kind.get("nonfinite") == 1
    # errors reach the engine rate-limited, the rest is counted as suppressed
    assert all(isinstance(e, InputError) for e in errors)
    assert 1 <= c.reported <= 5 and c.reported + c.suppressed == len(garbage)


@pytest.mark.timeout(30)
def test_flood_is_dropped_and_counted() -> None:
    q: queue.Queue[InputEvent] = queue.Queue()
    srv = OscServer(q.put, OscServerConfig(port=0, max_rate=1000.0, burst=100.0)).start()
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        msg = build_message("/liveagent/note", [60, 100])
        n = 5000
        for _ in range(n):
            s.sendto(msg, ("127.0.0.1", srv.port))
        deadline = time.monotonic() + 5
        c = srv.counters
        while c.datagrams < n * 0.9 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)
        assert c.datagrams > 0
        assert c.flood_dropped > 0, "a burst far above max_rate must be dropped"
        assert c.accepted + c.flood_dropped == c.datagrams
        # still alive and accepting after the flood
        time.sleep(0.2)
        before = c.accepted
        s.sendto(build_message("/liveagent/start", []), ("127.0.0.1", srv.port))
        t_end = time.monotonic() + 2
        while c.accepted == before and time.monotonic() < t_end:
            time.sleep(0.01)
        assert c.accepted == before + 1
        s.close()
    finally:
        srv.stop()


def test_non_loopback_bind_needs_allow_list() -> None:
    with pytest.raises(ValueError, match="allow-list"):
        OscServer(lambda e: None, OscServerConfig(host="0.0.0.0", port=0))


@pytest.mark.timeout(30)
def test_allow_list_denies_other_senders() -> None:
    q: queue.Queue[InputEvent] = queue.Queue()
    srv = OscServer(q.put, OscServerConfig(host="0.0.0.0", port=0, allow=("10.1.2.0/24",))).start()
    try:
        SimpleUDPClient("127.0.0.1", srv.port).send_message("/liveagent/note", [60, 100])
        deadline = time.monotonic() + 3
        while srv.counters.denied == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert srv.counters.denied == 1 and srv.counters.accepted == 0
        assert all(not isinstance(e, NoteEvent) for e in _drain(q, 1, timeout=0.2))
    finally:
        srv.stop()


# ------------------------------------------------------------------------------------ real UDP out


@pytest.mark.timeout(30)
def test_sink_to_python_receiver() -> None:
    rx = OscCollector()
    sink = OscSink(OscSinkConfig(out=("127.0.0.1", rx.port)))
    try:
        sink.note_on(60, 100)
        sink.note_off(60)
        sink.beat(3, 2)
        sink.status({"tempo": 120.0, "bar": 3, "policy": "rules", "playing": True}, None)
        sink.error("bad thing", None)
        assert rx.wait_for("/liveagent/out/note", 2) == [[60, 100], [60, 0]]
        assert rx.wait_for("/liveagent/out/beat") == [[3, 2]]
        st = rx.wait_for("/liveagent/status")[0]
        assert dict(zip(st[::2], st[1::2], strict=True)) == {
            "tempo": 120.0,
            "bar": 3,
            "policy": "rules",
            "playing": 1,
        }
        assert rx.wait_for("/liveagent/error") == [["bad thing"]]
        sink.all_notes_off()
        assert len(rx.wait_for("/liveagent/out/note", 130)) == 130
    finally:
        sink.close()
        rx.close()


@pytest.mark.timeout(30)
def test_sink_reply_goes_to_sender_and_out() -> None:
    out_rx, client_rx = OscCollector(), OscCollector()
    sink = OscSink(OscSinkConfig(out=("127.0.0.1", out_rx.port), reply="both"))
    try:
        sink.status({"x": 1}, ("127.0.0.1", client_rx.port))
        assert client_rx.wait_for("/liveagent/status") == [["x", 1]]
        assert out_rx.wait_for("/liveagent/status") == [["x", 1]]
    finally:
        sink.close()
        out_rx.close()
        client_rx.close()


@pytest.mark.timeout(30)
def test_sink_to_oscdump_peer() -> None:
    require_tool("oscdump")
    from tests.live.osc_helpers import free_udp_port

    port = free_udp_port()
    proc = subprocess.Popen(["oscdump", "-L", str(port)], stdout=subprocess.PIPE, text=True)
    sink = OscSink(OscSinkConfig(out=("127.0.0.1", port)))
    try:
        time.sleep(0.3)  # let oscdump bind
        sink.note_on(72, 64)
        sink.beat(1, 0)
        sink.error("oops", None)
        lines: list[str] = []
        assert proc.stdout is not None
        deadline = time.monotonic() + 5
        while len(lines) < 3 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line:
                lines.append(line.strip())
        assert any("/liveagent/out/note ii 72 64" in ln for ln in lines), lines
        assert any("/liveagent/out/beat ii 1 0" in ln for ln in lines), lines
        assert any('/liveagent/error s "oops"' in ln or "/liveagent/error s oops" in ln for ln in lines), (
            lines
        )
    finally:
        sink.close()
        proc.terminate()
        proc.wait(timeout=5)
