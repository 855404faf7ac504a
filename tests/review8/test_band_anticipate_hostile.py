"""Review 8, hostile network: the anticipating band (`serve --band satb --policy band_anticipate`) under a
flood of malformed OSC, with an output port nobody listens on (or no route), and a wild tempo mid-play.

Real `liveagent serve` subprocess, real UDP, an independent receiver; releases checked ignoring bursts.
"""

from __future__ import annotations

import random
import signal
import socket
import struct
import threading
import time
from typing import Any

import pytest
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from tests.live.osc_helpers import free_udp_port
from tests.live.receiver_notes import before_first_burst, overlaps, sounding_at
from tests.live.serve_helpers import ServeProcess, wait_until
from tests.live.test_serve_band import MELODY
from tests.review8.test_band_anticipate_wire import BAND_ANTICIPATE
from tests.review8.wire import ADDRESSES, notes_of, play_grid

pytestmark = pytest.mark.timeout(240)


def _msg(address: str, *args: Any) -> bytes:
    b = OscMessageBuilder(address=address)
    for a in args:
        b.add_arg(a)
    return bytes(b.build().dgram)


def hostile_datagrams(rng: random.Random) -> list[bytes]:
    """Malformed, oversized, nested and wrong-typed datagrams, and control messages with bad arguments
    (never a legitimate stop/panic/mute: those would rightly release the band)."""
    nested = OscBundleBuilder(IMMEDIATELY)
    inner = OscBundleBuilder(IMMEDIATELY)
    inner.add_content(OscMessageBuilder(address="/liveagent/tempo").build())  # no argument
    nested.add_content(inner.build())
    deep = b"#bundle\0" + b"\0" * 8
    for _ in range(40):  # a bundle nested 40 deep, each claiming its content
        deep = b"#bundle\0" + b"\0" * 8 + struct.pack(">i", len(deep)) + deep
    out = [
        b"",
        b"\xff" * 7,
        b"/liveagent/note\0",  # no type tag
        b"/liveagent/note\0,ii\0" + b"\0\0\0",  # truncated arguments
        b"#bundle\0" + b"\0" * 8 + struct.pack(">i", 1 << 30),  # a size past the datagram
        deep,
        bytes(nested.build().dgram),
        _msg("/liveagent/note", "x", "y"),
        _msg("/liveagent/note", 1000, -5),
        _msg("/liveagent/tempo", float("nan")),
        _msg("/liveagent/tempo", -1.0),
        _msg("/liveagent/tempo", "fast"),
        _msg("/liveagent/policy", "../../etc/passwd"),
        _msg("/liveagent/policy", "x" * 3000),
        _msg("/liveagent/mute", "maybe"),
        _msg("/liveagent/temperature", float("inf")),
        _msg("/liveagent/mood", "\u00e9" * 400),
        _msg("/liveagent/style", *([0.5] * 300)),
        _msg("/liveagent/" + "a" * 5000),
        bytes(rng.getrandbits(8) for _ in range(1400)),
    ]
    return out


def test_a_flood_of_malformed_osc_while_the_band_anticipates() -> None:
    with ServeProcess(*BAND_ANTICIPATE) as sp:
        stop = threading.Event()
        performer = threading.Thread(target=play_grid, args=(sp, stop, 40), daemon=True)
        performer.start()
        assert wait_until(lambda: all(notes_of(sp.rx, v) for v in ADDRESSES), 20), "not every voice played"
        before = sp.status()
        rng = random.Random(8)
        flood = hostile_datagrams(rng)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        t_flood = time.perf_counter_ns()
        sent = 0
        deadline = time.monotonic() + 4.0
        while time.monotonic() < deadline:
            for d in flood:
                sock.sendto(d, ("127.0.0.1", sp.osc_port))
                sent += 1
            time.sleep(0.002)  # ~10k datagrams/s: a flood, yet leave the 2 cores to the server
        sock.close()
        t_end = time.perf_counter_ns()
        time.sleep(0.5)
        assert sp.proc.poll() is None, "".join(sp.stderr)[-2000:]
        after = sp.status()
        stop.set()
        performer.join(5)
        assert sp.terminate(signal.SIGTERM) == 0, "".join(sp.stderr)[-2000:]
    misses = int(after["misses"]) - int(before["misses"])
    rejected = sum(int(after.get(k, 0)) for k in ("osc_errors", "osc_flood_dropped", "osc_undecodable"))
    ons_during = {
        a: sum(1 for t, _, v in notes_of(sp.rx, a) if t_flood <= t <= t_end and v > 0) for a in ADDRESSES
    }
    print(f"flood: sent={sent} rejected={rejected} misses={misses} ons_during={ons_during}")
    assert rejected > sent // 10, (sent, after)
    assert misses <= 6, (before, after)
    assert after["policy"] == "band_anticipate", after
    assert sum(ons_during.values()) >= 4, ons_during  # the band kept playing through the flood
    for address in ADDRESSES:
        ev = notes_of(sp.rx, address)
        assert overlaps(ev) == [], address
        assert before_first_burst(ev) == {}, f"{address} left sounding"


