"""OSC input validation and output over real UDP on loopback, with python-osc and liblo peers."""

from __future__ import annotations

import contextlib
import math
import os
import queue
import random
import socket
import struct
import subprocess
import time
from collections.abc import Iterator

import pytest
from pythonosc.udp_client import SimpleUDPClient

from liveagent.live.events import Control, ControlEvent, InputError, InputEvent, NoteEvent
from liveagent.live.io.osc import (
    MAX_BUNDLE_DEPTH,
    MAX_ELEMENTS,
    MAX_REPLY_BYTES,
    DatagramError,
    MessageError,
    OscServer,
    OscServerConfig,
    OscSink,
    OscSinkConfig,
    build_message,
    decode,
    encode_status,
    osc_header,
    osc_string,
    parse_datagram,
    parse_host_port,
)
from tests.live.osc_helpers import OscCollector
from tests.live.serve_helpers import wait_until
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


# ------------------------------------------------------------------------------ the bounded parser


def _bundle(*elements: bytes, tag: int = 1) -> bytes:
    return b"#bundle\0" + struct.pack(">Q", tag) + b"".join(struct.pack(">i", len(e)) + e for e in elements)


def test_parse_datagram_reads_messages_and_nested_bundles() -> None:
    note = build_message("/liveagent/note", [60, 100])
    assert parse_datagram(note) == [("/liveagent/note", [60, 100])]
    stop = osc_string("/liveagent/stop")  # no type tag string at all (OSC 1.0)
    assert parse_datagram(stop) == [("/liveagent/stop", [])]
    nested = _bundle(note, _bundle(build_message("/liveagent/tempo", [96.0]), _bundle()))
    assert parse_datagram(nested) == [("/liveagent/note", [60, 100]), ("/liveagent/tempo", [96.0])]
    rich = osc_header("/x", "sbhdTFNc") + osc_string("héllo") + struct.pack(">i", 3) + b"abc\0"
    rich += struct.pack(">qd", 2**40, 0.5) + struct.pack(">i", 65)
    assert parse_datagram(rich) == [("/x", ["héllo", b"abc", 2**40, 0.5, True, False, None, "A"])]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"abc", "size"),
        (b"junk", "not_osc"),
        (b"#bundle\0" + b"\0" * 8 + b"\xff\xff\xff\xfc", "element_size"),  # python-osc looped forever
        (b"#bundle\0" + b"\0" * 8 + struct.pack(">i", 0), "element_size"),
        (b"#bundle\0" + b"\0" * 8 + struct.pack(">i", 6) + b"\0" * 8, "element_size"),
        (b"#bundle\0" + b"\0" * 8 + struct.pack(">i", 64) + b"\0" * 8, "element_size"),
        (b"#bundle\0" + b"\0" * 4, "truncated"),
        (b"#bundle\0" + b"\0" * 8 + b"\0\0\0\x08", "element_size"),
        (osc_header("/liveagent/note", "ff") + struct.pack(">f", 60.0), "truncated"),
        (osc_header("/liveagent/tempo", "f") + b"\x42\xc8\0\0" + b"\0\0\0\0", "trailing"),
        (osc_header("/liveagent/policy", "s") + b"rule", "truncated"),
        (osc_header("/liveagent/policy", "b") + struct.pack(">i", -4), "truncated"),
        (osc_header("/liveagent/policy", "b") + struct.pack(">i", 100) + b"\0" * 4, "truncated"),
        (b"/liveagent/stop\0,\0\0\0x", "size"),
        (b"/liveagent/stop\0,\0\0x", "padding"),
        (b"/liveagent/stop\0,\0x\0", "padding"),
        (osc_header("/x", "[i]") + b"\0\0\0\x01", "type_tag"),
        (osc_header("/x", "i" * 40) + b"\0" * 160, "too_many_args"),
        (osc_string("/x") + osc_string("ii"), "type_tag"),
        (b"/\xff\0\0", "bad_string"),
    ],
)
def test_parse_datagram_refuses(data: bytes, reason: str) -> None:
    with pytest.raises(DatagramError) as e:
        parse_datagram(data)
    assert e.value.reason == reason


def test_parse_datagram_bounds_depth_and_element_count() -> None:
    note = build_message("/liveagent/note", [60, 100])
    deep = note
    for _ in range(MAX_BUNDLE_DEPTH):
        deep = _bundle(deep)
    assert len(parse_datagram(deep)) == 1
    with pytest.raises(DatagramError, match="deeper") as e:
        parse_datagram(_bundle(deep))
    assert e.value.reason == "too_deep"
    assert len(parse_datagram(_bundle(*([note] * MAX_ELEMENTS)))) == MAX_ELEMENTS
    with pytest.raises(DatagramError) as e:
        parse_datagram(_bundle(*([note] * (MAX_ELEMENTS + 1))))
    assert e.value.reason == "too_many"


