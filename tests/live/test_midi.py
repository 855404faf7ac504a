"""MIDI I/O: byte decoding, and real JACK virtual ports with independent peers (rtmidi, jack_midi_clock)."""

from __future__ import annotations

import json
import logging
import queue
import subprocess
import sys
import time
from typing import Any

import numpy as np
import pytest

from liveagent.live.engine.midi_clock import MidiClockFollower
from liveagent.live.events import Control, ControlEvent, FanOutSink, InputError, InputEvent, NoteEvent
from liveagent.live.io.device_clock import DeviceClockMapper
from liveagent.live.io.midi import (
    CLOCK,
    CONTINUE,
    SPP,
    START,
    MidiClockOut,
    MidiConfig,
    MidiIO,
    MidiSink,
    api_from_env,
    close_rtmidi_port,
    find_port,
)
from tests.live.conftest import JackServer
from tests.support import require_tool


def _io(**kw: Any) -> tuple[MidiIO, list[InputEvent]]:
    """A MidiIO without ports (decoding only): ``handle`` is what the rtmidi callback calls."""
    got: list[InputEvent] = []
    return MidiIO(got.append, MidiConfig(**kw)), got


def test_decode_notes_and_channel_filter() -> None:
    io, got = _io(in_channels=(0, 2))
    io.handle([0x90, 60, 100], 1)
    io.handle([0x80, 60, 64], 2)
    io.handle([0x92, 62, 0], 3)  # note-on velocity 0 = off
    io.handle([0x91, 64, 100], 4)  # channel 1: filtered
    io.handle([0xB0, 7, 100], 5)  # CC: ignored
    assert got == [NoteEvent(1, 60, 100, "midi"), NoteEvent(2, 60, 0, "midi"), NoteEvent(3, 62, 0, "midi")]
    assert io.counters.filtered == 1 and io.counters.ignored == 1 and io.counters.notes == 3


def test_decode_clock_transport_and_spp() -> None:
    io, got = _io()
    for msg in ([0xFA], [0xF8], [0xFC], [0xF2, 0x10, 0x01], [0xFB], [0xFE]):
        io.handle(msg, 7)
    kinds = [(e.kind, e.value) for e in got if isinstance(e, ControlEvent)]
    assert kinds == [
        (Control.START, 0.0),
        (Control.CLOCK_TICK, 0.0),
        (Control.STOP, 0.0),
        (Control.SONG_POSITION, float(0x10 | (1 << 7))),
        (Control.CONTINUE, 0.0),
    ]


def test_garbage_midi_is_counted_and_rate_limited() -> None:
    io, got = _io(error_reports_per_s=2.0)
    garbage = [[], [0x40, 1, 2], [0x90, 60], [0x90, 200, 1], [0xF2, 1], [0xF4], [0xC0, 1, 2]] * 5
    for i, g in enumerate(garbage):
        io.handle(g, 1000 + i)  # all within a microsecond: only the burst allowance is reported
    io.handle([0x90, 60, 1], 5000)
    assert io.counters.errors == len(garbage)
    errors = [e for e in got if isinstance(e, InputError)]
    assert 1 <= len(errors) <= 2 and io.counters.suppressed == len(garbage) - len(errors)
    assert isinstance(got[-1], NoteEvent)


def test_api_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIDO_BACKEND", "mido.backends.rtmidi/UNIX_JACK")
    assert api_from_env() == "UNIX_JACK"
    assert api_from_env("alsa") == "LINUX_ALSA"
    monkeypatch.delenv("MIDO_BACKEND")
    assert api_from_env() == "auto"


def test_find_port() -> None:
    ports = ["system:midi_capture_1", "liveagent-out:out", "other:out"]
    assert find_port(ports, "other:out") == 2
    assert find_port(ports, "LIVEAGENT") == 1
    with pytest.raises(ValueError, match="several"):
        find_port(ports, "out")
    with pytest.raises(ValueError, match="not found"):
        find_port(ports, "nope")


class FakeOut:
    def __init__(self) -> None:
        self.sent: list[list[int]] = []

    def send_message(self, msg: list[int]) -> None:
        self.sent.append(list(msg))


