"""MIDI thru sends on its own thread, never on the input path (issue 12, item 8).

On JACK the input callback ran in JACK's real-time process thread; a thru send there took the MIDI output
lock, shared with the normal-priority clock-out thread (a priority inversion that can stall the JACK
graph). The real-path thru tests (``test_performer_notes.py``, ``test_midi.py``) check what thru sends, and
they pass whichever thread sends it (a mutation run moved the send back onto the input thread and every one
of them passed), so this unit test checks where: a sink subclass that records the sending thread.
"""

from __future__ import annotations

import threading
import time
from typing import cast

from liveagent.live.io.midi_sink import MidiSink
from liveagent.live.io.midi_thru import MidiThru


class _Counters:
    thru = 0
    thru_echoes = 0
    thru_loops = 0


class _ThreadRecordingSink:
    """Stands in for :class:`MidiSink`: records each thru message and the thread that sent it."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, int, str]] = []
        self.done = threading.Event()

    def thru(self, pitch: int, vel: int) -> None:
        self.sent.append((pitch, vel, threading.current_thread().name))
        if len(self.sent) >= 4:
            self.done.set()


def test_thru_sends_on_its_own_thread_never_on_the_input_thread() -> None:
    sink = _ThreadRecordingSink()
    thru = MidiThru(True, 30.0, 1000.0, 0, _Counters(), bytearray(16 * 128))
    thru.start(cast(MidiSink, sink), "keys", "synth")
    try:
        t = time.perf_counter_ns()
        for i, (pitch, vel) in enumerate(((60, 90), (64, 80), (60, 0), (64, 0))):
            thru.forward(pitch, vel, t + i * 50_000_000, t)  # called on this (the "input") thread
            assert all(name != threading.current_thread().name for *_, name in sink.sent)
        assert sink.done.wait(2.0), sink.sent
    finally:
        thru.stop()
    assert [(p, v) for p, v, _ in sink.sent] == [(60, 90), (64, 80), (60, 0), (64, 0)]
    assert {name for *_, name in sink.sent} == {"midi-thru"}, sink.sent
    assert thru.status()["midi_thru_sent"] == 4
