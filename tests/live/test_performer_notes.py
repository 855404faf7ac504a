"""Performer notes on stage: a lost note-off, All Notes Off, Stop, Reset, echo suppression, MIDI thru loops.

The end-to-end cases run a real `liveagent serve` on a real JACK server (``jackd -d dummy``) with rtmidi
peers in this process: a keyboard (``perf-*:out``) and a synth that hears what serve sends (``*-synth:in``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from liveagent.live.engine.performer import PerformerLine
from liveagent.live.events import Control, ControlEvent, InputEvent, NoteEvent
from liveagent.live.io.midi import MidiConfig, MidiIO, MidiSink, close_rtmidi_port
from liveagent.music.tokens import HOLD, REST, onset
from tests.live.conftest import JackServer
from tests.live.policies import write_pattern_policy
from tests.live.serve_helpers import ServeProcess

# ------------------------------------------------------------------------------------- pure logic


def test_a_lone_held_key_is_a_pedal_point_until_four_times_the_limit() -> None:
    line = PerformerLine(max_hold_steps=4)
    line.add(0, 72, 100)  # held on purpose, or its note-off never comes: nothing else is played
    toks = [line.finalize() for _ in range(18)]
    assert toks == [onset(72)] + [HOLD] * 15 + [REST, REST]
    assert line.timed_out == 1 and not line.held


def test_a_key_played_over_is_released_after_the_hold_limit() -> None:
    line = PerformerLine(max_hold_steps=4)
    line.add(0, 72, 100)  # phantom: the top of the skyline
    line.add(2, 60, 90)  # the performer plays on below it
    line.add(3, 60, 0)
    toks = [line.finalize() for _ in range(6)]
    assert toks == [onset(72), HOLD, HOLD, HOLD, REST, REST]
    assert line.timed_out == 1 and not line.held


def test_a_phantom_no_longer_hides_the_lower_notes_after_the_limit() -> None:
    line = PerformerLine(max_hold_steps=4)
    line.add(0, 72, 100)  # phantom: the top of the skyline
    line.add(1, 64, 90)  # played under it: hidden
    line.add(2, 64, 0)
    for _ in range(4):
        line.finalize()
    line.add(4, 60, 90)  # the performer plays below it: heard at once
    assert line.finalize() == onset(60)


def test_restrike_restarts_the_hold() -> None:
    line = PerformerLine(max_hold_steps=4)
    line.add(0, 60, 100)
    line.add(3, 60, 100)  # the same key struck again (no note-off between: some keyboards do)
    toks = [line.finalize() for _ in range(21)]
    assert toks == [onset(60), HOLD, HOLD, onset(60)] + [HOLD] * 15 + [REST, REST]  # a lone key: 4x the limit


def test_notes_off_in_order_and_restart_clear_the_keys() -> None:
    line = PerformerLine()
    line.add(0, 60, 100)
    line.notes_off(1)  # All Notes Off arrived in step 1
    line.add(1, 64, 100)  # a note after it stays
    assert [line.finalize() for _ in range(2)] == [onset(60), onset(64)]
    assert line.cleared == 1 and list(line.held) == [64]
    assert line.notes_off() == 1 and not line.held and line.cleared == 2  # the stop
    line.live_note(67, 90)  # pressed while stopped, or with the start itself
    line.restart(0)  # a new run keeps it: the player pressed play and played
    assert list(line.held) == [67] and line.cleared == 2


def _io(**kw: Any) -> tuple[MidiIO, list[InputEvent]]:
    got: list[InputEvent] = []
    return MidiIO(got.append, MidiConfig(**kw)), got


def test_all_notes_off_all_sound_off_and_reset_are_decoded() -> None:
    io, got = _io(in_channels=(0,))
    io.handle([0xB0, 123, 0], 1)
    io.handle([0xB0, 120, 0], 2)
    io.handle([0xB3, 123, 0], 3)  # not a performer channel
    io.handle([0xFF], 4)
    io.handle([0xB0, 64, 127], 5)  # sustain: still ignored
    kinds = [(e.t_ns, e.kind) for e in got if isinstance(e, ControlEvent)]
    assert kinds == [
        (1, Control.PERFORMER_NOTES_OFF),
        (2, Control.PERFORMER_NOTES_OFF),
        (4, Control.PERFORMER_NOTES_OFF),
    ]
    assert io.counters.notes_off_in == 3 and io.counters.filtered == 1


class _Out:
    def __init__(self) -> None:
        self.sent: list[list[int]] = []

    def send_message(self, msg: list[int]) -> None:
        self.sent.append(list(msg))


def test_thru_rate_guard_breaks_a_loop_that_changes_what_comes_back() -> None:
    """A loop that transposes (or re-channels) what it returns is no exact echo: the rate gives it away."""
    io, got = _io(thru=True, thru_max_rate=50.0)
    io.sink = MidiSink(_Out(), 1, io)
    t = 10**12
    for i in range(200):  # 200 different notes within 200 ms
        io.handle([0x90, i % 128, 1 + i % 100], t + i * 1_000_000)
    assert io.counters.thru_loops == 1 and not io.thru_active
    assert io.counters.thru == 50
    assert len([e for e in got if isinstance(e, NoteEvent)]) == 200  # the engine still hears the performer


def test_thru_loop_detection_ignores_a_keyboard_layering_one_note_on_two_channels() -> None:
    io, got = _io(thru=True, in_channels=(0, 1, 2))
    io.sink = MidiSink(_Out(), 1, io)
    io.midi_out = object()  # an output port (the echo checks apply only with one)
    t = 10**12
    for i in range(5):  # the same note on channels 1 and 3 at once, five times
        io.handle([0x90, 60, 100], t + i * 200_000_000)
        io.handle([0x92, 60, 100], t + i * 200_000_000 + 100_000)
        io.handle([0x80, 60, 0], t + i * 200_000_000 + 100_000_000)
        io.handle([0x82, 60, 0], t + i * 200_000_000 + 100_100_000)
    assert io.thru_active and io.counters.thru_loops == 0 and io.counters.thru == 20
    io.handle([0x91, 60, 0], t + 1_000_000_000)  # thru's last note-off of 60 on our channel: a loop
    assert not io.thru_active and io.counters.thru_loops == 1 and io.counters.thru_echoes == 1
    assert len([e for e in got if isinstance(e, NoteEvent)]) == 20
    io.midi_out = None


# ------------------------------------------------------------------------------------- real JACK + serve


@pytest.fixture(scope="module")
def pattern_policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_pattern_policy(tmp_path_factory.mktemp("policy") / "pattern.onnx")


def wait_until(pred: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``pred()`` every 150 ms (serve answers at most 10 status requests per second per sender)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.15)
    return False


def _rt(kind: str, name: str) -> Any:
    import rtmidi

    cls = rtmidi.MidiIn if kind == "in" else rtmidi.MidiOut
    return cls(rtapi=rtmidi.API_UNIX_JACK, name=name)


class Peers:
    """A keyboard (rtmidi out) and a synth (rtmidi in) on JACK, as a stage has them."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.kbd = _rt("out", f"{tag}-kbd")
        self.kbd.open_virtual_port("out")
        self.synth = _rt("in", f"{tag}-synth")
        self.synth.open_virtual_port("in")
        self.heard: list[tuple[int, list[int]]] = []
        self._lock = threading.Lock()
        self.on_heard: Callable[[list[int]], None] | None = None
        self.synth.set_callback(self._heard)

    def _heard(self, m: tuple[list[int], float], _d: object = None) -> None:
        msg = list(m[0])
        with self._lock:
            self.heard.append((time.perf_counter_ns(), msg))
        hook = self.on_heard
        if hook is not None:
            hook(msg)

    def messages(self) -> list[list[int]]:
        with self._lock:
            return [m for _, m in self.heard]

    def connect(self, jack: JackServer, name: str) -> None:
        jack.connect(f"{self.tag}-kbd:out", f"{name}:in")
        jack.connect(f"{name}-out:out", f"{self.tag}-synth:in")
        time.sleep(0.1)

    def send(self, *msg: int) -> None:
        self.kbd.send_message(list(msg))

    def close(self) -> None:
        self.on_heard = None
        close_rtmidi_port(self.kbd)
        close_rtmidi_port(self.synth)


