"""MIDI out: :class:`MidiSink`, the :class:`~liveagent.live.events.OutputSink` over an rtmidi output port.

Three-byte messages, note-offs prebuilt, the set of sounding notes tracked per channel so ``all_notes_off``
silences exactly what we started, every band voice included (plus CC 123 on each of our channels for good
measure). Send errors are counted (``send_errors``) and logged at a limited rate, never raised: the engine
must keep time whatever the driver does. With ``clock_out`` it is a clock master: Start, 24 PPQN clock
phase-locked to the engine's beats (:class:`MidiClockOut`), and Stop when the beats stop.

The port's lock and the echo ledger (what was sent when, per channel and pitch) belong to the
:class:`~liveagent.live.io.midi.MidiIO` that owns the ports (the input side reads the ledger to tell our echo
from the performer): the sink sees them through :class:`SentLedger`, so this module does not import that
one. See :mod:`liveagent.live.io.midi` for why the lock exists and is held for one send only.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Protocol

from liveagent.live.events import WarnLimiter
from liveagent.live.io.midi_clock_out import MidiClockOut

NOTE_OFF, NOTE_ON, CC = 0x80, 0x90, 0xB0


class SentLedger(Protocol):
    """What the sink records of what it sends, for echo suppression (:class:`~liveagent.live.io.midi.MidiIO`
    implements it): per (channel << 7 | pitch) the time and velocity of the last note-on, the time of the
    last note-off; per channel the time of the last All Notes Off; and the output port's lock."""

    sent_on_ns: list[int]
    sent_on_vel: list[int]
    sent_off_ns: list[int]
    sent_notes_off_ns: list[int]
    out_lock: threading.Lock


class MidiSink:
    """OutputSink over an rtmidi output port (see the module docstrings for the lock and the error policy).

    Solo notes play on ``channel``; band voice ``i`` on ``band_channels[i]`` (0-based; one may equal
    ``channel``). What sounds is tracked per channel and pitch, so ``all_notes_off`` (panic, exit, and
    ``close``) releases every voice's notes, then sends CC 123 on each of our channels.
    """

    def __init__(
        self,
        out: Any,
        channel: int = 0,
        io: SentLedger | None = None,
        *,
        clock_out: bool = False,
        beats_per_bar: int | None = None,
        band_channels: tuple[int, ...] = (),
    ) -> None:
        if any(not 0 <= c <= 15 for c in (channel, *band_channels)):
            raise ValueError("MIDI channels are 0..15")
        self.out = out
        self.channel = channel
        self.band_channels = tuple(band_channels)
        self.io = io
        self._on = NOTE_ON | channel
        self._key = channel << 7
        self._offs = [[NOTE_OFF | ch, p, 0] for ch in range(16) for p in range(128)]
        """The note-off of every (channel << 7 | pitch), prebuilt."""
        self._band_on = [NOTE_ON | ch for ch in self.band_channels]
        self._band_key = [ch << 7 for ch in self.band_channels]
        self.channels = tuple(dict.fromkeys((channel, *self.band_channels)))
        """Every channel we play notes on (solo first), each once."""
        self.sounding = bytearray(16 * 128)
        """1 per (channel << 7 | pitch) we sounded and have not released."""
        self._lock = io.out_lock if io is not None else threading.Lock()
        self.sent = 0
        self.send_errors = 0
        """Messages rtmidi refused (port gone, driver error): counted and logged at a limited rate."""
        self._warn = WarnLimiter()
        self.clock: MidiClockOut | None = MidiClockOut(self._send, beats_per_bar) if clock_out else None

    def _send(self, msg: list[int]) -> None:
        try:
            with self._lock:  # one send only: see the module docstring
                self.out.send_message(msg)
                self.sent += 1
        except Exception as e:  # rtmidi raises RtMidiError subclasses of OSError/RuntimeError/ValueError
            self.send_errors += 1
            self._warn.warn("MIDI send failed (%d so far): %r", self.send_errors, e)

    def _note_on(self, status: int, key: int, pitch: int, velocity: int) -> None:
        io = self.io
        if io is not None:
            io.sent_on_vel[key] = velocity
            io.sent_on_ns[key] = time.perf_counter_ns()
        self._send([status, pitch, velocity])
        self.sounding[key] = 1

    def _note_off(self, key: int) -> None:
        if self.io is not None:
            self.io.sent_off_ns[key] = time.perf_counter_ns()
        self._send(self._offs[key])
        self.sounding[key] = 0

    def note_on(self, pitch: int, velocity: int) -> None:
        if velocity <= 0:
            self.note_off(pitch)
            return
        key = self._key | pitch  # the solo path inlined: it costs what it did before the band
        if self.io is not None:
            self.io.sent_on_vel[key] = velocity
            self.io.sent_on_ns[key] = time.perf_counter_ns()
        self._send([self._on, pitch, velocity])
        self.sounding[key] = 1

    def note_off(self, pitch: int) -> None:
        key = self._key | pitch
        if self.io is not None:
            self.io.sent_off_ns[key] = time.perf_counter_ns()
        self._send(self._offs[key])
        self.sounding[key] = 0

    def band_note_on(self, voice: int, pitch: int, velocity: int) -> None:
        """Band voice ``voice``'s note-on on its channel (velocity 0: its note-off)."""
        if velocity <= 0:
            self.band_note_off(voice, pitch)
            return
        if voice < 0:  # a negative index would silently pick another voice
            raise IndexError(f"band voice {voice}")
        self._note_on(self._band_on[voice], self._band_key[voice] | pitch, pitch, velocity)

    def band_note_off(self, voice: int, pitch: int) -> None:
        if voice < 0:
            raise IndexError(f"band voice {voice}")
        self._note_off(self._band_key[voice] | pitch)

    def thru(self, pitch: int, velocity: int) -> None:
        """Performer note forwarded as it arrives, on the "midi-thru" thread (see the module docstring)."""
        self._send([self._on, pitch, velocity] if velocity else self._offs[self._key | pitch])

    def all_notes_off(self) -> None:
        """Per channel of ours: a note-off for each note it sounds (at most 128), then CC 123."""
        sounding = self.sounding
        for ch in self.channels:
            lo, hi = ch << 7, (ch + 1) << 7
            key = sounding.find(1, lo, hi)
            while key >= 0:
                self._note_off(key)
                key = sounding.find(1, key + 1, hi)
            if self.io is not None:
                self.io.sent_notes_off_ns[ch] = time.perf_counter_ns()
            self._send([CC | ch, 123, 0])

    def beat(self, bar: int, beat: int) -> None:
        if self.clock is not None:
            self.clock.on_beat(bar, beat)

    def status(self, fields: dict[str, object], reply_to: tuple[str, int] | None) -> None:
        pass  # MIDI has no status channel; OSC carries it

    def error(self, message: str, reply_to: tuple[str, int] | None) -> None:
        pass

    def close(self) -> None:
        if self.clock is not None:
            self.clock.close()
            self.clock = None
        self.all_notes_off()  # never raises: _send counts errors (the port may already be gone)
