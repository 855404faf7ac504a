"""MIDI clock master: 24 PPQN pulses phase-locked to the engine's beats (split from :mod:`midi_io`).

:class:`~liveagent.live.io.midi.MidiSink` owns one when ``clock_out`` is on and calls :meth:`on_beat` from
the engine thread; the pulses between beats come from this module's own thread.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import deque
from collections.abc import Callable

CLOCK, START, CONTINUE, STOP, SPP = 0xF8, 0xFA, 0xFB, 0xFC, 0xF2
PPQN = 24
PERIOD_BEATS = 5  # the clock-out tempo is the median of this many beat intervals


class MidiClockOut:
    """24 PPQN MIDI clock phase-locked to the engine's beats.

    ``on_beat`` (engine thread, on the beat) sends Start or Song Position Pointer + Continue when not
    running, then the beat's first pulse; a thread spreads the other 23 pulses over the expected beat
    period. That period is the median of the last ``PERIOD_BEATS`` beat intervals (each divided by the beats
    it spans, so a skipped beat counts right): one late or early beat moves the phase of its own first
    pulse only, not the spacing of the next 23. When no beat arrives for two periods the clock sends Stop.
    """

    def __init__(
        self,
        send: Callable[[list[int]], None],
        beats_per_bar: int | None = None,
        *,
        now: Callable[[], int] = time.perf_counter_ns,
    ) -> None:
        self.send = send
        self.now = now
        self.beats_per_bar = beats_per_bar or 4
        self._learn_meter = beats_per_bar is None
        self.running = False
        self.period_ns = 500_000_000
        self.intervals: deque[float] = deque(maxlen=PERIOD_BEATS)
        self.last_beat_ns = 0
        self._last_pos: tuple[int, int] | None = None
        self.pulses = 0
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="midi-clock-out", daemon=True)
        self._thread.start()

    def _beats_between(self, bar: int, beat: int) -> int:  # since the last beat; learns the meter
        if self._last_pos is None:
            return 0
        bar0, beat0 = self._last_pos
        if self._learn_meter and bar == bar0 + 1 and beat == 0 and beat0 >= 1:
            self.beats_per_bar = beat0 + 1
        return (bar - bar0) * self.beats_per_bar + beat - beat0

    def on_beat(self, bar: int, beat: int) -> None:
        now = self.now()
        with self._cond:
            n = self._beats_between(bar, beat)
            if self.running and self.last_beat_ns and 1 <= n <= 4:
                dt = (now - self.last_beat_ns) / n
                if dt > 0 and (not self.intervals or dt < 4 * self.period_ns):  # not a stall
                    self.intervals.append(dt)
                    self.period_ns = round(statistics.median(self.intervals))
            self._last_pos = (bar, beat)
            if not self.running:
                if bar == 0 and beat == 0:
                    self.send([START])
                else:
                    sixteenths = (bar * self.beats_per_bar + beat) * 4  # SPP counts MIDI beats (16ths)
                    self.send([SPP, sixteenths & 0x7F, (sixteenths >> 7) & 0x7F])
                    self.send([CONTINUE])
                self.running = True
            self.last_beat_ns = now
            self.send([CLOCK])
            self.pulses = 1
            self._cond.notify()

    def _loop(self) -> None:
        with self._cond:
            while not self._closed:
                if not self.running:
                    self._cond.wait()
                    continue
                due = self.last_beat_ns + self.pulses * self.period_ns // PPQN
                now = self.now()
                if self.pulses >= PPQN:
                    # wait for the next beat; stop the transport if beats stop coming
                    if now - self.last_beat_ns > 2 * self.period_ns:
                        self.send([STOP])
                        self.running = False
                        self.intervals.clear()
                        continue
                    self._cond.wait(timeout=self.period_ns * 1e-9 / 4)
                    continue
                if now >= due:
                    self.send([CLOCK])
                    self.pulses += 1
                else:
                    self._cond.wait(timeout=(due - now) * 1e-9)

    def stop(self) -> None:
        with self._cond:
            if self.running:
                self.send([STOP])
                self.running = False
                self.intervals.clear()

    def close(self) -> None:
        self.stop()
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=1.0)
