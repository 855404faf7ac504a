"""The engine's state: everything one :class:`~liveagent.live.engine.loop.Engine` owns, built in one place.

Only the engine thread touches it. The loop (:mod:`~liveagent.live.engine.loop`), the control events
(:mod:`~liveagent.live.engine.control`) and the slack-time work (:mod:`~liveagent.live.engine.status`) are
functions or methods of this state; they import it, and it imports none of them, so the three modules
around it form no import circle.
"""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Callable

import numpy as np

from liveagent.live.engine.band import voice_trackers
from liveagent.live.engine.clocks import Clock, InternalClock
from liveagent.live.engine.config import EngineConfig, PolicyLoaded, RecorderLike, follow_window
from liveagent.live.engine.errors import ErrorReporter
from liveagent.live.engine.lead import PerformerLead
from liveagent.live.engine.notes import NoteTracker
from liveagent.live.engine.performer import PerformerLine
from liveagent.live.engine.policy import Policy, load_policy
from liveagent.live.engine.policy_view import PolicyView, check_grid
from liveagent.live.engine.runtime_gc import RealtimeGC
from liveagent.live.engine.stats import Stats, StatusBoard
from liveagent.live.engine.style import StyleSteer
from liveagent.live.events import Control, InputError, InputEvent, OutputSink
from liveagent.music.sampling import Sampler, SamplerConfig
from liveagent.music.tokens import HOLD, ONSET_BASE, REST, VOCAB_SIZE

__all__ = ["DECIDE", "EMIT", "NO_STEP", "EngineState"]

DECIDE, EMIT = 0, 1
"""The phase of the next step: to decide, or decided and waiting for its emission (anticipate)."""
NO_STEP = -(1 << 62)