def _serve(policy: Path, name: str, *args: str) -> ServeProcess:
    return ServeProcess("--policy", str(policy), "--virtual", "--midi-name", name, "--no-record", *args)


def _agent_onsets(msgs: list[list[int]], channel: int) -> int:
    return sum(1 for m in msgs if len(m) == 3 and m[0] == 0x90 | channel and m[2] > 0)


@pytest.mark.system
@pytest.mark.timeout(120)
def test_serve_lost_note_off_times_out_and_the_gate_closes(
    jack_server: JackServer, pattern_policy: Path
) -> None:
    """H1: a key whose note-off never comes is released after the hold limit; the silence gate then closes
    a bar later and the agent stops playing against the phantom."""
    peers = Peers("hold")
    try:
        with _serve(pattern_policy, "la-hold", "--bpm", "240", "--performer-max-hold-bars", "1") as sp:
            peers.connect(jack_server, "la-hold")
            sp.send("/liveagent/start")
            time.sleep(0.3)
            peers.send(0x90, 67, 100)  # the note-off is lost
            assert wait_until(lambda: _agent_onsets(peers.messages(), 1) >= 2, timeout=5)
            peers.send(0x90, 64, 100)  # the performer plays on under it
            peers.send(0x80, 64, 0)
            # 1 bar = 1 s at 240 BPM: released after a bar, the gate closes after one more
            assert wait_until(lambda: sp.status()["waiting"] == 1, timeout=6), sp.status()
            st = sp.status()
            assert st["performer_notes_timed_out"] == 1 and st["performer_held"] == 0
            n = _agent_onsets(peers.messages(), 1)
            time.sleep(1.0)
            assert _agent_onsets(peers.messages(), 1) == n, "the agent still plays against a phantom"
            # the performer plays again: heard, and answered
            peers.send(0x90, 60, 100)
            peers.send(0x80, 60, 0)
            assert wait_until(lambda: _agent_onsets(peers.messages(), 1) > n, timeout=5)
            assert sp.terminate() == 0
    finally:
        peers.close()


