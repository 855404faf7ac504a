"""The live engine: one thread that owns all state and plays the policy on the clock's grid.

Timing (DESIGN.md), by the policy's ``meta.mode``:

- **anticipate**: step k is decided at T_k - lead (snapshot, policy, sampling) and emitted at T_k (sleep,
  then spin the last stretch for timed clocks; on the tick that opens the step for the MIDI clock).
- **follow** (modes ``follow`` and ``react``: the policy hears the performer's step k): step k is decided
  as soon as a performer note-on whose nearest step is k has arrived (``follow_chord_ms`` after it: the
  chord grace, so that the rest of a chord sent note by note is heard too; never past the window's close +
  half the budget), or when the follow window after T_k has closed without one (the performer holds or
  rests), whichever is first, and emitted at once. An early onset is answered before T_k, but never
  before step k-1 was emitted nor earlier than T_k - ``follow_window_max_ms``. The window adapts to the
  performer's measured onset offsets (:mod:`liveagent.live.engine.follow`), is at most half a step, and can be
  fixed (``follow_window_ms``, ``/liveagent/follow``). A note-on that arrives after its step was closed
  by the window is folded into that step in the history (counted ``late_amended``): the policy then sees
  the onset on its own step and a HOLD on the next, never a phantom off-beat onset to re-strike. Answer
  latency (emission minus the first onset's arrival, the chord grace included) is measured for the steps
  decided on an onset, and ``answered_pct`` (answered / (answered + late_amended)) shows how many onsets
  the window caught.

The silence gate (``waits_for_performer``, on by default; the rule ``liveagent eval`` applies, from
:func:`~liveagent.music.sampling.count_silence` and :func:`~liveagent.music.sampling.silence_gate`): the
agent rests before the performer's first note and once the performer has been silent for a bar
(``steps_per_bar`` consecutive REST steps as finalized), until the performer plays again. The count covers
the performer steps the decision heard (up to k-1 in anticipate timing, up to k in follow timing), starts
at a bar on every transport start (a session opens closed), and drops to 0 when a late onset is amended
into its step. A gated step is REST after sampling (the policy still runs, so its history and timing stay
as ever): a sounding agent note is released.

No decision at its deadline (T_k in anticipate; the window's close + ``follow_budget_ms`` in follow; plus
``miss_tolerance_ms`` in both) means a fallback token (HOLD while a note sounds and the silence gate is
open, else REST) and a counted miss; an engine that wakes up more than a step late skips to the
current step (counted) and never plays a late burst. Beats (``sink.beat``) go out on the grid at T_k in
either timing.

Other threads only call :meth:`Engine.submit` (a lock-free ``SimpleQueue.put``) and read the status
the engine publishes in its slack time (:meth:`Engine.status`, :meth:`Engine.published_status`).
Performer onsets are quantized to the nearest step (an onset just before T_k belongs to step k) and
folded into the observation (:class:`~liveagent.music.features.StreamingObservation`, preallocated,
updated in place) when that step's window is final. For tests, :meth:`Engine.run_until` drives the
same loop on a :class:`~liveagent.live.engine.clocks.ManualTime` without real time.

The slack-time work (housekeeping, the status snapshot) is in :mod:`liveagent.live.engine.status`, the
control events and policy swaps in :mod:`liveagent.live.engine.control`, the performer's notes (and the
transport sessions) in :mod:`liveagent.live.engine.performer_input`, a step's decision and emission in
:mod:`liveagent.live.engine.steps`: functions of this engine's state, run on its thread.
"""

from __future__ import annotations

import importlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping

from liveagent.live.engine.clocks import Clock, ManualTime
from liveagent.live.engine.config import EngineConfig, PolicyLoaded, RecorderLike
from liveagent.live.engine.control import on_control, on_loaded, swap_pending
from liveagent.live.engine.performer_input import on_note, transport_changed
from liveagent.live.engine.policy import Policy, load_policy
from liveagent.live.engine.policy_view import PREFETCH_NS, engine_running, observation_for
from liveagent.live.engine.runtime_gc import RealtimeGC
from liveagent.live.engine.state import DECIDE, EMIT, EngineState
from liveagent.live.engine.status import build_status, publish_status, slack_time
from liveagent.live.engine.steps import decide_step, emit_step, miss_step
from liveagent.live.events import Control, ControlEvent, InputError, InputEvent, NoteEvent, OutputSink
from liveagent.music.features import hears_current_step

