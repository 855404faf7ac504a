"""Clocks: where the due time T_k of grid step k comes from, and the transport state.

All clocks speak nanoseconds of ``time.perf_counter_ns()`` (or an injected ``now``) and are driven by the
engine thread only: input threads put transport events (:class:`~liveagent.live.events.ControlEvent`)
on the engine's queue and the engine hands them to :meth:`Clock.handle`. Schedules are absolute
(``anchor + n * period``, as in supriya's clocks and python-rtmidi's sequencer example), never sums of
sleeps, so rounding never drifts; a tempo change re-anchors at a step boundary.

- :class:`InternalClock`: BPM, start/stop/continue, tempo change at the next bar or at the next step.
- :class:`OscTransportClock`: the internal clock plus ``/beat`` pulses that re-anchor the phase.
- :class:`~liveagent.live.engine.midi_clock.MidiClockFollower` (its own module): 24 PPQN ticks,
  Start/Stop/Continue, Song Position Pointer; a robust tempo estimate; a step opens on its tick; freewheel
  at the last tempo when ticks stop, then stop after a bar; resume when ticks return, resync on a Song
  Position Pointer while running, re-lock after lost ticks.
- :class:`ManualClock`: an internal clock on a :class:`ManualTime` the test advances (exact schedules).

The engine uses four questions: ``running``/``epoch``/``start_step`` (did the transport change, and
where does playing resume), ``due(k)`` (when is step k due: scheduled or predicted), ``opened(k, now)``
(has step k's emission moment come: time for internal clocks, the tick for MIDI) and ``step_at(t)``
(the fractional step at time t, to quantize performer onsets).
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable

from liveagent.live.events import Control, ControlEvent
from liveagent.music.tokens import Grid

NowFn = Callable[[], int]


class ManualTime:
    """A fake ``perf_counter_ns`` for tests: call it for the time, move it with ``set``/``advance``."""

    def __init__(self, t_ns: int = 0) -> None:
        self.t_ns = int(t_ns)

    def __call__(self) -> int:
        return self.t_ns

    def set(self, t_ns: int) -> None:
        if t_ns < self.t_ns:
            raise ValueError(f"time cannot go back ({t_ns} < {self.t_ns})")
        self.t_ns = int(t_ns)

    def advance(self, dt_ns: int) -> None:
        self.set(self.t_ns + int(dt_ns))


class Clock(ABC):
    """The interface the engine schedules against (see the module docstring)."""

    external = False
    """True when steps open on external events (MIDI ticks): the engine waits on its queue, no spin."""

    def __init__(self, grid: Grid, now: NowFn) -> None:
        self.grid = grid
        self.now = now
        self.running = False
        self.epoch = 0
        """Bumped on every transport discontinuity (start, stop, continue, locate)."""
        self.start_step = 0
        """The step where the current run (re)started."""

    def _bump(self) -> None:
        self.epoch += 1

    @property
    @abstractmethod
    def bpm(self) -> float:
        """The current (or estimated) tempo in quarter notes per minute."""

    @abstractmethod
    def due(self, k: int) -> int:
        """T_k: the time (ns) step k is due, scheduled or predicted. Meaningful while running."""

    @abstractmethod
    def step_at(self, t_ns: int) -> float:
        """The fractional step index at time ``t_ns`` (inverse of ``due``)."""

    def opened(self, k: int, now: int) -> bool:
        """Has step k's emission moment come?"""
        return now >= self.due(k)

    def open_time(self, k: int) -> int:
        """When step k actually opened (the tick's arrival for MIDI); ``due(k)`` for timed clocks."""
        return self.due(k)

    def waiting_for_tick(self, k: int, now: int) -> bool:
        """Step k is past its predicted time and waits for an external event (a tick) nobody can time."""
        return False

    def period_ns(self) -> float:
        """The current length of one step."""
        return 60e9 / (self.bpm * self.grid.steps_per_beat)

    def origin_ns(self, now: int) -> int:
        """T_0 as the grid stands at ``now``: the current step's time less that many periods of today's
        length, so ``origin + k * period_ns()`` gives this tempo's steps (the status's ``grid_t0_ns``).
        ``due(0)`` is not it once the tempo changed: a change waiting for its bar line keeps the old steps'
        times, and a receiver that lined up to it was 28-42 ms off the band after 100 -> 132 BPM."""
        s = max(0, math.floor(self.step_at(now)))
        return self.due(s) - round(s * self.period_ns())

    def handle(self, ev: ControlEvent) -> bool:
        """Consume a transport/clock event; False when the event is not this clock's business."""
        return False

    def poll(self, now: int) -> None:  # noqa: B027 - optional hook
        """Housekeeping the engine calls each time it wakes (freewheel timeouts)."""

    def status(self) -> dict[str, object]:
        return {"clock": type(self).__name__, "running": self.running, "bpm": round(self.bpm, 3)}