def test_sink_tracks_notes_and_all_notes_off() -> None:
    out = FakeOut()
    sink = MidiSink(out, channel=3)
    sink.note_on(60, 90)
    sink.note_on(64, 0)  # velocity 0 = off
    sink.note_on(67, 80)
    sink.note_off(67)
    out.sent.clear()
    sink.all_notes_off()
    assert out.sent == [[0x83, 60, 0], [0xB3, 123, 0]]


class BrokenOut:
    """An rtmidi output whose port vanished: every send raises as rtmidi does."""

    def send_message(self, msg: list[int]) -> None:
        import rtmidi

        raise rtmidi.SystemError("port gone")


class RecordingSink:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def note_on(self, pitch: int, velocity: int) -> None:
        self.calls.append(("note_on", pitch, velocity))

    def note_off(self, pitch: int) -> None:
        self.calls.append(("note_off", pitch))

    def all_notes_off(self) -> None:
        self.calls.append(("all_notes_off",))

    def beat(self, bar: int, beat: int) -> None:
        self.calls.append(("beat", bar, beat))

    def status(self, fields: dict[str, object], reply_to: tuple[str, int] | None) -> None:
        self.calls.append(("status",))

    def error(self, message: str, reply_to: tuple[str, int] | None) -> None:
        self.calls.append(("error", message))

    def close(self) -> None:
        self.calls.append(("close",))


class RaisingSink(RecordingSink):
    def __getattribute__(self, name: str) -> Any:
        if name in ("note_on", "note_off", "all_notes_off", "beat", "status", "error", "close"):
            raise RuntimeError(f"{name} exploded")
        return super().__getattribute__(name)


def test_fanout_isolates_a_failing_sink(caplog: pytest.LogCaptureFixture) -> None:
    """A sink that raises neither stops the caller nor keeps the others from their note-offs."""
    good = RecordingSink()
    fan = FanOutSink(RaisingSink(), good)
    with caplog.at_level(logging.WARNING, logger="liveagent.live.events"):
        fan.note_on(60, 90)
        fan.note_off(60)
        fan.all_notes_off()
        fan.beat(1, 2)
        fan.status({}, None)
        fan.error("x", None)
        fan.close()
    assert good.calls == [
        ("note_on", 60, 90), ("note_off", 60), ("all_notes_off",), ("beat", 1, 2), ("status",),
        ("error", "x"), ("close",),
    ]  # fmt: skip
    assert fan.errors == [7, 0]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "note_on exploded" in warnings[0].getMessage()  # rate-limited


def test_midi_sink_counts_send_errors_and_the_other_sink_still_plays() -> None:
    midi = MidiSink(BrokenOut(), channel=0)
    good = RecordingSink()
    fan = FanOutSink(midi, good)
    fan.note_on(60, 90)
    fan.note_off(60)
    fan.note_on(62, 90)
    fan.all_notes_off()
    midi.thru(64, 100)
    assert midi.send_errors == 6 and midi.sent == 0  # 3 notes, note-off 62 + CC 123, thru
    assert fan.errors == [0, 0]  # the MIDI sink absorbed its own errors
    assert ("note_off", 60) in good.calls and good.calls[-1] == ("all_notes_off",)
    midi.close()  # never raises, even with the port gone


def _clock_out(beats_per_bar: int | None = None) -> tuple[MidiClockOut, list[list[int]], list[int]]:
    """A MidiClockOut on a fake clock (its pulse thread never sees time pass): what it sends is kept."""
    sent: list[list[int]] = []
    now = [10**12]
    return MidiClockOut(sent.append, beats_per_bar, now=lambda: now[0]), sent, now


def _transport(sent: list[list[int]]) -> list[list[int]]:
    return [m for m in sent if m != [CLOCK]]


@pytest.mark.parametrize("learn", [False, True])
def test_clock_out_song_position_uses_the_grid_meter(learn: bool) -> None:
    clock, sent, now = _clock_out(None if learn else 3)
    try:
        if learn:  # a bar of 3/4 seen before: the meter is learned at the bar line
            for bar, beat in ((0, 0), (0, 1), (0, 2), (1, 0)):
                now[0] += 500_000_000
                clock.on_beat(bar, beat)
            assert clock.beats_per_bar == 3
            clock.stop()
        sent.clear()
        clock.on_beat(2, 1)  # resume at bar 2 beat 1 of 3/4: 7 beats = 28 sixteenths
        assert _transport(sent) == [[SPP, 28, 0], [CONTINUE]] and sent[-1] == [CLOCK]
    finally:
        clock.close()