log = logging.getLogger(__name__)

__all__ = ["Engine", "EngineConfig", "PolicyLoaded", "RecorderLike"]


CHORD_GRACE_SPAN = 3
"""Follow timing: the chord grace runs from a step's latest note-on, but ends at most this many graces after
its first (a chord spread over ~6 ms is heard whole; a burst does not hold the answer back)."""

MAX_DRAIN = 256
"""Queued events handled per pass of the loop at most: a backlog is worked off between the steps, never in
one go that would hold up the grid (the rest wait for the next pass or wake-up)."""

_QUIET_CONTROLS = frozenset((Control.CLOCK_TICK, Control.BEAT, Control.STATUS))
"""Controls that do not hasten the next status publication (high-rate transport; STATUS has its own)."""


class Engine(EngineState):
    """Plays ``policy`` into ``sink`` on ``clock``'s grid. See the module docstring for the timing."""

    def __init__(
        self,
        policy: Policy,
        sink: OutputSink,
        clock: Clock,
        config: EngineConfig | None = None,
        *,
        now: Callable[[], int] | None = None,
        recorder: RecorderLike | None = None,
        policy_loader: Callable[[str], Policy] = load_policy,
    ) -> None:
        super().__init__(policy, sink, clock, config, now=now, recorder=recorder, policy_loader=policy_loader)
        publish_status(self, self._now())

    # -- public API (thread-safe) ----------------------------------------------------------------
    def submit(self, event: InputEvent | PolicyLoaded) -> None:
        """Enqueue an input event (any thread; never blocks)."""
        self._queue.put(event)

    def swap_policy(self, policy: Policy, name: str | None = None) -> None:
        """Swap in an already loaded policy at the next bar line (any thread)."""
        self._queue.put(PolicyLoaded(self._now(), policy, name or policy.name))

    def request_policy(self, name_or_path: str, reply_to: tuple[str, int] | None = None) -> None:
        """Load a policy (off the engine thread) and swap it in at the next bar line (any thread)."""
        self._queue.put(ControlEvent(self._now(), Control.POLICY, text=name_or_path, reply_to=reply_to))

    def start(self) -> threading.Thread:
        """Run the engine on its own daemon thread ("liveagent-engine") and return it."""
        if self._thread is not None and self._thread.is_alive():
            return self._thread
        self._thread = threading.Thread(target=self.run, name="liveagent-engine", daemon=True)
        self._owner = self._thread
        self._thread.start()
        return self._thread

    def stop(self, timeout: float | None = 5.0) -> None:
        """End the loop (notes off, All Notes Off, recorder closed); join the thread if we started it.

        The loop sees the stop flag at its next pass, before any event still queued: SIGTERM must not wait
        behind a backlog. The SHUTDOWN event wakes a loop asleep on the queue (and ends :meth:`run_until`)."""
        self._stop_now.set()
        self._queue.put(ControlEvent(self._now(), Control.SHUTDOWN))
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def thread(self) -> threading.Thread | None:
        """The thread :meth:`start` made (None when the caller runs :meth:`run` itself)."""
        return self._thread

    def is_alive(self) -> bool:
        """True while the engine thread started by :meth:`start` runs."""
        return self._thread is not None and self._thread.is_alive()

    def status(self) -> dict[str, object]:
        """Tempo, position, policy, counters and timing percentiles (JSON-friendly), from any thread.

        From another thread while the loop runs: a copy of the latest snapshot the engine thread published
        in its slack time (at most ``status_interval_ms`` old); the state itself is never read. On the
        loop's own thread, or when no loop runs (tests, after :meth:`stop`): built fresh.
        """
        owner = self._owner
        if owner is None or owner is threading.current_thread():
            return self._build_status()
        return dict(self.board.latest)

    def published_status(self) -> Mapping[str, object]:
        """The latest published snapshot itself (read-only, never changed; any thread, no copy)."""
        return self.board.latest

    def _build_status(self) -> dict[str, object]:
        """The status, built from the state: the engine thread's job (in slack time)."""
        return build_status(self)

    # -- running -----------------------------------------------------------------------------------
    def run(self) -> None:
        """The real-time loop (blocks until SHUTDOWN / :meth:`stop`). Notes off on every way out."""
        self._owner = threading.current_thread()
        try:
            self._warmup()
            with RealtimeGC(self.config.gc_freeze) as rgc, engine_running():
                self._gc = rgc
                while not self._shutdown:
                    wake = self._service()
                    slack_time(self, wake)
                    self._wait(wake)
        finally:
            self._gc = None
            self._teardown()
            self._owner = None

    def run_until(self, t_end_ns: int) -> None:
        """Tests: run the loop on a ManualTime up to ``t_end_ns``, jumping from one wake-up to the next."""
        clock_time = self._now
        if not isinstance(clock_time, ManualTime):
            raise TypeError("run_until needs the engine's now to be a ManualTime")
        while not self._shutdown:
            wake = self._service()
            slack_time(self, wake, check=False)
            if wake > t_end_ns:
                break
            clock_time.set(max(wake, clock_time()))
        if clock_time() < t_end_ns:
            clock_time.set(t_end_ns)
        if not self._shutdown:
            slack_time(self, self._service(), check=False)

    def step_once(self) -> int:
        """Tests: one pass of the loop at the current time; returns the next wake-up time."""
        return self._service()

    def close(self) -> None:
        """Tests and non-threaded use: the same clean-up as the end of :meth:`run`."""
        self._teardown()

    def _wait(self, wake: int) -> None:
        """Sleep on the queue until ``wake`` (events wake us early); spin the last bit before an emission."""
        spin = self._spin_ns if self._emit_wake and not self.clock.external else 0
        while True:
            remaining = wake - self._now()
            if remaining <= 0:
                return
            if remaining <= spin:
                if self.config.spin_yield:
                    while self._now() < wake:
                        time.sleep(0)  # releases the GIL: other engines' threads run meanwhile
                else:
                    while self._now() < wake:
                        pass
                self._emit_due()
                return
            timeout = (remaining - spin) / 1e9
            try:
                ev = self._queue.get(timeout=timeout)
            except queue.Empty:
                continue
            if self._stop_now.is_set():
                self._shutdown = True
                return
            self._handle(ev)
            return

    def _emit_due(self) -> None:
        """The end of the spin before an anticipated step: when nothing waits in the queue and the transport
        is as it was, the decided step goes out now, before the loop's housekeeping (the queue drain, the
        clock's poll), which runs right after it as usual (measured in `serve`, 240 BPM: the note-on's time
        after the spin, p50 0.10 -> 0.056 ms). Anything queued takes the normal path (a /mute or /stop is
        handled first)."""
        k = self._k
        clock = self.clock
        if self._phase != EMIT or k is None or not self._queue.empty() or self._stop_now.is_set():
            return
        now = self._now()
        if clock.running and clock.epoch == self._epoch and clock.opened(k, now):
            emit_step(self, k, self._token, now, send=True, then=self._beats)

    def _warmup(self) -> None:
        """Pay first-call costs before playing: policy runs, and the onnxruntime import a later hot swap
        would otherwise do on the loader thread while holding the GIL (measured: a ~125 ms engine stall)."""
        try:
            importlib.import_module("onnxruntime")
        except ImportError:
            log.debug("onnxruntime not importable; only non-ONNX policies can be swapped in")
        view = self.view
        obs = observation_for(view.policy)
        for _ in range(self.config.warmup_calls):
            self._sampler.sample(view.policy(obs), view.mask)
        self.stats.reset_timing()

    def _teardown(self) -> None:
        try:
            self.release_all()
            self.sink.all_notes_off()
        finally:
            if self.recorder is not None:
                try:
                    self.recorder.event(self._now(), "end", stats=self.stats.snapshot())
                    self.recorder.close()
                except Exception:
                    log.exception("closing the recorder failed")
                self.recorder = None

    # -- the loop body -----------------------------------------------------------------------------
    def _drain(self) -> None:
        """Handle up to :data:`MAX_DRAIN` queued events; none once :meth:`stop` was called."""
        q = self._queue
        stop = self._stop_now
        for _ in range(MAX_DRAIN):
            if stop.is_set():
                self._shutdown = True
                return
            try:
                ev = q.get_nowait()
            except queue.Empty:
                return
            self._handle(ev)

    def _service(self) -> int:
        """Handle queued events and every action due now; return when to wake up next."""
        self._drain()
        self._emit_wake = False
        clock = self.clock
        now = self._now()
        if self.errors.unreported:
            self.errors.flush(now)
        clock.poll(now)
        if clock.epoch != self._epoch:
            transport_changed(self, now)
        if not clock.running or self._k is None or self._shutdown:
            return now + self._idle_ns
        wake = self._steps(now)
        return self._beats(wake)

    def _steps(self, now: int) -> int:
        """Decide and emit every step due now; return when the next step needs the engine."""
        clock = self.clock
        spbar = self.grid.steps_per_bar
        while True:
            k = self._k
            assert k is not None
            if self._phase == DECIDE:
                swap_here = self._pending_policy is not None and k % spbar == 0
                if clock.opened(k + 1, now):  # more than a step late: skip, no late burst
                    if swap_here:
                        swap_pending(self, now)
                    self.stats.counters.skipped += 1
                    miss_step(self, k, now, emit=False)
                    continue
                pending = self._pending_policy
                mode = pending.meta.mode if swap_here and pending is not None else self.view.policy.meta.mode
                if hears_current_step(mode):
                    wake = self._follow(k, now, swap_here)
                    if wake is not None:
                        return wake
                    now = self._now()
                    continue
                if clock.opened(k, now) and now > clock.open_time(k) + self._tol_ns:
                    if swap_here:
                        swap_pending(self, now)
                    miss_step(self, k, now, emit=True)
                    continue
                td = clock.due(k) - self._lead_at(clock.period_ns())
                if now < td:
                    return self.view.prefetch_until(k, td, now, self._now, self._queue_busy)
                if swap_here:
                    swap_pending(self, now)
                decide_step(self, k, hears=False)
                now = self._now()
                if clock.opened(k, now) and now > clock.open_time(k) + self._tol_ns:
                    self.stats.counters.decisions -= 1
                    miss_step(self, k, now, emit=True)
                    continue
                self._phase = EMIT
            # EMIT (anticipate)
            if not clock.opened(k, now):
                self._emit_wake = True
                return self._future(clock.due(k), now)
            # The step's beat leaves right behind its notes, before their bookkeeping and the next decision.
            emit_step(self, k, self._token, now, send=True, then=self._beats)
            now = self._now()

    def _queue_busy(self) -> bool:
        """An event waits in the queue: the warm-up before an anticipate decision gives way to it (follow
        timing does not warm up at all: there a spread chord's later keys kept waiting behind warm runs were
        amended as late)."""
        return not self._queue.empty()

    def _follow_deadline(self, k: int, now: int) -> int | None:
        """Follow timing: past this time step k is a miss (None while step k has not opened): its window's
        close plus the decision budget and the miss tolerance."""
        clock = self.clock
        if not clock.opened(k, now):
            return None
        w = min(self.follow.window_ns, round(clock.period_ns() * 0.5))
        return clock.open_time(k) + w + self._budget_ns + self._tol_ns

    def _follow(self, k: int, now: int, swap_here: bool) -> int | None:
        """Follow timing for step k: decide and emit it on its onset (after the chord grace) or when its
        window has closed (then return None), else return when to look again (an onset arriving meanwhile
        wakes the engine)."""
        clock = self.clock
        deadline = self._follow_deadline(k, now)
        if deadline is not None and now > deadline:
            if swap_here:
                swap_pending(self, now)
            miss_step(self, k, now, emit=True)
            return None
        half = round(clock.period_ns() * 0.5)
        t_on = self.performer.onset_time(k)
        # No spin before a follow decision: a spinning engine does not read its queue, and the note-ons it
        # waits for (the rest of a chord, the onset a window close is waiting on) arrived during the spin
        # and were amended as late (a musician's spread chords, through a real serve: 28 of 42 notes).
        # A queue wait wakes on them; its timeout is precise enough for a window's close.
        self._emit_wake = False
        if t_on < 0:
            if deadline is None and clock.external:
                return self._future(clock.due(k), now)  # the window opens on the tick
            t_k = clock.due(k) if deadline is None else clock.open_time(k)
            close = t_k + min(self.follow.window_ns, half)
            if now < close:
                return close  # no warm-up in follow timing: an onset may come at any moment
        else:
            t_go = clock.due(k) - min(self._early_ns, half)  # the earliest an onset is answered
            grace = self._chord_ns
            # The grace runs from the chord's latest note so far: a chord spread over more than the grace
            # (keys ~3 ms apart) was decided on its middle note. Answer latency stays from the first.
            t_last = self.performer.last_onset_time(k) if grace else t_on
            if grace and t_last + grace > t_go:
                # The chord grace: the rest of a chord sent one note-on per message is a few ms behind its
                # first note. Never past the window's close + half the budget (the rest is the decision's).
                t_k = clock.due(k) if deadline is None else clock.open_time(k)
                cap = t_k + min(self.follow.window_ns, half) + self._budget_ns // 2
                # ... and at most three graces after its first note: a stream of note-ons (a glissando, a
                # burst) must not keep the answer waiting (a review measured p95 26 ms without this).
                t_go = max(t_go, min(t_last + grace, t_on + CHORD_GRACE_SPAN * grace, cap))
            if now < t_go:
                return t_go  # no warm-up in follow timing: it competed with the chord's later keys
        self._emit_wake = False
        if swap_here:
            swap_pending(self, now)
        decide_step(self, k, hears=True)
        now = self._now()
        deadline = self._follow_deadline(k, now)
        if deadline is not None and now > deadline:  # the decision itself overran: no late answer
            self.stats.counters.decisions -= 1
            miss_step(self, k, now, emit=True)
            return None
        t_emit = emit_step(self, k, self._token, now, send=True)
        if t_on >= 0:
            self.stats.counters.answered += 1
            self.stats.answer_ns.add(t_emit - t_on)
            self.follow.update()  # the answer is out: fold its offset into the window for the next steps
        return None

    def _beats(self, wake: int) -> int:
        """Send the beats of the steps that opened (on the grid, at T_k, in either timing: a follow step
        may be emitted before or after it); a beat more than a step late is dropped, never sent late.
        Returns the earlier of ``wake`` and the next beat's time."""
        if not self.config.beats:
            return wake
        clock = self.clock
        now = self._now()
        spbeat, spbar = self.grid.steps_per_beat, self.grid.steps_per_bar
        b = self._beat_k
        while clock.opened(b, now):
            if b % spbeat == 0 and not clock.opened(b + 1, now):
                self.sink.beat(b // spbar, (b % spbar) // spbeat)
            b += 1
        self._beat_k = b
        t = clock.due(b + (-b % spbeat))
        if t < wake:
            self._emit_wake = True
            return self._future(t, now)
        return wake

    def _lead_at(self, period_ns: float) -> int:
        """The lead for a step of ``period_ns``: the configured one, but leaving the slack time and the
        warm-up between an emission and the next decision (at least half a step ahead). The lead is sized
        at the start tempo, and a clock that follows a peer (Link up to 999 BPM) can shrink the step under
        it: a 20 ms lead at 600 BPM (25 ms steps) left no slack, and the status froze."""
        period = int(period_ns)
        return min(self._lead_ns, max(period >> 1, period - self._slack_ns - PREFETCH_NS - 1_000_000))

    def _future(self, t: int, now: int) -> int:
        if t > now:
            return t
        return now + (self._ext_poll_ns if self.clock.external else 1)

    # -- events ------------------------------------------------------------------------------------
    def _handle(self, ev: InputEvent | PolicyLoaded) -> None:
        if isinstance(ev, NoteEvent):
            on_note(self, ev)
        elif isinstance(ev, ControlEvent):
            if ev.kind not in _QUIET_CONTROLS:
                self.board.dirty = True
            on_control(self, ev)
        elif isinstance(ev, InputError):
            self._input_error(ev)
        elif isinstance(ev, PolicyLoaded):
            self.board.dirty = True
            on_loaded(self, ev)