class EngineState:
    """The state of one engine, and the small helpers the loop, the controls and the status share."""

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
        self.config = cfg = config or EngineConfig()
        self.sink = sink
        self.clock = clock
        self._now = now or clock.now
        self.recorder = recorder
        self.policy_loader = policy_loader
        self.grid = clock.grid
        check_grid(policy, self.grid)
        self.stats = Stats()
        self.tracker = NoteTracker(sink)
        self.band_trackers = voice_trackers(sink, policy.meta.band)
        """A band policy's voices, one tracker each (top-down; empty for a solo policy)."""
        self.trackers = self.band_trackers or [self.tracker]
        """Every tracker that may sound: what stop, mute, panic, swap and exit release."""
        self._band_tokens = np.zeros(max(1, len(self.band_trackers)), dtype=np.int64)
        """The current step's token of every band voice (decided in the band's order, then emitted)."""
        self._band_offs: list[list[int]] = [[] for _ in self.band_trackers]
        """The current step's note-offs of every band voice (sent with the step, recorded after it)."""
        self._queue: queue.SimpleQueue[InputEvent | PolicyLoaded] = queue.SimpleQueue()
        self._sampler = Sampler(SamplerConfig(cfg.temperature, cfg.top_p, cfg.seed))
        self._lead_ns = int(cfg.lead_ms * 1e6)
        self._tol_ns = int(cfg.miss_tolerance_ms * 1e6)
        self._spin_ns = int(cfg.spin_ms * 1e6)
        self._slack_ns = int(cfg.slack_ms * 1e6)
        self._idle_ns = int(cfg.idle_wait_ms * 1e6)
        self._ext_poll_ns = int(cfg.external_poll_ms * 1e6)
        self.performer = PerformerLine(max(1, round(cfg.performer_max_hold_bars * self.grid.steps_per_bar)))
        self.follow = follow_window(cfg)
        """Follow timing's window (fixed or adaptive); updated in slack time."""
        self._early_ns = self.follow.max_ns
        """Follow timing: an early onset for step k is answered no earlier than T_k - this."""
        voices = policy.meta.band.size if policy.meta.band is not None else 1
        self._budget_ns = int(cfg.follow_budget_ms * 1e6) * voices
        """Follow timing's decision budget: ``follow_budget_ms`` per voice (a band decides its voices one
        after another inside the same step)."""
        self._chord_ns = round(cfg.follow_chord_ms * 1e6)
        """Follow timing: the chord grace, how long after a step's first onset more note-ons are awaited."""
        self._beat_k = 0
        """The next step whose beat (if it starts one) goes out when the step opens."""
        self._offset_step = NO_STEP
        """The step of the last onset offset measured (one per step: a chord's first note)."""
        self._run_start = 0
        spbar = self.grid.steps_per_bar
        self._gate_steps = spbar if cfg.waits_for_performer else sys.maxsize
        """The silence gate: a step is REST once the performer has been silent this long (a bar; never
        when ``waits_for_performer`` is off)."""
        self._silent = spbar
        """The performer's consecutive REST steps as finalized (the heard ones: up to k-1 when step k is
        decided in anticipate timing, up to k in follow timing); a bar at every transport start, so a
        session opens closed; 0 again on an onset, held key or an amended late onset."""
        self._vel_ema = cfg.velocity_default / max(cfg.velocity_scale, 1e-6)
        # Transport and schedule.
        self._epoch = -1
        """The clock epoch last seen (-1: sync on the first pass, even if the clock started first)."""
        self._k: int | None = None
        """Next step to decide/emit, None while stopped."""
        self._phase = DECIDE
        self._token = REST
        self._last_step = -1
        self.muted = False
        self._armed: Control | None = None
        self._lead = (
            PerformerLead(
                clock, self.grid, phase_gain=cfg.follow_tempo_phase_gain, tempo_gain=cfg.follow_tempo_gain
            )
            if cfg.follow_tempo and isinstance(clock, InternalClock)
            else None
        )
        """The performer leads the grid (``follow_tempo``), else None."""
        """``start_on_note``: the START or CONTINUE waiting for the performer's first note-on (else None)."""
        self._shutdown = False
        self._stop_now = threading.Event()
        """Set by :meth:`Engine.stop` (any thread): the loop ends at its next pass, ahead of whatever is
        queued (a SHUTDOWN event behind a backlog of 100,000 controls took seconds to reach)."""
        self._pending_policy: Policy | None = None
        self._loading = False
        """A policy load is in flight (loads run one at a time)."""
        self._queued_load: tuple[str, tuple[str, int] | None] | None = None
        """The newest ``/policy`` request that arrived while a load was in flight."""
        self._slack_work = False
        self._bar_work = False
        self._gc: RealtimeGC | None = None
        self.errors = ErrorReporter(sink, cfg.error_report_interval_s, self._now)
        self._thread: threading.Thread | None = None
        self._owner: threading.Thread | None = None
        """The thread running the loop (None when none does): the only one that touches the state."""
        self._recorded_bpm = 0.0
        self._emit_wake = False
        """The next wake-up is an emission deadline (spin its last stretch)."""
        self.view = PolicyView(policy, self.grid, cfg)
        self.steer = StyleSteer(policy)
        """The style asked for (contract-1.2 policies) and its glide over a bar."""
        self._tok = np.zeros(1, dtype=np.int64)
        """The sampler's output (preallocated: the decision path allocates no array)."""
        self._warm_row = np.zeros((1, VOCAB_SIZE), dtype=np.float32)
        self._warm_tok = np.zeros(1, dtype=np.int64)
        self.view.warm_after = self._warm_sampler
        self.board = StatusBoard(int(cfg.status_interval_ms * 1e6))

    def _warm_sampler(self) -> None:
        """The decision's greedy pick on a scratch row, result discarded (after the prefetch's policy runs):
        after the idle between steps numpy's code for it is out of the caches too (measured in a real
        ``serve``: the pick took ~75 us of a ~0.55 ms decision cold). Greedy only: a temperature draw
        would consume the sampler's random stream."""
        if self._sampler.config.temperature == 0.0:
            self._sampler.sample(self._warm_row, self.view.mask, out=self._warm_tok)

    @property
    def policy(self) -> Policy:
        return self.view.policy

    @property
    def emission_pending(self) -> bool:
        """A decision waits for its emission (anticipate, between T_k - lead and T_k)."""
        return self._k is not None and self._phase == EMIT

    @property
    def waiting(self) -> bool:
        """The silence gate is closed: the performer has not played yet, or has been silent for a bar (as
        of the performer steps finalized so far), so the agent rests."""
        return self._silent >= self._gate_steps

    def _velocity(self) -> int:
        cfg = self.config
        v = round(self._vel_ema * cfg.velocity_scale) if cfg.velocity_follow > 0 else cfg.velocity_default
        return min(cfg.velocity_max, max(cfg.velocity_min, v))

    def _record_offs(self, pitches: list[int], t_ns: int | None = None, voice: int | None = None) -> None:
        if self.recorder is not None and pitches:
            t = self._now() if t_ns is None else t_ns
            for p in pitches:
                if voice is None:
                    self.recorder.agent_note(t, p, 0)
                else:
                    self.recorder.agent_note(t, p, 0, voice=voice)

    def release_all(self, t_ns: int | None = None) -> None:
        """Note-off everything every voice sounds (recorded)."""
        if not self.band_trackers:
            self._record_offs(self.tracker.release_all(), t_ns)
            return
        for v, tr in enumerate(self.band_trackers):
            self._record_offs(tr.release_all(), t_ns, voice=v)

    def _playable(self, tok: int, tr: NoteTracker) -> int:
        """What ``tok`` plays on ``tr``: REST when muted or holding nothing; a HOLD past
        ``max_note_steps`` re-strikes its note (a note-off reaches the synth, and a voice holding under a
        long melody note stays, where a cut left it silent for bars)."""
        if self.muted:
            return REST
        if tok == HOLD:
            if not tr.sounding or tr.last_pitch < 0:
                return REST
            if tr.age() >= self.config.max_note_steps:
                return ONSET_BASE + tr.last_pitch
        return tok

    def _advance(self, k: int, t_emit: int) -> int:
        """Step k is out: on to step k+1 (returns the emission time)."""
        self.stats.counters.steps += 1
        self._last_step = k
        self._k = k + 1
        self._phase = DECIDE
        self._slack_work = True
        if k % self.grid.steps_per_bar == 0:
            self._bar_work = True
        if self._lead is not None:
            self._lead.after_step(k)
        return t_emit

    def sounding_pitches(self) -> list[int]:
        """Every pitch sounding now, all voices together."""
        return sorted({p for tr in self.trackers for p in tr.pitches()})

    def _input_error(self, ev: InputError) -> None:
        c = self.stats
        c.counters.input_errors += 1
        c.input_errors_by_kind[ev.source] += 1
        self._error(f"bad input ({ev.source}): {ev.message}", ev.reply_to)

    def _error(self, message: str, reply_to: tuple[str, int] | None) -> None:
        """Report through ``sink.error`` at most once per interval; the rest are counted and summarized."""
        self.errors.error(message, reply_to)

    def _build_status(self) -> dict[str, object]:
        """The status, built from the state (the engine defines it with
        :func:`~liveagent.live.engine.status.build_status`, which imports this module)."""
        raise NotImplementedError
