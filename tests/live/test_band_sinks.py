"""Band output routing in the sinks: each voice on its OSC address and MIDI channel, every voice released.

The real paths: an :class:`OscSink` sending to a real UDP receiver in another thread, a :class:`MidiIO` on a
real JACK server with real rtmidi peers. Unit tests for the pure bits (validation, message bytes, echo).
"""

from __future__ import annotations

import queue
import time
from collections.abc import Iterable
from typing import Any

import pytest

from liveagent.live.events import FanOutSink, InputEvent, NoteEvent
from liveagent.live.io.midi import MidiConfig, MidiIO, MidiSink, close_rtmidi_port
from liveagent.live.io.osc_out import OscSink, OscSinkConfig, band_note_address
from liveagent.live.io.osc_wire import OUT_NOTE
from liveagent.live.io.receiver import OscReceiver
from tests.live.conftest import JackServer

BAND = ("alto", "tenor", "bass")
ADDRS = [band_note_address(v) for v in BAND]


# ------------------------------------------------------------------------------------------- OSC


def _sounding(messages: Iterable[tuple[int, str, list[Any]]]) -> dict[str, set[int]]:
    """What a receiver holds per note address: a note-on adds its pitch, a note-off (velocity 0) removes
    it."""
    held: dict[str, set[int]] = {}
    for _, addr, params in messages:
        if addr.endswith("/note") and len(params) == 2:
            pitch, vel = params
            (held.setdefault(addr, set()).add if vel else held.setdefault(addr, set()).discard)(pitch)
    return held


def _wait(pred: Any, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.005)
    return bool(pred())


def _play_three_voices(sink: OscSink | FanOutSink) -> None:
    """A chord, then each voice moves: alto 72 -> 74, tenor 64 held, bass 48 -> 43."""
    sink.band_note_on(2, 48, 90)
    sink.band_note_on(1, 64, 80)
    sink.band_note_on(0, 72, 70)
    sink.band_note_off(0, 72)
    sink.band_note_on(0, 74, 71)
    sink.band_note_off(2, 48)
    sink.band_note_on(2, 43, 91)


def test_osc_band_voices_reach_their_addresses_and_bass_the_v1_address() -> None:
    rx = OscReceiver(rt_priority=0)
    sink = OscSink(OscSinkConfig(out=("127.0.0.1", rx.port), band=BAND, noteoff_twice=True))
    try:
        _play_three_voices(sink)
        # 5 note-ons and 2 note-offs (twice each) on the voices' addresses, the bass's 2 + 1 (x2) on v1
        assert _wait(lambda: len(rx.messages) >= 5 + 4 + 4)
        msgs = list(rx.messages)
        by = {a: [p for _, aa, p in msgs if aa == a] for a in (*ADDRS, OUT_NOTE)}
        assert by[ADDRS[0]] == [[72, 70], [72, 0], [72, 0], [74, 71]]
        assert by[ADDRS[1]] == [[64, 80]]
        assert by[ADDRS[2]] == [[48, 90], [48, 0], [48, 0], [43, 91]]
        assert by[OUT_NOTE] == by[ADDRS[2]]  # v1 clients hear the lowest voice, note for note
        # sounding before the flush: the check below can fail
        assert _sounding(msgs) == {ADDRS[0]: {74}, ADDRS[1]: {64}, ADDRS[2]: {43}, OUT_NOTE: {43}}
        assert [bytes(s).find(1) for s in sink.band_sounding] == [74, 64, 43]
        n = len(rx.messages)
        sink.all_notes_off()
        # the voices' sounding notes (twice each; the bass's on v1 too), then 128 note-offs on v1
        assert _wait(lambda: len(rx.messages) >= n + 3 * 2 + 2 + 128)
        held = _sounding(rx.messages)
        assert all(not held[a] for a in (*ADDRS, OUT_NOTE)), held
        assert not any(any(s) for s in sink.band_sounding)
        assert sink.send_errors == 0
    finally:
        sink.close()
        rx.close()