@pytest.mark.system
@pytest.mark.timeout(120)
def test_serve_all_notes_off_stop_and_reset_release_the_performer(
    jack_server: JackServer, pattern_policy: Path
) -> None:
    peers = Peers("cc")
    try:
        with _serve(pattern_policy, "la-cc", "--bpm", "240") as sp:
            peers.connect(jack_server, "la-cc")
            sp.send("/liveagent/start")
            time.sleep(0.3)
            peers.send(0x90, 67, 100)  # held; its note-off is lost
            assert wait_until(lambda: _agent_onsets(peers.messages(), 1) >= 2, timeout=5)
            peers.send(0xB0, 123, 0)  # the keyboard's All Notes Off (channel 1)
            # the gate closes a bar after the release (the default hold limit, 4 bars, is far away)
            assert wait_until(lambda: sp.status()["waiting"] == 1, timeout=3), sp.status()
            st = sp.status()
            assert st["performer_held"] == 0 and st["performer_notes_cleared"] == 1
            assert st["performer_notes_timed_out"] == 0 and st["midi_notes_off_in"] == 1
            peers.send(0x90, 69, 100)  # held again; then the master's Stop
            assert wait_until(lambda: sp.status()["performer_held"] == 1, timeout=3)
            peers.send(0xFC)
            assert wait_until(lambda: sp.status()["running"] == 0, timeout=3)
            st = sp.status()
            assert st["performer_held"] == 0 and st["performer_notes_cleared"] == 2
            peers.send(0x90, 70, 100)  # a key while stopped; then a System Reset
            assert wait_until(lambda: sp.status()["performer_held"] == 1, timeout=3)
            peers.send(0xFF)
            assert wait_until(lambda: sp.status()["performer_held"] == 0, timeout=3)
            assert sp.status()["performer_notes_cleared"] == 3
            sp.send("/liveagent/start")  # a key held across an OSC start is released
            peers.send(0x90, 71, 100)
            assert wait_until(lambda: sp.status()["performer_held"] == 1, timeout=3)
            sp.send("/liveagent/stop")
            assert wait_until(lambda: sp.status()["performer_held"] == 0, timeout=3)
            peers.send(0x90, 72, 100)
            assert wait_until(lambda: sp.status()["performer_held"] == 1, timeout=3)
            sp.send("/liveagent/panic")
            assert wait_until(lambda: sp.status()["performer_held"] == 0, timeout=3)
            assert sp.status()["performer_notes_cleared"] == 5
            # A key pressed while stopped is kept into the run (a player presses play and plays at once);
            # were its note-off lost, the hold limit would release it.
            peers.send(0x90, 73, 100)
            assert wait_until(lambda: sp.status()["performer_held"] == 1, timeout=3)
            sp.send("/liveagent/start")
            assert wait_until(lambda: sp.status()["running"] == 1, timeout=3)
            st = sp.status()
            assert st["performer_held"] == 1 and st["performer_notes_cleared"] == 5, st
            peers.send(0xB0, 120, 0)  # All Sound Off (CC 120) releases the held key as CC 123 does
            assert wait_until(lambda: sp.status()["performer_held"] == 0, timeout=3), sp.status()
            assert sp.status()["performer_notes_cleared"] == 6
            assert sp.terminate() == 0
    finally:
        peers.close()