FOLLOW_TEMPO_RANGE = 0.10
"""How far a followed grid may stray from the tempo set (:meth:`InternalClock.follow_onset`): musicians'
drift and rubato, not another tempo; with a range of 25 % a glissando locked quarter notes at 5 steps."""

FOLLOW_PERIOD_STEP = 0.03
"""The most one onset may change a followed period, as a share of the period set (a burst of onsets must not
swing the tempo; a performer 10 % off is followed within about 4 beats)."""


class InternalClock(Clock):
    """A BPM clock: T_k = anchor_ns + (k - anchor_step) * period, re-anchored at tempo changes."""

    def __init__(
        self,
        bpm: float = 120.0,
        grid: Grid | None = None,
        *,
        now: NowFn = time.perf_counter_ns,
        preroll_ms: float = 50.0,
        tempo_at_bar: bool = True,
    ) -> None:
        super().__init__(grid or Grid(), now)
        self._bpm = self._check_bpm(bpm)
        self.preroll_ns = int(preroll_ms * 1e6)
        """Start (and continue) this long after the command, so step 0 can be decided in time."""
        self.tempo_at_bar = tempo_at_bar
        """Whether a TEMPO event takes effect at the next bar line (else at the next step)."""
        self._anchor_step = 0
        self._anchor_ns = 0
        self._period = 60e9 / (self._bpm * self.grid.steps_per_beat)
        self._pending: tuple[int, int, float, float] | None = None
        """(step, T_step, new period, new bpm): a tempo change waiting for its bar line."""
        self._stopped_at = 0
        self._set_bpm = self._bpm
        """The tempo last set (``--bpm``, ``/tempo``): what :meth:`follow_onset` may stray from."""
        self._followed_step = -1
        """The step of the last onset :meth:`follow_onset` followed (-1: none since the start)."""
        self._followed_ns = 0
        """That step's time as :meth:`follow_onset` left it."""
        self._followed_t = 0
        """The time of that onset."""

    @staticmethod
    def _check_bpm(bpm: float) -> float:
        if not (math.isfinite(bpm) and 1.0 <= bpm <= 999.0):
            raise ValueError(f"bpm must be in 1..999, got {bpm}")
        return float(bpm)

    @property
    def bpm(self) -> float:
        """The tempo now (a pending change counts once its bar line has passed). Read-only: safe to call
        from the monitor's thread."""
        p = self._pending
        if p is not None and self.now() >= p[1]:
            return p[3]
        return self._bpm

    def _commit_pending(self, now: int) -> None:
        if self._pending is not None and now >= self._pending[1]:
            self._anchor_step, self._anchor_ns, self._period, self._bpm = self._pending
            self._pending = None

    def due(self, k: int) -> int:
        p = self._pending
        if p is not None and k >= p[0]:
            return p[1] + round((k - p[0]) * p[2])
        return self._anchor_ns + round((k - self._anchor_step) * self._period)

    def step_at(self, t_ns: int) -> float:
        p = self._pending
        if p is not None and t_ns >= p[1]:
            return p[0] + (t_ns - p[1]) / p[2]
        return self._anchor_step + (t_ns - self._anchor_ns) / self._period

    def start(self, at_ns: int | None = None, step: int = 0) -> None:
        """Start playing: step ``step`` is due at ``at_ns`` (default: now + preroll)."""
        self._pending = None
        self._anchor_step = step
        self._anchor_ns = self.now() + self.preroll_ns if at_ns is None else int(at_ns)
        self.start_step = step
        self._followed_step = -1
        self.running = True
        self._bump()

    def stop(self) -> None:
        if not self.running:
            return
        now = self.now()
        self._commit_pending(now)
        self._stopped_at = max(self.start_step, math.floor(self.step_at(now)) + 1)
        self.running = False
        self._bump()

    def cont(self, at_ns: int | None = None, *, on_beat: bool = False) -> None:
        """Continue from where the last stop left off (``on_beat``: from the first beat at or after it: a
        performer who comes back in comes in on a beat, while a stop lands anywhere)."""
        step = self._stopped_at
        if on_beat:
            spbeat = self.grid.steps_per_beat
            step = -(-step // spbeat) * spbeat
        self.start(at_ns, step)

    def follow_onset(self, t_ns: int, step: int, *, phase_gain: float, tempo_gain: float) -> None:
        """A performer's onset heard at ``t_ns`` for ``step`` pulls the grid toward it (the performer leads):
        step's time moves by ``phase_gain`` x the error, and the period toward the performer's, measured
        from the time since the previous followed onset over the steps between them, by ``tempo_gain`` (x the
        share of a beat those steps cover, less for shorter notes), at most :data:`FOLLOW_PERIOD_STEP` of the
        period set per onset. Measuring the period directly follows a steady performer 8-10 % off within a
        few beats (integrating the phase error lost them: the phase drifted past half a step first).

        The tempo stays within :data:`FOLLOW_TEMPO_RANGE` of the tempo set (``/tempo``, ``--bpm``), and so
        does the grid itself: the phase moves only as far as keeps the time since the last followed step
        within those bounds (a review's note-on flood ran the beats at +17 % with the period at its clamp).
        """
        if not self.running or self._pending is not None:
            return  # a tempo change waiting for its bar line decides the grid until then
        predicted = self.due(step)
        err = t_ns - predicted
        anchor = predicted + round(phase_gain * err)
        last = self._followed_step
        if 0 <= last < step and step - last <= 4 * self.grid.steps_per_bar:
            n = step - last
            spbeat = self.grid.steps_per_beat
            base = 60e9 / (self._set_bpm * spbeat)
            lo, hi = base * (1.0 - FOLLOW_TEMPO_RANGE), base * (1.0 + FOLLOW_TEMPO_RANGE)
            cap = base * FOLLOW_PERIOD_STEP
            measured = (t_ns - self._followed_t) / n
            pull = tempo_gain * min(1.0, n / spbeat) * (measured - self._period)
            self._period = min(max(self._period + min(max(pull, -cap), cap), lo), hi)
            self._bpm = 60e9 / (self._period * spbeat)
            since = self._followed_ns
            anchor = min(max(anchor, since + round(n * lo)), since + round(n * hi))
        self._anchor_step = step
        self._anchor_ns = anchor
        self._followed_step = step
        self._followed_ns = anchor
        self._followed_t = t_ns

    def shift_steps(self, n: int) -> bool:
        """Move the grid ``n`` steps later from now on (the time that was step s becomes step s - n): the
        beat moves to where the performer plays it (:class:`~liveagent.live.engine.lead.PerformerLead`). A
        tempo change waiting for its bar line moves with it. Returns whether the grid moved."""
        if not self.running:
            return False
        shift = round(n * self._period)
        self._anchor_ns += shift
        if self._pending is not None:
            step, t, period, bpm = self._pending
            self._pending = (step, t + shift, period, bpm)
        self._followed_step = -1  # the loop's last step is in the old numbering
        return True

    def set_tempo(self, bpm: float, *, at_bar: bool | None = None) -> None:
        """Change tempo at the next bar line (default per ``tempo_at_bar``) or at the next step.

        The step the change falls on keeps its old due time; later steps follow the new period.
        """
        bpm = self._check_bpm(bpm)
        if self._pending is None and bpm == self._set_bpm:
            return  # already the tempo set (a patch re-sending it every beat must not reset a followed grid)
        period = 60e9 / (bpm * self.grid.steps_per_beat)
        self._set_bpm = bpm
        if not self.running:
            self._bpm, self._period, self._pending = bpm, period, None
            return
        now = self.now()
        self._commit_pending(now)
        nxt = max(self.start_step, math.floor(self.step_at(now)) + 1)
        if at_bar if at_bar is not None else self.tempo_at_bar:
            spb = self.grid.steps_per_bar
            nxt = -(-nxt // spb) * spb
        self._pending = (nxt, self.due(nxt), period, bpm)
        self._commit_pending(now)

    def handle(self, ev: ControlEvent) -> bool:
        kind = ev.kind
        if kind == Control.START:
            self.start()
        elif kind == Control.STOP:
            self.stop()
        elif kind == Control.CONTINUE:
            if not self.running:
                self.cont()
        elif kind == Control.TEMPO:
            self.set_tempo(ev.value)
        else:
            return False
        return True


class ManualClock(InternalClock):
    """An internal clock on fake time, for tests: ``clock.time`` is the :class:`ManualTime` to advance.

    Pass ``now=clock.time`` to the engine. With a BPM giving an integral period (e.g. 125 BPM in 16ths =
    120 ms) every T_k is an exact integer and schedules can be asserted exactly.
    """

    def __init__(
        self,
        bpm: float = 125.0,
        grid: Grid | None = None,
        *,
        t0_ns: int = 0,
        preroll_ms: float = 0.0,
        tempo_at_bar: bool = True,
    ) -> None:
        self.time = ManualTime(t0_ns)
        super().__init__(bpm, grid, now=self.time, preroll_ms=preroll_ms, tempo_at_bar=tempo_at_bar)


class OscTransportClock(InternalClock):
    """The internal clock driven by OSC transport: /tempo, /start, /stop, /continue and /beat pulses.

    A beat pulse re-anchors the phase: the beat boundary nearest the pulse (or, when the pulse names its
    beat within the bar, the nearest such beat) is moved to the pulse's time, scaled by ``phase_gain``
    (1 = hard lock; below 1 smooths a jittery sender). The tempo does not follow the pulses; a ``/tempo``
    waiting for its bar line takes effect at the next pulse instead (whichever comes first): the pulse is
    the sender's beat at its new tempo.
    """

    def __init__(
        self,
        bpm: float = 120.0,
        grid: Grid | None = None,
        *,
        now: NowFn = time.perf_counter_ns,
        preroll_ms: float = 50.0,
        tempo_at_bar: bool = True,
        phase_gain: float = 1.0,
    ) -> None:
        super().__init__(bpm, grid, now=now, preroll_ms=preroll_ms, tempo_at_bar=tempo_at_bar)
        if not 0.0 < phase_gain <= 1.0:
            raise ValueError("phase_gain must be in (0, 1]")
        self.phase_gain = phase_gain
        self.beats_seen = 0

    def beat(self, t_ns: int, index: int = -1) -> None:
        """A beat pulse at ``t_ns``; ``index`` = beat within the bar (0-based) or -1 (any beat)."""
        if not self.running:
            return
        self._commit_pending(t_ns)
        spbeat = self.grid.steps_per_beat
        pos = self.step_at(t_ns)
        if index >= 0:
            spbar = self.grid.steps_per_bar
            offset = (index % self.grid.beats_per_bar) * spbeat
            step = round((pos - offset) / spbar) * spbar + offset
        else:
            step = round(pos / spbeat) * spbeat
        predicted = self.due(step)
        pending = self._pending
        self._pending = None
        if pending is not None:
            # A /tempo waiting for its bar line: the pulse is a beat boundary the sender plays at its new
            # tempo (patches/README.md: send `tempo`, then pulse), so the new period starts here. Dropping
            # it left the clock at the old tempo between pulses (misses, skipped steps, beats off the grid).
            self._period, self._bpm = pending[2], pending[3]
        self._anchor_step = step
        self._anchor_ns = predicted + round(self.phase_gain * (t_ns - predicted))
        self.beats_seen += 1

    def handle(self, ev: ControlEvent) -> bool:
        if ev.kind == Control.BEAT:
            self.beat(ev.t_ns, int(ev.value))
            return True
        return super().handle(ev)