def test_osc_close_releases_every_voice_the_engine_left_sounding() -> None:
    """``close`` without a panic first (a sink closed on the way out): every voice is released anyway."""
    rx = OscReceiver(rt_priority=0)
    sink = OscSink(OscSinkConfig(out=("127.0.0.1", rx.port), band=BAND))
    fan = FanOutSink(sink)  # how serve builds it: the fan-out forwards the band calls
    try:
        _play_three_voices(fan)
        assert _wait(lambda: len(rx.messages) >= 5 + 2 + 3)
        assert _sounding(rx.messages) == {ADDRS[0]: {74}, ADDRS[1]: {64}, ADDRS[2]: {43}, OUT_NOTE: {43}}
        fan.close()
        assert _wait(lambda: all(not s for s in _sounding(rx.messages).values()))
        assert fan.errors == [0]
    finally:
        rx.close()


def test_osc_solo_sink_is_unchanged_by_the_band() -> None:
    """The solo path (note_on/note_off, the 128-pitch panic) sends exactly what it did: no voice address."""
    rx = OscReceiver(rt_priority=0)
    sink = OscSink(OscSinkConfig(out=("127.0.0.1", rx.port), band=BAND, noteoff_twice=True))
    try:
        sink.note_on(60, 100)
        sink.note_off(60)
        sink.all_notes_off()
        assert _wait(lambda: len(rx.messages) >= 3 + 128)
        assert {a for _, a, _ in rx.messages} == {OUT_NOTE}
        assert [p for _, _, p in list(rx.messages)[:3]] == [[60, 100], [60, 0], [60, 0]]
    finally:
        sink.close()
        rx.close()


def test_osc_band_config_is_checked_and_voices_bounds() -> None:
    for bad in (("alto", "alto"), ("al to",), ("",), ("a/b",)):
        with pytest.raises(ValueError):
            OscSinkConfig(band=bad)
    assert band_note_address("tenor") == "/liveagent/out/tenor/note"
    sink = OscSink(OscSinkConfig(out=("127.0.0.1", 9), band=BAND))
    try:
        with pytest.raises(IndexError):
            sink.band_note_on(-1, 60, 90)  # never silently another voice
        with pytest.raises(IndexError):
            sink.band_note_on(3, 60, 90)
        sink.band_note_on(1, 60, 0)  # velocity 0 is a note-off: nothing sounds
        assert not any(any(s) for s in sink.band_sounding)
    finally:
        sink.close()
    solo = OscSink(OscSinkConfig(out=("127.0.0.1", 9)))
    try:
        with pytest.raises(IndexError):
            solo.band_note_on(0, 60, 90)  # a solo sink has no voices
    finally:
        solo.close()


# ------------------------------------------------------------------------------------------- MIDI (pure)


class FakeOut:
    def __init__(self) -> None:
        self.sent: list[list[int]] = []

    def send_message(self, msg: list[int]) -> None:
        self.sent.append(list(msg))


def test_midi_sink_puts_each_voice_on_its_channel_and_releases_all() -> None:
    out = FakeOut()
    sink = MidiSink(out, channel=1, band_channels=(1, 2, 3))
    sink.band_note_on(0, 72, 70)
    sink.band_note_on(1, 64, 80)
    sink.band_note_on(2, 48, 90)
    sink.band_note_on(2, 43, 0)  # velocity 0 = off (of a silent note: harmless)
    sink.band_note_off(1, 64)
    sink.band_note_on(1, 65, 81)
    assert out.sent == [
        [0x91, 72, 70],
        [0x92, 64, 80],
        [0x93, 48, 90],
        [0x83, 43, 0],
        [0x82, 64, 0],
        [0x92, 65, 81],
    ]
    out.sent.clear()
    sink.note_on(60, 50)  # solo on channel 1 (0-based), the alto's channel too
    sink.close()
    assert out.sent[0] == [0x91, 60, 50]
    # per channel: its notes off, then its CC 123 (the solo channel first)
    ch1 = [[0x81, 60, 0], [0x81, 72, 0], [0xB1, 123, 0]]
    assert out.sent[1:] == [*ch1, [0x82, 65, 0], [0xB2, 123, 0], [0x83, 48, 0], [0xB3, 123, 0]]
    assert not any(sink.sounding)
    with pytest.raises(IndexError):
        sink.band_note_on(-1, 60, 90)
    with pytest.raises(ValueError):
        MidiSink(out, channel=0, band_channels=(16,))