def test_parse_datagram_survives_random_bytes() -> None:
    """Mutated datagrams: every one parses or raises DatagramError, fast (no other exception, no hang)."""
    rng = random.Random(12)
    seeds = [
        build_message("/liveagent/note", [60, 100]),
        _bundle(build_message("/liveagent/note", [60, 100]), _bundle(build_message("/liveagent/stop", []))),
    ]
    t0 = time.perf_counter()
    for i in range(20_000):
        d = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            d[rng.randrange(len(d))] = rng.randrange(256)
        if i % 3 == 0:
            d = d[: rng.randrange(len(d) + 1)]
        with contextlib.suppress(DatagramError):
            parse_datagram(bytes(d))
    assert time.perf_counter() - t0 < 20.0


# ------------------------------------------------------------------------------------- rate limits


def test_rate_limit_counts_bundled_messages() -> None:
    q: queue.Queue[InputEvent] = queue.Queue()
    srv = OscServer(q.put, OscServerConfig(port=0, max_rate=1000.0, burst=100.0))
    try:
        note = build_message("/liveagent/note", [60, 0])
        t = time.perf_counter_ns()
        for _ in range(10):
            srv.handle_datagram(_bundle(*([note] * 50)), ("127.0.0.1", 5000), t)
        c = srv.counters
        assert c.messages == 500 and c.accepted == 100 and c.flood_dropped == 400
        assert c.by_kind == {"flood": 400} and c.errors == 0
    finally:
        srv.stop()


def test_quiet_sender_passes_when_a_flood_emptied_the_shared_bucket() -> None:
    q: queue.Queue[InputEvent] = queue.Queue()
    srv = OscServer(q.put, OscServerConfig(port=0, max_rate=1000.0, burst=100.0))
    try:
        temp = build_message("/liveagent/temperature", [0.5])
        t = time.perf_counter_ns()
        for i in range(1000):  # 1 ms apart: the flooder alone keeps the shared bucket empty
            srv.handle_datagram(_bundle(*([temp] * 4)), ("127.0.0.1", 5000), t + i * 1_000_000)
        assert srv.counters.flood_dropped > 2000
        notes = 0
        for i in range(20):  # the performer, 20 notes/s, while the flood goes on
            t_i = t + (1000 + i * 50) * 1_000_000
            srv.handle_datagram(_bundle(*([temp] * 4)), ("127.0.0.1", 5000), t_i)
            srv.handle_datagram(build_message("/liveagent/note", [60, 90]), ("127.0.0.1", 6000), t_i)
        while not q.empty():
            notes += isinstance(q.get_nowait(), NoteEvent)
        assert notes == 20
    finally:
        srv.stop()


def test_status_and_policy_requests_are_limited() -> None:
    q: queue.Queue[InputEvent] = queue.Queue()
    answered: list[tuple[str, int]] = []
    srv = OscServer(q.put, OscServerConfig(port=0), status_handler=answered.append)
    try:
        t = time.perf_counter_ns()
        for _ in range(100):
            srv.handle_datagram(build_message("/liveagent/status", []), ("127.0.0.1", 5000), t)
            srv.handle_datagram(build_message("/liveagent/policy", ["rules"]), ("127.0.0.1", 5000), t)
        assert len(answered) == 20 and srv.counters.status_limited == 80
        policies = [e for e in _drain(q, 100, timeout=0.2) if isinstance(e, ControlEvent)]
        c = srv.counters
        assert len(policies) == 2 and c.policy_limited == 18 and c.control_limited == 80
        assert c.flood_dropped == 98 and c.errors == 0
    finally:
        srv.stop()


def test_controls_are_limited_per_sender() -> None:
    """A sender's flood of controls (each costs the engine far more than a note) is cut to control_rate;
    another sender's /stop still passes."""
    q: queue.Queue[InputEvent] = queue.Queue()
    srv = OscServer(q.put, OscServerConfig(port=0, control_rate=100.0, control_burst=20.0))
    try:
        t = time.perf_counter_ns()
        temp = build_message("/liveagent/temperature", [0.5])
        for i in range(200):  # 200 /temperature in 0.2 s (a repeated /panic is collapsed instead)
            srv.handle_datagram(temp, ("127.0.0.1", 5000), t + i * 1_000_000)
        srv.handle_datagram(build_message("/liveagent/stop", []), ("127.0.0.1", 6000), t + 200 * 1_000_000)
        got = [e for e in _drain(q, 100, timeout=0.2) if isinstance(e, ControlEvent)]
        assert 20 <= sum(e.kind is Control.TEMPERATURE for e in got) <= 45
        assert sum(e.kind is Control.STOP for e in got) == 1
        assert srv.counters.control_limited >= 150
    finally:
        srv.stop()


