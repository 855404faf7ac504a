"""The MIDI clock follower: the grid's due times from a master's 24 PPQN ticks.

Its own module because it is the one clock that estimates rather than schedules: a robust tempo fit over
a ring of tick times, freewheeling, and the recovery a stage needs (resume, resync, re-lock), which the
scheduled clocks of :mod:`~liveagent.live.engine.clocks` (the :class:`~liveagent.live.engine.clocks.Clock`
questions it answers) never need to know about. Driven by the engine thread only, like every clock.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np

from liveagent.live.engine.clocks import Clock, NowFn
from liveagent.live.events import Control, ControlEvent
from liveagent.music.tokens import Grid

__all__ = ["MIDI_PPQN", "MidiClockFollower"]

log = logging.getLogger(__name__)

MIDI_PPQN = 24


def _ls_slope(x: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of y against x (NaN when x is constant)."""
    dx = x - x.mean()
    sxx = float(dx @ dx)
    return float(dx @ (y - y.mean())) / sxx if sxx > 0 else math.nan


@dataclass
class _PhaseCheck:
    """A tick came after a gap (or early): is the count still the master's? Residuals against the line from
    before it, of the ticks that come once a possible burst has passed, decide (see
    :meth:`MidiClockFollower._check_phase`)."""

    t_ns: int
    """The arrival of the tick that opened the check."""
    idx: int
    """Its position as counted."""
    intercept: float
    slope: float
    """The line from before it: tick i due at ``intercept + slope * i``."""
    n: int
    """The fit ring's counter at that tick: ring entries from here on follow it."""
    gap_ticks: int
    """The ticks the gap could hold: a re-lock never adds more."""
    resid: list[float] = field(default_factory=list)