@pytest.mark.system
@pytest.mark.timeout(120)
def test_serve_performer_note_off_right_after_the_agent_releases_the_same_pitch(
    jack_server: JackServer, pattern_policy: Path
) -> None:
    """Performer and agent on one channel (the old default): the performer holds 48 while the agent plays
    it and lets go a few ms after the agent released 48. No loop-back exists, so nothing is an echo: every
    note-off must reach the engine."""
    peers = Peers("echo")
    try:
        with _serve(
            pattern_policy, "la-echo", "--bpm", "240", "--midi-channel", "1", "--midi-out-channel", "1"
        ) as sp:
            peers.connect(jack_server, "la-echo")
            released = threading.Event()

            def _on_heard(msg: list[int]) -> None:
                if msg[:2] == [0x80, 48] and not released.is_set():
                    released.set()
                    peers.send(0x80, 48, 0)  # the performer lets go at once (one JACK period later)

            sp.send("/liveagent/start")
            time.sleep(0.3)
            for _ in range(3):
                released.clear()
                peers.send(0x90, 48, 100)
                peers.on_heard = _on_heard
                assert released.wait(5), "the agent never released 48"
                peers.on_heard = None
                time.sleep(0.2)
            keys = ("midi_in", "midi_echo_suppressed", "notes_in")
            assert wait_until(lambda: sp.status()["midi_in"] == 6, timeout=3), {
                k: v for k, v in sp.status().items() if k in keys
            }
            st = sp.status()
            assert st["midi_echo_suppressed"] == 0 and st["performer_held"] == 0
            assert sp.terminate() == 0
    finally:
        peers.close()


def _thru_case(
    jack: JackServer, policy: Path, name: str, *args: str
) -> tuple[dict[str, Any], list[list[int]]]:
    """serve with --midi-thru and its output connected back to its input; one key press and release."""
    peers = Peers(name)
    try:
        with _serve(policy, name, "--midi-thru", *args) as sp:
            peers.connect(jack, name)
            jack.connect(f"{name}-out:out", f"{name}:in")  # the loop
            time.sleep(0.1)
            peers.send(0x90, 64, 90)
            time.sleep(0.3)
            peers.send(0x80, 64, 0)
            time.sleep(1.5)
            st = sp.status()
            assert sp.terminate() == 0
        return st, [m for m in peers.messages() if len(m) == 3 and m[0] & 0xE0 == 0x80]
    finally:
        peers.close()


@pytest.mark.system
@pytest.mark.timeout(120)
def test_serve_thru_loop_is_broken_and_counted(jack_server: JackServer, pattern_policy: Path) -> None:
    """Performer and output on one channel, output wired back to the input: thru's note comes back, thru
    stops at once (it fed back 788 messages in 2 s), counted and reported."""
    st, notes = _thru_case(
        jack_server, pattern_policy, "la-loop", "--midi-channel", "1", "--midi-out-channel", "1"
    )
    assert len(notes) <= 4, notes  # the note-on forwarded once (and the All Notes Off's note-offs)
    assert st["thru_loops"] == 1 and st["midi_thru"] == 0 and st["midi_thru_echoes"] >= 1
    assert st["notes_in"] == 1  # the echo never reached the engine as a second note


@pytest.mark.system
@pytest.mark.timeout(120)
def test_serve_thru_forwards_and_the_default_channels_keep_a_loop_out(
    jack_server: JackServer, pattern_policy: Path
) -> None:
    """Defaults (performer: all channels but the output's; output: channel 2): thru forwards the
    performer's note-on and note-off once each, even with the output wired back to the input."""
    st, notes = _thru_case(jack_server, pattern_policy, "la-thru2")
    assert notes[:2] == [[0x91, 64, 90], [0x81, 64, 0]], notes
    assert st["thru_loops"] == 0 and st["midi_thru"] == 1 and st["midi_thru_sent"] == 2
    assert st["midi_filtered"] >= 2 and st["notes_in"] == 1