def test_clock_out_tempo_is_smoothed_over_beats() -> None:
    """One late beat must not change the pulse spacing; a real tempo change is followed within 3 beats."""
    clock, sent, now = _clock_out(4)
    ms = 1_000_000
    try:
        t0 = now[0]
        beats = [0, 500, 1000, 1540, 2000, 2500, 3000]  # the 4th beat 40 ms late
        for i, t in enumerate(beats):
            now[0] = t0 + t * ms
            clock.on_beat(i // 4, i % 4)
            if i >= 2:
                assert clock.period_ns == 500 * ms, (i, clock.period_ns)
        assert sent[0] == [START]
        now[0] += 1000 * ms  # a skipped beat (7 -> 9): its interval counts as two beats
        clock.on_beat(2, 1)
        assert clock.period_ns == 500 * ms
        for i in range(10, 13):  # 150 BPM from here
            now[0] += 400 * ms
            clock.on_beat(i // 4, i % 4)
        assert clock.period_ns == 400 * ms
    finally:
        clock.close()


# ------------------------------------------------------------------------------------------- JACK


def _rt(kind: str, name: str) -> Any:
    import rtmidi

    cls = rtmidi.MidiIn if kind == "in" else rtmidi.MidiOut
    return cls(rtapi=rtmidi.API_UNIX_JACK, name=name)


@pytest.mark.system
@pytest.mark.timeout(60)
def test_jack_notes_in_and_out(jack_server: JackServer) -> None:
    q: queue.Queue[InputEvent] = queue.Queue()
    io = MidiIO(q.put, MidiConfig(api="jack", virtual=True, client_name="la-notes", out_channel=1))
    peer_out = _rt("out", "peer-out")
    peer_out.open_virtual_port("out")
    peer_in = _rt("in", "peer-in")
    peer_in.open_virtual_port("in")
    received: list[tuple[int, list[int]]] = []
    peer_in.set_callback(lambda m, d=None: received.append((time.perf_counter_ns(), list(m[0]))))
    try:
        jack_server.wait_port("la-notes:in")
        jack_server.connect("peer-out:out", "la-notes:in")
        jack_server.connect("la-notes-out:out", "peer-in:in")
        time.sleep(0.1)
        peer_out.send_message([0x90, 60, 100])
        peer_out.send_message([0x80, 60, 0])
        ev1, ev2 = q.get(timeout=2), q.get(timeout=2)
        assert ev1[1:] == (60, 100, "midi") and ev2[1:] == (60, 0, "midi")
        assert io.sink is not None
        t0 = time.perf_counter_ns()
        io.sink.note_on(72, 80)
        io.sink.note_off(72)
        deadline = time.monotonic() + 2
        while len(received) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [m for _, m in received[:2]] == [[0x91, 72, 80], [0x81, 72, 0]]
        # one JACK period (1.33 ms at -p 64) plus scheduling: generous bound, not a speed test
        assert received[0][0] - t0 < 200e6
    finally:
        io.close()
        close_rtmidi_port(peer_out)
        close_rtmidi_port(peer_in)


@pytest.mark.system
@pytest.mark.timeout(60)
@pytest.mark.parametrize("same_channel", [False, True])
def test_jack_feedback_loop_is_suppressed(jack_server: JackServer, same_channel: bool) -> None:
    """Our output looped back to our input never reaches the engine: by default the performer's channels
    leave ours out (filtered); when they include it, the very bytes we sent are our echo (suppressed)."""
    q: queue.Queue[InputEvent] = queue.Queue()
    name = f"la-loop{int(same_channel)}"
    chans = (1,) if same_channel else ()
    io = MidiIO(
        q.put, MidiConfig(api="jack", virtual=True, client_name=name, feedback_ms=100.0, in_channels=chans)
    )
    try:
        jack_server.wait_port(f"{name}-out:out")
        jack_server.connect(f"{name}-out:out", f"{name}:in")  # our output loops back to our input
        time.sleep(0.1)
        assert io.sink is not None
        io.sink.note_on(65, 70)
        io.sink.note_off(65)
        io.sink.all_notes_off()  # its CC 123 is not the performer's All Notes Off
        c = io.counters
        deadline = time.monotonic() + 2
        while c.echo_suppressed + c.filtered < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert (c.echo_suppressed, c.filtered) == ((3, 0) if same_channel else (0, 3))
        assert q.empty(), "our own echo must not reach the engine as performer input"
    finally:
        io.close()


@pytest.mark.system
@pytest.mark.timeout(60)
def test_jack_thru(jack_server: JackServer) -> None:
    q: queue.Queue[InputEvent] = queue.Queue()
    io = MidiIO(q.put, MidiConfig(api="jack", virtual=True, client_name="la-thru", thru=True, out_channel=2))
    peer_out = _rt("out", "thru-peer-out")
    peer_out.open_virtual_port("out")
    peer_in = _rt("in", "thru-peer-in")
    peer_in.open_virtual_port("in")
    received: list[list[int]] = []
    peer_in.set_callback(lambda m, d=None: received.append(list(m[0])))
    try:
        jack_server.wait_port("la-thru-out:out")
        jack_server.connect("thru-peer-out:out", "la-thru:in")
        jack_server.connect("la-thru-out:out", "thru-peer-in:in")
        time.sleep(0.1)
        peer_out.send_message([0x90, 55, 99])
        assert q.get(timeout=2)[1:] == (55, 99, "midi")
        deadline = time.monotonic() + 2
        while not received and time.monotonic() < deadline:
            time.sleep(0.01)
        assert received == [[0x92, 55, 99]]
    finally:
        io.close()
        close_rtmidi_port(peer_out)
        close_rtmidi_port(peer_in)


@pytest.mark.system
@pytest.mark.timeout(60)
def test_jack_midi_clock_from_independent_peer(jack_server: JackServer) -> None:
    """jack_midi_clock (driven by JACK transport) at 150 BPM: our ticks arrive at 24 PPQN of that tempo."""
    require_tool("jack_midi_clock", "jack_transport")
    q: queue.Queue[InputEvent] = queue.Queue()
    io = MidiIO(q.put, MidiConfig(api="jack", in_port=None, virtual=True, client_name="la-clock"))
    env = jack_server.env()
    clock = subprocess.Popen(
        ["jack_midi_clock", "-b", "150", "-B"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        jack_server.wait_port("jack_midi_clock:mclk_out")
        jack_server.connect("jack_midi_clock:mclk_out", "la-clock:in")
        subprocess.run(
            ["jack_transport"], input="play\n", env=env, text=True, capture_output=True, timeout=10
        )
        ticks: list[int] = []
        started = False
        deadline = time.monotonic() + 10
        while len(ticks) < 120 and time.monotonic() < deadline:
            try:
                ev = q.get(timeout=0.5)
            except queue.Empty:
                continue
            if isinstance(ev, ControlEvent):
                if ev.kind in (Control.START, Control.CONTINUE):
                    started = True
                elif ev.kind is Control.CLOCK_TICK:
                    ticks.append(ev.t_ns)
        assert started, "jack_midi_clock sends Start (or Continue) when the transport rolls"
        assert len(ticks) >= 120
        t = np.array(ticks[10:], dtype=np.float64)
        # A fit over all ticks: the stamps come from JACK's timeline (no Python stalls in them) but are
        # quantized to JACK periods, which biases a median of one-beat spans by up to a period per beat.
        slope = float(np.polyfit(np.arange(t.size), t, 1)[0])
        bpm = 60e9 / (slope * 24)
        assert bpm == pytest.approx(150.0, rel=0.015)
        _follow_with_engine_clock(ticks)
    finally:
        subprocess.run(
            ["jack_transport"], input="stop\n", env=env, text=True, capture_output=True, timeout=10
        )
        clock.terminate()
        clock.wait(timeout=5)
        io.close()


def _follow_with_engine_clock(ticks: list[int]) -> None:
    """Feed the received ticks to the engine's MidiClockFollower: its tempo estimate matches the tempo the
    master delivered over the follower's window (the last 48 ticks). Not 150 BPM exactly: a loaded dummy
    JACK server loses wall time at each xrun, and jack_midi_clock, counting frames, with it."""
    f = MidiClockFollower(now=lambda: ticks[-1])
    f.handle(ControlEvent(ticks[0] - 1000, Control.START))
    for t in ticks:
        f.handle(ControlEvent(t, Control.CLOCK_TICK))
    last = np.array(ticks[-48:], dtype=np.float64)
    delivered = 60e9 / (np.polyfit(np.arange(last.size), last, 1)[0] * 24)
    assert delivered == pytest.approx(150.0, rel=0.05)
    assert f.bpm == pytest.approx(delivered, rel=0.01)


@pytest.mark.system
@pytest.mark.timeout(60)
def test_jack_clock_out_master(jack_server: JackServer) -> None:
    """Clock master: Start, 24 pulses per beat locked to the engine's beats, Stop when they stop."""
    io = MidiIO(lambda e: None, MidiConfig(api="jack", virtual=True, client_name="la-master", clock_out=True))
    peer_in = _rt("in", "master-peer")
    peer_in.ignore_types(sysex=False, timing=False, active_sense=False)
    peer_in.open_virtual_port("in")
    received: list[tuple[int, int]] = []
    mapper = DeviceClockMapper()  # stamps from the receiver's JACK thread, not our loaded callback
    peer_in.set_callback(
        lambda m, d=None: received.append((mapper.map(m[1], time.perf_counter_ns()), m[0][0]))
    )
    try:
        jack_server.wait_port("la-master-out:out")
        jack_server.connect("la-master-out:out", "master-peer:in")
        time.sleep(0.1)
        assert io.sink is not None
        period = 0.25  # 240 BPM beats
        t0 = time.perf_counter()
        for b in range(8):
            while time.perf_counter() < t0 + b * period:
                time.sleep(0.0005)
            io.sink.beat(b // 4, b % 4)
        time.sleep(period * 3)
        statuses = [s for _, s in received]
        assert statuses[0] == 0xFA  # Start
        assert 0xFC in statuses  # Stop after the beats stopped
        clocks = [t for t, s in received if s == 0xF8]
        # 7 full beats of 24 pulses plus the last beat's pulses (24, or fewer if Stop came first)
        assert 7 * 24 <= len(clocks) <= 8 * 24 + 1
        # the pulse period over six beats (the receiver sees pulses once per JACK period: a fit, not
        # the median of intervals, which would read the JACK period)
        pulses = np.array(clocks[24 : 7 * 24], dtype=np.float64)
        slope = np.polyfit(np.arange(pulses.size), pulses, 1)[0]
        assert slope == pytest.approx(period / 24 * 1e9, rel=0.05)
    finally:
        io.close()
        close_rtmidi_port(peer_in)


@pytest.mark.timeout(60)
def test_ports_without_a_backend_is_graceful() -> None:
    env = {
        **__import__("os").environ,
        "JACK_DEFAULT_SERVER": "liveagent-no-such-server",
        "MIDO_BACKEND": "mido.backends.rtmidi/UNIX_JACK",
        "JACK_NO_START_SERVER": "1",
    }
    r = subprocess.run(
        [sys.executable, "-m", "liveagent", "ports", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert r.returncode == 1
    out = json.loads(r.stdout)
    assert out["backend"] is None and "no MIDI backend available" in out["error"]
    r = subprocess.run(
        [sys.executable, "-m", "liveagent", "ports"], capture_output=True, text=True, env=env, timeout=30
    )
    assert r.returncode == 1 and "no MIDI backend available" in r.stdout and "Traceback" not in r.stderr


@pytest.mark.system
@pytest.mark.timeout(60)
def test_ports_lists_jack_ports(jack_server: JackServer) -> None:
    peer = _rt("out", "ports-peer")
    peer.open_virtual_port("keys")
    try:
        r = subprocess.run(
            [sys.executable, "-m", "liveagent", "ports", "--json"],
            capture_output=True,
            text=True,
            env=jack_server.env(),
            timeout=30,
        )
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        assert out["backend"] == "jack"
        assert any("ports-peer:keys" in p for p in out["inputs"]), out
    finally:
        close_rtmidi_port(peer)