def test_midi_solo_sink_bytes_are_unchanged() -> None:
    out = FakeOut()
    sink = MidiSink(out, channel=3)
    sink.note_on(60, 90)
    sink.note_on(64, 0)
    sink.note_off(64)
    sink.thru(61, 33)
    sink.thru(61, 0)
    sink.all_notes_off()
    played = [[0x93, 60, 90], [0x83, 64, 0], [0x83, 64, 0], [0x93, 61, 33], [0x83, 61, 0]]
    assert out.sent == [*played, [0x83, 60, 0], [0xB3, 123, 0]]


def test_midi_band_config_is_checked() -> None:
    with pytest.raises(ValueError):
        MidiConfig(band_channels=(1, 1, 2))
    with pytest.raises(ValueError):
        MidiConfig(band_channels=(1, 2, 16))
    assert MidiConfig(band_channels=(1, 2, 3)).band_channels == (1, 2, 3)


def test_midi_echo_of_every_band_channel_is_ours_and_the_performer_still_heard() -> None:
    """With the performer's channels chosen to include the band's, a message on a band channel is taken for
    our echo only when it has the very bytes we sent there; a performer key on that channel is never lost."""
    got: list[InputEvent] = []
    io = MidiIO(got.append, MidiConfig(in_channels=(0, 1, 2, 3), band_channels=(1, 2, 3)))
    io.midi_out = out = FakeOut()  # an output port, as far as echo suppression cares
    sink = io.sink = MidiSink(out, 1, io, band_channels=(1, 2, 3))
    assert io.agent_channels == {1, 2, 3}
    sink.band_note_on(1, 64, 80)  # tenor on channel 2 (0-based)
    sink.band_note_on(2, 48, 90)
    io.handle([0x92, 64, 80], 1)  # our tenor coming back
    io.handle([0x93, 48, 90], 2)  # our bass coming back
    io.handle([0x93, 50, 90], 3)  # not what we sent: the performer
    io.handle([0x90, 60, 99], 4)  # the performer on channel 1
    sink.band_note_off(1, 64)
    io.handle([0x82, 64, 0], 5)  # our tenor's note-off coming back
    assert got == [NoteEvent(3, 50, 90, "midi"), NoteEvent(4, 60, 99, "midi")]
    assert io.counters.echo_suppressed == 3
    sink.all_notes_off()
    for ch in (1, 2, 3):  # each channel's own CC 123 coming back is not the performer's All Notes Off
        io.handle([0xB0 | ch, 123, 0], 6)
    assert io.counters.echo_suppressed == 6 and io.counters.notes_off_in == 0


def test_midi_filtered_warning_names_the_band_channel() -> None:
    io = MidiIO(lambda e: None, MidiConfig(band_channels=(1, 2, 3)))
    io._channels -= io.agent_channels  # as with an output port (none here: no JACK needed)
    io.midi_out = FakeOut()
    io.handle([0x93, 60, 100], 1)
    io.handle([0x91, 61, 100], 2)
    assert io.counters.filtered_on_out_channel == 2
    warnings = io.filtered_warnings()
    assert any("channel 4" in w and "band voice" in w and "--band-channels" in w for w in warnings), warnings
    assert any("channel 2" in w and "--midi-out-channel" in w for w in warnings), warnings


# ------------------------------------------------------------------------------------------- MIDI (JACK)


def _rt(kind: str, name: str) -> Any:
    import rtmidi

    cls = rtmidi.MidiIn if kind == "in" else rtmidi.MidiOut
    return cls(rtapi=rtmidi.API_UNIX_JACK, name=name)


def _held(received: list[list[int]]) -> set[tuple[int, int]]:
    """(channel, pitch) a synth would hold after ``received`` (CC 123 releases its channel)."""
    held: set[tuple[int, int]] = set()
    for m in received:
        kind, ch = m[0] & 0xF0, m[0] & 0x0F
        if kind == 0x90 and m[2]:
            held.add((ch, m[1]))
        elif kind in (0x80, 0x90):
            held.discard((ch, m[1]))
        elif kind == 0xB0 and m[1] == 123:
            held = {k for k in held if k[0] != ch}
    return held


