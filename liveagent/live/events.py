"""The engine's edges: immutable input events and the output sink protocol.

Input threads (the rtmidi callback, the OSC server) only timestamp an event with ``time.perf_counter_ns()``
and put it on the engine's queue; the engine thread owns all state. Events are small immutable
NamedTuples (cheap to build, no dicts in the hot path). Outputs go through :class:`OutputSink`, which MIDI
and OSC implement; the engine never knows which. :class:`FanOutSink` isolates the sinks from each other.
"""

from __future__ import annotations

import enum
import logging
import time
from typing import NamedTuple, Protocol

log = logging.getLogger(__name__)


FOLLOW_WINDOW_LIMIT_MS = 100.0
"""The largest fixed window accepted (``--follow-window-ms``, ``/liveagent/follow``, the config)."""

FOLLOW_WINDOW_MIN_FIXED_MS = 0.1
"""The smallest fixed window accepted (a smaller positive value would round to nothing and read like
"adaptive"): values in (0, 0.1) ms are refused, as errors, never clamped."""


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
    FOLLOW = 14
    """Fix the follow window to value ms, or free it (0 = adaptive)."""
    PERFORMER_NOTES_OFF = 15
    """The performer's MIDI All Notes Off / All Sound Off (CC 123 / 120) or System Reset: release the
    performer's held keys (not the agent's notes: that is PANIC)."""
    STYLE = 16
    """Steer the style (contract-1.2 policies): ``values`` = the latent ``z`` (D numbers) or a 2-D pad
    ``x y`` in [-1, 1] on the main plane; glides there over a bar (:mod:`liveagent.live.engine.style`)."""
    MOOD = 17
    """Steer the style to the mood named ``text`` (one of the policy's ``moods``), gliding over a bar."""


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
    values: tuple[float, ...] = ()
    """Several numbers (STYLE: the latent or the pad), immutable like the event."""


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

    def band_note_on(self, voice: int, pitch: int, velocity: int) -> None:
        """A note of band voice ``voice`` (0 = the highest agent voice; the sink was told the band's voices,
        top-down, when it was built). Velocity 0 is a note-off."""
        ...

    def band_note_off(self, voice: int, pitch: int) -> None: ...

    def all_notes_off(self) -> None:
        """Silence everything the sink may have started, solo and every band voice."""
        ...

    def beat(self, bar: int, beat: int) -> None: ...

    def status(self, fields: dict[str, object], reply_to: tuple[str, int] | None) -> None: ...

    def error(self, message: str, reply_to: tuple[str, int] | None) -> None: ...

    def close(self) -> None: ...


class WarnLimiter:
    """``log.warning`` at most once per ``interval_s``; the calls held back are counted into the next one.

    For failures on the engine thread's hot path (a send that raises on every note): each is counted by
    its owner, but the log sees a line per interval, not a flood.
    """

    def __init__(self, interval_s: float = 5.0) -> None:
        self.interval_ns = int(interval_s * 1e9)
        self.held = 0
        self._last_ns: int | None = None

    def warn(self, msg: str, *args: object) -> None:
        now = time.perf_counter_ns()
        if self._last_ns is not None and now - self._last_ns < self.interval_ns:
            self.held += 1
            return
        if self.held:
            msg += f" (+{self.held} more since the last report)"
            self.held = 0
        self._last_ns = now
        log.warning(msg, *args)


class FanOutSink:
    """Sends every call to several sinks (e.g. MIDI out and OSC out at once), each one isolated.

    A sink that raises (a vanished MIDI port, a driver error) must neither stop the engine thread nor keep
    the other sinks from hearing the call: above all ``note_off`` and ``all_notes_off``, or notes hang on
    the healthy output. Each failure is counted per sink (``errors[i]``) and logged at most once per
    ``log_interval_s`` per sink.
    """

    def __init__(self, *sinks: OutputSink, log_interval_s: float = 5.0) -> None:
        self.sinks = list(sinks)
        self.errors = [0] * len(self.sinks)
        """Calls that raised, per sink (same order as ``sinks``)."""
        self._warn = [WarnLimiter(log_interval_s) for _ in self.sinks]

    def _failed(self, i: int, what: str, e: Exception) -> None:
        self.errors[i] += 1
        self._warn[i].warn("output sink %s.%s failed: %r", type(self.sinks[i]).__name__, what, e)

    def note_on(self, pitch: int, velocity: int) -> None:
        for i, s in enumerate(self.sinks):
            try:
                s.note_on(pitch, velocity)
            except Exception as e:  # one broken output must not silence the others or stop the engine
                self._failed(i, "note_on", e)

    def note_off(self, pitch: int) -> None:
        for i, s in enumerate(self.sinks):
            try:
                s.note_off(pitch)
            except Exception as e:
                self._failed(i, "note_off", e)

    def band_note_on(self, voice: int, pitch: int, velocity: int) -> None:
        for i, s in enumerate(self.sinks):
            try:
                s.band_note_on(voice, pitch, velocity)
            except Exception as e:
                self._failed(i, "band_note_on", e)

    def band_note_off(self, voice: int, pitch: int) -> None:
        for i, s in enumerate(self.sinks):
            try:
                s.band_note_off(voice, pitch)
            except Exception as e:
                self._failed(i, "band_note_off", e)

    def all_notes_off(self) -> None:
        for i, s in enumerate(self.sinks):
            try:
                s.all_notes_off()
            except Exception as e:
                self._failed(i, "all_notes_off", e)

    def beat(self, bar: int, beat: int) -> None:
        for i, s in enumerate(self.sinks):
            try:
                s.beat(bar, beat)
            except Exception as e:
                self._failed(i, "beat", e)

    def status(self, fields: dict[str, object], reply_to: tuple[str, int] | None) -> None:
        for i, s in enumerate(self.sinks):
            try:
                s.status(fields, reply_to)
            except Exception as e:
                self._failed(i, "status", e)

    def error(self, message: str, reply_to: tuple[str, int] | None) -> None:
        for i, s in enumerate(self.sinks):
            try:
                s.error(message, reply_to)
            except Exception as e:
                self._failed(i, "error", e)

    def close(self) -> None:
        for i, s in enumerate(self.sinks):
            try:
                s.close()
            except Exception as e:
                self._failed(i, "close", e)