def _status_from(sock: socket.socket, port: int) -> dict[str, Any]:
    """Ask for the status and read the reply at the sender (the output port is unusable)."""
    sock.sendto(_msg("/liveagent/status"), ("127.0.0.1", port))
    end = time.monotonic() + 3.0
    while time.monotonic() < end:
        try:
            data, _ = sock.recvfrom(65536)
        except TimeoutError:
            continue
        m = OscMessage(data)
        if m.address == "/liveagent/status":
            p = list(m.params)
            return dict(zip(p[::2], p[1::2], strict=False))
    raise AssertionError("no status reply at the sender")


@pytest.mark.parametrize("out", ["closed", "no-route"])
def test_an_unusable_output_port_the_band_keeps_time(out: str) -> None:
    """``--osc-out`` to a closed loopback port (ICMP port unreachable) or to TEST-NET-1 (no listener, maybe
    no route): the band plays on, send errors are counted not raised, status answers, the exit is clean."""
    target = f"127.0.0.1:{free_udp_port()}" if out == "closed" else "192.0.2.1:9"
    with ServeProcess(*BAND_ANTICIPATE, "--osc-out", target, "--osc-reply", "sender") as sp:
        assert f"osc_out={target}" in " ".join(sp.stdout), sp.stdout
        ctl = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        ctl.bind(("127.0.0.1", 0))
        ctl.settimeout(0.1)
        try:
            first = _status_from(ctl, sp.osc_port)
            beat_s = 60.0 / 100.0
            for i in range(20):  # a free-running soprano (the grid is not needed: the band hears it)
                pitch = MELODY[i % len(MELODY)]
                ctl.sendto(_msg("/liveagent/note", pitch, 90), ("127.0.0.1", sp.osc_port))
                time.sleep(beat_s * 0.9)
                ctl.sendto(_msg("/liveagent/note", pitch, 0), ("127.0.0.1", sp.osc_port))
                time.sleep(beat_s * 0.1)
            last = _status_from(ctl, sp.osc_port)
        finally:
            ctl.close()
        assert sp.proc.poll() is None
        assert sp.terminate(signal.SIGTERM) == 0, "".join(sp.stderr)[-2000:]
    steps = int(last["steps"]) - int(first["steps"])
    print(
        f"{out}: steps={steps} misses={last['misses']} notes_out={last['notes_out']} "
        f"send_errors={last['osc_send_errors']} repeats={last['osc_noteoff_repeats']}"
    )
    # 12 s at 100 bpm is 80 sixteenths; the grid kept time whatever the network did.
    assert steps >= 60, (first, last)
    assert int(last["misses"]) <= 4, last
    assert int(last["notes_out"]) >= 6, last
    assert int(last["osc_noteoff_repeats"]) >= 3, last  # the safety net ran (sent or counted as errors)
    assert sp.rx.of("/liveagent/out/note") == [], "the collector is not the output: the test is wrong"


def test_a_wild_tempo_mid_play_with_the_anticipating_band() -> None:
    with ServeProcess(*BAND_ANTICIPATE) as sp:
        stop = threading.Event()
        performer = threading.Thread(target=play_grid, args=(sp, stop, 200), daemon=True)
        performer.start()
        assert wait_until(lambda: all(notes_of(sp.rx, v) for v in ADDRESSES), 20), "not every voice played"
        figures: dict[int, tuple[float, int, float, Any]] = {}
        for bpm in (20.0, 300.0, 20.0, 300.0):
            sp.send("/liveagent/tempo", bpm)
            # A tempo change lands on the next bar line: up to 12 s away at 20 bpm.
            assert wait_until(lambda b=bpm: abs(float(sp.status().get("bpm", 0)) - b) < 0.5, 16), bpm
            t_start = time.perf_counter_ns()
            time.sleep(4.0)
            st = sp.status()
            step = float(st["step_ns"])
            # The status's grid_t0_ns is the first anchor (a tempo change re-anchors the grid piecewise):
            # measure against this tempo's own grid, the first /out/beat after the change.
            beats = [t for t, a, _ in list(sp.rx.messages) if a == "/liveagent/out/beat" and t > t_start]
            ons = [
                t
                for a in ("alto", "tenor", "bass")
                for t, _, v in notes_of(sp.rx, a)
                if v > 0 and t > t_start
            ]
            late = (
                [(t - beats[0]) / 1e6 - round((t - beats[0]) / step) * step / 1e6 for t in ons]
                if beats
                else []
            )
            figures[len(figures)] = (bpm, len(ons), min(late, default=0.0), st["misses"])
        assert sp.proc.poll() is None, "".join(sp.stderr)[-2000:]
        stop.set()
        performer.join(10)
        final = sp.status()
        assert sp.terminate(signal.SIGTERM) == 0, "".join(sp.stderr)[-2000:]
    print(f"tempo: (bpm, note-ons, earliest ms vs grid, misses) {figures}")
    assert int(final["misses"]) <= 8, final
    for bpm, n_ons, earliest, _ in figures.values():
        if bpm == 300.0:
            assert n_ons >= 3, figures  # the band kept playing at 300 bpm (a step of 50 ms)
        # Never emitted at decision time (a lead of 5..20 ms ahead): at its step's time, as the beat (which
        # itself may leave a little after the notes of its step; seen -1.3 ms at 300 bpm).
        assert earliest > -5.0, figures
    for address in ADDRESSES:
        ev = notes_of(sp.rx, address)
        assert overlaps(ev) == [], address
        assert before_first_burst(ev) == {}, f"{address} left sounding"
        assert sounding_at(ev) == {}, address
