"""The engine's edges: immutable input events and the output sink protocol.

Input threads (the rtmidi callback, the OSC server) only timestamp an event with ``time.perf_counter_ns()``
and put it on the engine's queue; the engine thread owns all state. Events are small immutable
NamedTuples (cheap to build, no dicts in the hot path). Outputs go through :class:`OutputSink`, which MIDI
and OSC implement; the engine never knows which.
"""

from __future__ import annotations

import enum
from typing import NamedTuple, Protocol


class Control(enum.IntEnum):
    """What a :class:`ControlEvent` asks for. ``value`` / ``text`` carry its argument."""

    START = 1
    STOP = 2
    CONTINUE = 3
    TEMPO = 4
    """value = BPM (validated by the sender's parser)."""
    BEAT = 5
    """An external beat pulse; value = beat index within the bar, or -1 when not given."""
    TEMPERATURE = 6
    MUTE = 7
    """value = 1 mute, 0 unmute."""
    PANIC = 8
    POLICY = 9
    """text = policy name or path, swapped in at the next bar line."""
    STATUS = 10
    """Reply with a status snapshot to ``reply_to``."""
    SONG_POSITION = 11
    """MIDI Song Position Pointer; value = position in sixteenth notes."""
    CLOCK_TICK = 12
    """One MIDI clock pulse (24 per quarter note)."""
    SHUTDOWN = 13


class NoteEvent(NamedTuple):
    """A performer note: velocity 0 means note-off."""

    t_ns: int
    """Arrival time on the ``time.perf_counter_ns()`` clock."""
    pitch: int
    velocity: int
    source: str = "midi"
    """Where it came from ("midi", "osc"), for statistics."""


class ControlEvent(NamedTuple):
    t_ns: int
    kind: Control
    value: float = 0.0
    text: str = ""
    reply_to: tuple[str, int] | None = None
    """OSC client address that asked (for replies such as STATUS); None for MIDI or no reply."""


class InputError(NamedTuple):
    """Bad input an input thread rejected: counted and reported by the engine at a limited rate."""

    t_ns: int
    source: str
    message: str
    reply_to: tuple[str, int] | None = None


InputEvent = NoteEvent | ControlEvent | InputError


class OutputSink(Protocol):
    """Where the engine's notes, beats and replies go (MIDI out, OSC out, or both via a fan-out)."""

    def note_on(self, pitch: int, velocity: int) -> None: ...

    def note_off(self, pitch: int) -> None: ...

    def all_notes_off(self) -> None: ...

    def beat(self, bar: int, beat: int) -> None: ...

    def status(self, fields: dict[str, object], reply_to: tuple[str, int] | None) -> None: ...

    def error(self, message: str, reply_to: tuple[str, int] | None) -> None: ...

    def close(self) -> None: ...


class FanOutSink:
    """Sends every call to several sinks (e.g. MIDI out and OSC out at once)."""

    def __init__(self, *sinks: OutputSink) -> None:
        self.sinks = list(sinks)

    def note_on(self, pitch: int, velocity: int) -> None:
        for s in self.sinks:
            s.note_on(pitch, velocity)

    def note_off(self, pitch: int) -> None:
        for s in self.sinks:
            s.note_off(pitch)

    def all_notes_off(self) -> None:
        for s in self.sinks:
            s.all_notes_off()

    def beat(self, bar: int, beat: int) -> None:
        for s in self.sinks:
            s.beat(bar, beat)

    def status(self, fields: dict[str, object], reply_to: tuple[str, int] | None) -> None:
        for s in self.sinks:
            s.status(fields, reply_to)

    def error(self, message: str, reply_to: tuple[str, int] | None) -> None:
        for s in self.sinks:
            s.error(message, reply_to)

    def close(self) -> None:
        for s in self.sinks:
            s.close()