# ------------------------------------------------------------------------------ output safety nets


def test_sink_resolves_host_names_once() -> None:
    rx = OscCollector()
    sink = OscSink(OscSinkConfig(out=("localhost", rx.port)))
    try:
        assert sink.out == ("127.0.0.1", rx.port)
        sink.note_on(60, 90)
        assert rx.wait_for("/liveagent/out/note") == [[60, 90]]
    finally:
        sink.close()
        rx.close()
    with pytest.raises(ValueError, match=r"no-such-host\.invalid"):
        OscSink(OscSinkConfig(out=("no-such-host.invalid", 9001)))


def test_sink_counts_send_errors_and_never_raises() -> None:
    sink = OscSink(OscSinkConfig(out=("255.255.255.255", 9)))  # broadcast without SO_BROADCAST: EACCES
    try:
        sink.note_on(60, 90)
        sink.note_off(60)
        sink.beat(0, 0)
        assert sink.send_errors == 3
    finally:
        sink.close()


@pytest.mark.timeout(30)
def test_sink_sends_note_offs_twice_back_to_back() -> None:
    """The safety net's second note-off goes out with the first, before the next note-on: never after it,
    where a mono synth that releases on any note-off would cut the new note."""
    rx = OscCollector()
    sink = OscSink(OscSinkConfig(out=("127.0.0.1", rx.port), noteoff_twice=True))
    try:
        sink.note_on(60, 90)
        sink.note_off(60)
        sink.note_on(62, 90)
        sink.note_off(62)
        sink.note_on(62, 80)
        want = [[60, 90], [60, 0], [60, 0], [62, 90], [62, 0], [62, 0], [62, 80]]
        assert wait_until(lambda: len(rx.of("/liveagent/out/note")) == len(want), 2.0)
        assert rx.of("/liveagent/out/note") == want
        assert sink.noteoff_repeats == 2
        sink.all_notes_off()  # the burst is sent once
        assert wait_until(lambda: len(rx.of("/liveagent/out/note")) == len(want) + 128, 2.0)
    finally:
        sink.close()
        rx.close()


def test_status_reply_is_bounded() -> None:
    fields: dict[str, object] = {f"k{i}": "x" * 1000 for i in range(100)}
    data = encode_status(fields)
    assert len(data) <= MAX_REPLY_BYTES
    from pythonosc.osc_message import OscMessage

    params = OscMessage(data).params
    assert params[0] == "k0" and len(params[1]) == 256 and len(params) % 2 == 0


def test_status_replies_reuse_one_encoding_for_20_ms() -> None:
    """A client polling in a loop costs the input thread a send, not an encoding, per request."""
    rx = OscCollector()
    sink = OscSink(OscSinkConfig(out=("127.0.0.1", rx.port), reply="out"))
    builds: list[int] = []

    def build() -> dict[str, object]:
        builds.append(1)
        return {"n": len(builds)}

    try:
        for _ in range(5):
            sink.status_cached(build, None)
        assert len(builds) == 1
        time.sleep(0.03)
        sink.status_cached(build, None)
        assert len(builds) == 2
        assert rx.wait_for("/liveagent/status", 6) == [["n", 1]] * 5 + [["n", 2]]
    finally:
        sink.close()
        rx.close()


@pytest.mark.timeout(30)
def test_receiver_does_not_judge_the_note_off_repeats_as_emissions() -> None:
    """The bench and the demo measure lateness at a receiver: a note-off's repeat is not an emission."""
    from liveagent.live.io.receiver import OscReceiver, emission_times

    rx = OscReceiver(rt_priority=0)
    sink = OscSink(OscSinkConfig(out=("127.0.0.1", rx.port), noteoff_twice=True))
    try:
        sink.note_on(60, 90)
        sink.beat(0, 0)
        sink.note_off(60)
        assert wait_until(lambda: len(rx.messages) == 4, 2.0)
        assert len(emission_times(rx)) == 3
    finally:
        sink.close()
        rx.close()