class MidiClockFollower(Clock):
    """Follows a MIDI clock master: 24 ticks per quarter note as ``ControlEvent(CLOCK_TICK)``.

    Start: the next tick is position 0. Continue: the next tick is the position last set by Song
    Position Pointer (or where it stopped). The tempo is fitted to the last ``window`` tick times against
    tick indices, robustly (see :meth:`_refit`): late ticks, stalls and the bursts after them do not bend
    it, and a fit far off the running estimate from a handful of ticks is not taken. Step k opens on the
    arrival of its tick; when no tick came for ``freewheel_ticks`` tick periods (a tick is missing) the
    clock freewheels at the last tempo (steps open by predicted time), and after one bar without ticks it
    stops.

    Recovery (a stage is messy): ticks that come back after that bar resume playing at the master's
    position (extrapolated on the fitted line: a master keeps time while its cable is out), without a new
    Start; a Song Position Pointer while running (a DAW looping back) resyncs at once, the next tick being
    that position; after a gap (ticks lost, or a stall) the count is checked against
    the line from before it, on the ticks that come once a possible burst has passed, and re-locked to the
    master's phase when it is off by whole ticks (11 ticks after the gap: within half a beat). The count only
    ever jumps forward, on evidence, never on a burst alone: a stall's held-back ticks open their steps late,
    never early. Re-locks and the ticks they added are counted in the status. Not detected: extra ticks (an
    early tick is no evidence: stamps quantized to JACK periods near the tick period put two ticks in one
    period every few dozen ticks), and at 240 BPM on 512-frame JACK periods (a period within 3% of a tick)
    the slope is biased and a re-lock can be off by one tick.
    """

    external = True

    def __init__(
        self,
        grid: Grid | None = None,
        *,
        now: NowFn = time.perf_counter_ns,
        initial_bpm: float = 120.0,
        window: int = 48,
        freewheel_ticks: float = 1.5,
        relock_ticks: int = 8,
    ) -> None:
        super().__init__(grid or Grid(), now)
        if MIDI_PPQN % self.grid.steps_per_beat:
            raise ValueError(f"MIDI clock needs steps_per_beat dividing 24, got {self.grid.steps_per_beat}")
        self.ticks_per_step = MIDI_PPQN // self.grid.steps_per_beat
        self.window = max(4, window)
        self.freewheel_ticks = freewheel_ticks
        self.relock_ticks = max(2, relock_ticks)
        """Settled ticks after a gap that decide a re-lock (their median residual)."""
        self._tick_period = 60e9 / (initial_bpm * MIDI_PPQN)
        self._times = np.zeros(self.window, dtype=np.float64)
        self._idx = np.zeros(self.window, dtype=np.float64)
        self._n = 0
        """Ticks in the fit ring since the last discontinuity."""
        self._next_tick = 0
        """Position (in ticks) of the next tick to arrive."""
        self._last_tick = -1
        self._last_tick_ns = 0
        self._armed_ns = 0
        """When Start/Continue arrived (predictions before the first tick start here)."""
        self._armed = False
        """Start/Continue received, first tick not yet."""
        self._timed_out = False
        """Stopped by a bar without ticks, not by the master's Stop: returning ticks resume playing."""
        self._located = False
        """A Song Position Pointer came while timed out: returning ticks resume at its position."""
        self._check: _PhaseCheck | None = None
        self.freewheeling = False
        self._opened_step = -1
        self._opened_ns = 0
        self.ticks = 0
        self.relocks = 0
        self.lost_ticks = 0
        self.resumes = 0
        self.resyncs = 0
        self.rejected_fits = 0
        """Tempo fits not taken (out of 20..400 BPM, or a few ticks far off the running estimate)."""

    @property
    def bpm(self) -> float:
        return 60e9 / (self._tick_period * MIDI_PPQN)

    def tick_period_ns(self) -> float:
        return self._tick_period

    # -- transport ---------------------------------------------------------------------------------
    def _arm(self, t_ns: int, position_ticks: int) -> None:
        self._next_tick = position_ticks
        self._armed = True
        self._armed_ns = t_ns
        self._n = 0
        self._last_tick = position_ticks - 1
        self._last_tick_ns = t_ns
        self.freewheeling = False
        self._timed_out = self._located = False
        self._check = None
        self._opened_step = -1
        self.start_step = -(-position_ticks // self.ticks_per_step)
        self.running = True
        self._bump()

    def start(self, t_ns: int | None = None) -> None:
        self._arm(self.now() if t_ns is None else t_ns, 0)

    def cont(self, t_ns: int | None = None) -> None:
        self._arm(self.now() if t_ns is None else t_ns, self._next_tick)

    def stop(self) -> None:
        self._armed = False
        self.freewheeling = False
        self._timed_out = self._located = False
        self._check = None
        if self.running:
            self.running = False
            self._bump()

    def locate(self, sixteenths: int, t_ns: int | None = None) -> None:
        """Song Position Pointer: the position (in sixteenth notes) of the next tick.

        Stopped: where the next Continue (or, after a timeout, the returning ticks) resumes. Running (a DAW
        looping back, a locate during playback): a resync at once, as a Continue there; the agent's next
        step is the new position's, not the old one the master will not pass again soon.
        """
        pos = max(0, int(sixteenths)) * (MIDI_PPQN // 4)
        if not self.running:
            self._next_tick = pos
            self._located = self._timed_out
            return
        if pos == self._next_tick:
            return  # the master confirms where we are (or where a Start/Continue put us): no discontinuity
        self.resyncs += 1
        self._arm(self.now() if t_ns is None else t_ns, pos)

    def _resume(self, t_ns: int) -> None:
        """Ticks are back after a timeout stop: resume at the master's position, as the line fitted before
        the silence extrapolates it (or at a Song Position Pointer that came meanwhile)."""
        pos = self._next_tick
        if not self._located and self._n >= 2:
            intercept, slope = self._line()
            pos = max(self._last_tick + 1, round((t_ns - intercept) / slope))
        self.resumes += 1
        log.info("MIDI clock back after a timeout: resuming at tick %d", pos)
        self._arm(t_ns, pos)

    def tick(self, t_ns: int) -> None:
        """One clock pulse arrived at ``t_ns``."""
        self.ticks += 1
        if not self.running:
            if not self._timed_out:
                return  # stopped by the master (or never started): ticks alone do not start playing
            self._resume(t_ns)
        idx = self._next_tick
        self._next_tick += 1
        fresh = self._armed
        self._armed = False
        self.freewheeling = False  # the fit ring is kept: a stall's burst must not refit the tempo alone
        if not fresh and self._check is None and self._n >= 8:
            self._maybe_open_check(t_ns, idx)
        self._last_tick = idx
        self._last_tick_ns = t_ns
        if idx % self.ticks_per_step == 0:
            self._opened_step = idx // self.ticks_per_step
            self._opened_ns = t_ns
        slot = self._n % self.window
        self._times[slot] = t_ns
        self._idx[slot] = idx
        self._n += 1
        if self._n >= 3:
            self._refit()
        if self._check is not None:
            self._check_phase(t_ns, idx)

    # -- phase: lost ticks ---------------------------------------------------------------------------
    def _ring(self) -> tuple[np.ndarray, np.ndarray]:
        n = min(self._n, self.window)
        return self._idx[:n], self._times[:n]

    def _line(self, last: int = 24) -> tuple[float, float]:
        """The line the next ticks are expected on (intercept, slope): the slope is the tempo estimate, the
        intercept the median over the ring's ``last`` newest ticks (robust to a stall's late ticks; local,
        so that a slightly biased slope - quantized stamps - does not drift over the whole window)."""
        n = min(self._n, self.window, last)
        slots = [(self._n - 1 - j) % self.window for j in range(n)]
        x, y = self._idx[slots], self._times[slots]
        slope = self._tick_period
        return float(np.median(y - slope * x)), slope

    def _maybe_open_check(self, t_ns: int, idx: int) -> None:
        """A gap of more than 2.5 tick periods (ticks lost, or a stall): check the count on the ticks that
        follow. (An early tick alone is no evidence: stamps quantized to JACK periods close to the tick
        period put two ticks in one period every few dozen ticks.)"""
        if t_ns - self._last_tick_ns > 2.5 * self._tick_period:
            intercept, slope = self._line()
            lost = round((t_ns - self._last_tick_ns) / slope) - 1
            self._check = _PhaseCheck(t_ns, idx, intercept, slope, self._n, lost)

    def _check_phase(self, t_ns: int, idx: int) -> None:
        """Residuals against the line from before the gap, of the ticks that came at least three tick
        periods after it, decide once the last ``relock_ticks`` of them agree (within a tick period: a burst
        still arriving falls by a period per tick): off by whole ticks (their median, with a clear margin)
        is a re-lock, else the count was right (a stall). Undecided within two beats: the check is dropped."""
        ch = self._check
        assert ch is not None
        if t_ns >= ch.t_ns + 3 * ch.slope:
            ch.resid.append(t_ns - (ch.intercept + ch.slope * idx))
        last = ch.resid[-self.relock_ticks :]
        if len(last) >= self.relock_ticks and max(last) - min(last) < 0.75 * ch.slope:
            self._check = None
            off = float(np.median(last)) / ch.slope
            shift = round(off)
            if 0 < shift <= ch.gap_ticks and abs(off - shift) < 0.4:
                self._relock(shift, ch.n)
        elif idx - ch.idx > 2 * MIDI_PPQN:
            self._check = None

    def _relock(self, shift: int, since_n: int) -> None:
        """Move the count forward by ``shift`` lost ticks, the fit ring's entries since the gap with it.
        The engine sees the steps jump and skips forward to the master's step (counted as skipped)."""
        for j in range(max(since_n, self._n - self.window), self._n):
            self._idx[j % self.window] += shift
        self._next_tick += shift
        self._last_tick += shift
        if self._last_tick % self.ticks_per_step == 0:
            self._opened_step = self._last_tick // self.ticks_per_step
            self._opened_ns = self._last_tick_ns
        self.relocks += 1
        self.lost_ticks += shift
        log.info("MIDI clock re-locked by %+d ticks to the master's phase", shift)
        self._refit()

    def _refit(self) -> None:
        """Tempo from the ticks in the window, robust to late ticks (stalls, bursts) and to quantized stamps.

        A start slope that outliers cannot bend (the median of the spans ``(t[i+h] - t[i]) / h`` over half
        the window), the ticks far from that line dropped (more than 4 median absolute deviations of the
        residuals), then least squares on the rest: the median alone is biased when stamps are quantized
        (JACK periods: every span is a whole number of periods), least squares alone follows a stall.
        Never taken: a tempo outside 20..400 BPM, or one from fewer than 8 ticks off the running estimate
        by more than a factor 2 (a burst right after a Start or a resync: 393 BPM from 4 ticks).
        """
        n = min(self._n, self.window)
        x, y = self._idx[:n], self._times[:n]
        if self._n > self.window:  # the ring wrapped: restore time order for the spans
            k = self._n % self.window
            x, y = np.concatenate((x[k:], x[:k])), np.concatenate((y[k:], y[:k]))
        slope = _ls_slope(x, y)
        if n >= 8:
            h = n // 2
            spans = (y[h:] - y[:-h]) / (x[h:] - x[:-h])
            s0 = float(np.median(spans))
            resid = y - s0 * x
            dev = np.abs(resid - np.median(resid))
            keep = dev <= 4.0 * max(float(np.median(dev)), 50_000.0)
            slope = s0
            if keep.sum() >= max(4, n // 2):
                fitted = _ls_slope(x[keep], y[keep])
                if not math.isnan(fitted):
                    slope = fitted
        lo, hi = 60e9 / (400 * MIDI_PPQN), 60e9 / (20 * MIDI_PPQN)
        sane = lo <= slope <= hi
        if sane and n < 8:
            sane = 0.5 <= slope / self._tick_period <= 2.0
        if sane:
            self._tick_period = slope
        else:
            self.rejected_fits += 1

    # -- the Clock questions -----------------------------------------------------------------------
    def _tick_time(self, tick: float) -> float:
        if self._armed:
            return self._armed_ns + (tick - self._next_tick) * self._tick_period
        return self._last_tick_ns + (tick - self._last_tick) * self._tick_period

    def due(self, k: int) -> int:
        return round(self._tick_time(k * self.ticks_per_step))

    def step_at(self, t_ns: int) -> float:
        if self._armed:
            tick = self._next_tick + (t_ns - self._armed_ns) / self._tick_period
        else:
            tick = self._last_tick + (t_ns - self._last_tick_ns) / self._tick_period
        return tick / self.ticks_per_step

    def opened(self, k: int, now: int) -> bool:
        if self._last_tick >= k * self.ticks_per_step and not self._armed:
            return True
        return self.freewheeling and now >= self.due(k)

    def open_time(self, k: int) -> int:
        """The arrival time of the tick that opened step k (exact for the latest opened step)."""
        return self._opened_ns if k == self._opened_step else self.due(k)

    def waiting_for_tick(self, k: int, now: int) -> bool:
        """Step k is due by the prediction but its tick has not come (late, lost, or the master paused):
        nobody knows when it will, so the engine's slack-time work (the status) must not wait for it."""
        return self.running and not self.opened(k, now) and now >= self.due(k)

    def poll(self, now: int) -> None:
        if not self.running or self._armed:
            return
        silent = now - self._last_tick_ns
        if silent > self.freewheel_ticks * self._tick_period:
            self.freewheeling = True
        bar_ns = self._tick_period * MIDI_PPQN * self.grid.beats_per_bar
        if silent > bar_ns:
            self._next_tick = max(self._next_tick, math.ceil(self.step_at(now)) * self.ticks_per_step)
            self.stop()
            self._timed_out = True

    def handle(self, ev: ControlEvent) -> bool:
        kind = ev.kind
        if kind == Control.CLOCK_TICK:
            self.tick(ev.t_ns)
        elif kind == Control.START:
            self.start(ev.t_ns)
        elif kind == Control.CONTINUE:
            self.cont(ev.t_ns)
        elif kind == Control.STOP:
            self.stop()
        elif kind == Control.SONG_POSITION:
            self.locate(int(ev.value), ev.t_ns)
        else:
            return False
        return True

    def status(self) -> dict[str, object]:
        out = super().status()
        out["freewheeling"] = self.freewheeling
        out["ticks"] = self.ticks
        out["clock_relocks"] = self.relocks
        out["clock_lost_ticks"] = self.lost_ticks
        out["clock_resumes"] = self.resumes
        out["clock_resyncs"] = self.resyncs
        out["clock_rejected_fits"] = self.rejected_fits
        return out