@pytest.mark.system
@pytest.mark.timeout(60)
def test_jack_band_voices_on_their_channels_and_all_released_on_close(jack_server: JackServer) -> None:
    q: queue.Queue[InputEvent] = queue.Queue()
    io = MidiIO(q.put, MidiConfig(api="jack", virtual=True, client_name="la-band", band_channels=(1, 2, 3)))
    peer_in = _rt("in", "band-peer-in")
    peer_in.open_virtual_port("in")
    received: list[list[int]] = []
    peer_in.set_callback(lambda m, d=None: received.append(list(m[0])))
    try:
        jack_server.wait_port("la-band-out:out")
        jack_server.connect("la-band-out:out", "band-peer-in:in")
        time.sleep(0.1)
        sink = io.sink
        assert sink is not None
        sink.band_note_on(0, 72, 70)
        sink.band_note_on(1, 64, 80)
        sink.band_note_on(2, 48, 90)
        sink.band_note_off(2, 48)
        sink.band_note_on(2, 43, 91)
        assert _wait(lambda: len(received) >= 5)
        assert received[:5] == [[0x91, 72, 70], [0x92, 64, 80], [0x93, 48, 90], [0x83, 48, 0], [0x93, 43, 91]]
        assert _held(received) == {(1, 72), (2, 64), (3, 43)}  # sounding: the check below can fail
        io.close()  # closes the sink: every voice's notes off, CC 123 on each channel
        assert _wait(lambda: len(received) >= 5 + 3 + 3)
        offs = [m for m in received[5:] if m[0] & 0xF0 == 0x80]
        assert sorted(offs) == [[0x81, 72, 0], [0x82, 64, 0], [0x83, 43, 0]]
        assert _held(received[:5] + offs) == set()  # released by the note-offs themselves, not only CC 123
        ccs = sorted(m for m in received[5:] if m[0] & 0xF0 == 0xB0)
        assert ccs == [[0xB1, 123, 0], [0xB2, 123, 0], [0xB3, 123, 0]]
    finally:
        io.close()
        close_rtmidi_port(peer_in)


@pytest.mark.system
@pytest.mark.timeout(60)
@pytest.mark.parametrize("listen_on_band", [False, True])
def test_jack_band_echo_never_reaches_the_engine(jack_server: JackServer, listen_on_band: bool) -> None:
    """Our band's output looped back to our input: filtered by default (every band channel is ours), and
    suppressed as our echo when the performer's channels include the band's; the performer is still heard."""
    q: queue.Queue[InputEvent] = queue.Queue()
    name = f"la-bandloop{int(listen_on_band)}"
    chans = (0, 1, 2, 3) if listen_on_band else ()
    cfg = MidiConfig(
        api="jack",
        virtual=True,
        client_name=name,
        feedback_ms=100.0,
        in_channels=chans,
        band_channels=(1, 2, 3),
    )
    io = MidiIO(q.put, cfg)
    peer_out = _rt("out", f"{name}-peer")
    peer_out.open_virtual_port("out")
    try:
        jack_server.wait_port(f"{name}-out:out")
        jack_server.connect(f"{name}-out:out", f"{name}:in")  # our output loops back to our input
        jack_server.connect(f"{name}-peer:out", f"{name}:in")
        time.sleep(0.1)
        sink = io.sink
        assert sink is not None
        for voice, pitch in enumerate((72, 64, 48)):
            sink.band_note_on(voice, pitch, 80)
            sink.band_note_off(voice, pitch)
        c = io.counters
        assert _wait(lambda: c.echo_suppressed + c.filtered >= 6)
        assert (c.echo_suppressed, c.filtered) == ((6, 0) if listen_on_band else (0, 6))
        assert q.empty(), "our own band's echo must not reach the engine as performer input"
        peer_out.send_message([0x90, 60, 100])  # the performer on channel 1
        ev = q.get(timeout=2)
        assert isinstance(ev, NoteEvent) and ev[1:] == (60, 100, "midi")
    finally:
        io.close()
        close_rtmidi_port(peer_out)
