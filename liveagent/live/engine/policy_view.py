"""The current policy and its view of the session: masks, observation buffers, the streaming windows.

The engine owns one :class:`PolicyView`. It keeps the session's token history (performer and agent, by
absolute step) so that a policy swapped in mid-session, with another window or mode, gets its windows
rebuilt from the last bars at once, bar-aligned so that ``position`` stays right.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterator

import numpy as np
import numpy.typing as npt

from liveagent.live.engine.config import EngineConfig, PolicyLoaded
from liveagent.live.engine.policy import Policy, PolicyError
from liveagent.music.band import BandBuffers, BandSpec, BandStream
from liveagent.music.features import ObservationBuffers, StreamingObservation
from liveagent.music.sampling import pitch_class_mask, range_mask
from liveagent.music.tokens import REST, Grid

log = logging.getLogger(__name__)

HISTORY = 4096
"""Steps of token history kept (a policy's window may be at most half of it)."""

PREFETCH_NS = 2_000_000
"""The engine wakes this long before a decision's time to warm the policy (:meth:`PolicyView.prefetch_until`):
after the idle between steps a cold decision took ~3x the tight loop's (benchmarks/decision_in_serve.py)."""

PREFETCH_CALLS = 4
"""At most this many policy runs in that prefetch (results discarded; 0 = off), each after the first only if
it should end before the decision: the first call after an idle is the slow one (~0.9 ms), the next ones
get faster, and the caches cool again within a ms, so the runs fill the time up to the decision. Measured
side by side in a real serve at 240 BPM (loaded machine; benchmarks/decision_in_serve.py): decision p50
1.1 ms off, 0.66-0.76 ms with 2 runs, 0.60-0.62 ms filled (p99 1.5-2.0 ms off, 1.1-1.4 ms on). Costs
~1.5-2 ms of CPU a step (2-3 % of a core at 240 BPM in 16ths)."""

_running = [0]
"""Engine loops running in this process (:func:`engine_running`, under ``_running_lock``)."""
_running_lock = threading.Lock()


@contextlib.contextmanager
def engine_running() -> Iterator[None]:
    """Count an engine loop as running in this process for the block (the prefetch is for a lone engine)."""
    with _running_lock:
        _running[0] += 1
    try:
        yield
    finally:
        with _running_lock:
            _running[0] -= 1


class PolicyView:
    """Policy + mask + preallocated observation + :class:`StreamingObservation` + token history."""

    def __init__(self, policy: Policy, grid: Grid, config: EngineConfig) -> None:
        self.grid = grid
        self.config = config
        self._hist_perf = np.zeros(HISTORY, dtype=np.int64)
        self._hist_agent = np.zeros(HISTORY, dtype=np.int64)
        self._hist_band = np.zeros((0, HISTORY), dtype=np.int64)
        """A band policy's voices' tokens by absolute step ([V, HISTORY]; empty for a solo policy)."""
        self.base = 0
        """Absolute step of the stream's first step (a bar line, so position = local step mod bar)."""
        self._prefetched = -(1 << 62)
        """The step whose decision the policy was last warmed for (:meth:`prefetch_until`)."""
        self.warm_after: Callable[[], object] | None = None
        """Run once after a prefetch's policy runs: the engine warms the rest of its decision path there
        (its sampler's greedy pick, on a scratch row; nothing the decision reads changes)."""
        self._install(policy)

    def mask_for(self, policy: Policy) -> npt.NDArray[np.bool_]:
        """The decoding mask: the config's range (default: the policy's) and scale; PolicyError if empty."""
        cfg = self.config
        m = policy.meta
        lo = m.pitch_min if cfg.pitch_min is None else cfg.pitch_min
        hi = m.pitch_max if cfg.pitch_max is None else cfg.pitch_max
        if lo > hi:
            raise PolicyError(
                f"policy {policy.name}: pitch range {lo}..{hi} is empty (config and policy disagree)"
            )
        mask = range_mask(lo, hi)
        if cfg.scale is not None:
            mask &= pitch_class_mask(cfg.scale)
        return mask

    def band_masks_for(self, policy: Policy) -> list[npt.NDArray[np.bool_]]:
        """Each band voice's mask (its range within the config's range and scale); PolicyError if a voice
        has nothing left to play. Checked before a swap is accepted, so a bad file never reaches the
        engine's bar line."""
        band = policy.meta.band
        if band is None:
            return []
        mask = self.mask_for(policy)
        out = []
        for voice, (lo, hi) in zip(band.voices, band.ranges, strict=True):
            m = mask & range_mask(lo, hi)
            if not m[2:].any():
                raise PolicyError(
                    f"policy {policy.name}: the {voice}'s range {lo}..{hi} is outside the engine's range"
                )
            out.append(m)
        return out

    def _install(self, policy: Policy) -> None:
        m = policy.meta
        band_masks = self.band_masks_for(policy)  # first: a refused policy leaves the view as it was
        self.mask: npt.NDArray[np.bool_] = self.mask_for(policy)
        self.policy = policy
        self.band: BandSpec | None = m.band
        """The band this policy plays (None: a solo policy)."""
        self.band_masks: list[npt.NDArray[np.bool_]] = []
        """Each band voice's decoding mask: its trained range, narrowed by the config's range and scale."""
        self.stream: StreamingObservation | BandStream
        if m.band is None:
            self.obs: ObservationBuffers = ObservationBuffers.allocate(1, m.window)
            self.stream = StreamingObservation(
                window=m.window, steps_per_bar=self.grid.steps_per_bar, mode=m.mode
            )
            return
        self.band_obs = BandBuffers.allocate_band(1, m.window, m.band.size)
        self.obs = self.band_obs
        self.band_stream = BandStream(
            m.band, window=m.window, steps_per_bar=self.grid.steps_per_bar, mode=m.mode
        )
        self.stream = self.band_stream
        self.band_masks = band_masks
        if self._hist_band.shape[0] != m.band.size:
            self._hist_band = np.zeros((m.band.size, HISTORY), dtype=np.int64)

    def restart(self, start: int) -> None:
        """A new run from absolute step ``start``: history cleared, stream begun at the bar line before it."""
        spbar = self.grid.steps_per_bar
        self.base = (start // spbar) * spbar
        self.stream.reset()
        for _ in range(self.base, start):
            self.stream.push_performer(REST)
            self._push_rest()
        self._hist_perf.fill(REST)
        self._hist_agent.fill(REST)
        self._hist_band.fill(REST)

    def _push_rest(self) -> None:
        if isinstance(self.stream, BandStream):
            self.stream.push_all(REST)
        else:
            self.stream.push_agent(REST)

    def push_performer(self, step: int, token: int) -> None:
        self.stream.push_performer(token)
        self._hist_perf[step % HISTORY] = token

    def amend_performer(self, step: int, token: int) -> None:
        """Rewrite the performer's token of an already pushed ``step`` (a late onset folded into its own
        step, follow timing): in the history and, while it is in the policy's window, in the stream."""
        self._hist_perf[step % HISTORY] = token
        local = step - self.base
        if 0 <= local < self.stream.performer_steps:
            self.stream.amend_performer(local, token)

    def performer_token(self, step: int) -> int:
        """The performer's token of ``step`` in the history (the last ``HISTORY`` steps)."""
        return int(self._hist_perf[step % HISTORY])

    def agent_token(self, step: int) -> int:
        """The agent's token of ``step`` in the history (the last ``HISTORY`` steps)."""
        return int(self._hist_agent[step % HISTORY])

    def push_agent(self, step: int, token: int) -> None:
        assert isinstance(self.stream, StreamingObservation)
        self.stream.push_agent(token)
        self._hist_agent[step % HISTORY] = token

    def push_band(self, step: int, tokens: npt.NDArray[np.int64]) -> None:
        """Step ``step``'s token of every band voice (top-down)."""
        self.band_stream.push_agents(tokens)
        self._hist_band[:, step % HISTORY] = tokens
        self._hist_agent[step % HISTORY] = tokens[-1]  # the lowest voice, for what reads one agent line

    def band_logits(self, k: int, voice: int, pending: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        """Voice ``voice``'s logits for step ``k`` (``pending``: the step's tokens of the voices decided)."""
        self.band_stream.fill(self.band_obs, k - self.base, voice, pending)
        return self.policy(self.band_obs)

    def logits(self, k: int) -> npt.NDArray[np.float32]:
        """Fill the observation for step ``k`` in place and run the policy."""
        stream = self.stream
        assert isinstance(stream, StreamingObservation), "a band is decided voice by voice (band_logits)"
        stream.fill(self.obs, k - self.base)
        return self.policy(self.obs)

    def prefetch_until(
        self, k: int, t: int, now: int, clock: Callable[[], int], busy: Callable[[], bool] | None = None
    ) -> int:
        """Step k is decided at ``t`` (unless an event comes first): the engine wakes :data:`PREFETCH_NS`
        before it, warms the policy once per step, then waits for ``t``. Returns the next wake-up. What the
        decision hears stays the same (tokens never change); it may start one short run late (measured:
        prefetch p50 1.8 ms, p99 2.2 ms, so <= 0.2 ms late in 1 % of the steps). Not while other engines run
        in this process (``liveagent bench`` agents): there CPU is the limit (it multiplies policy runs)."""
        if PREFETCH_CALLS and _running[0] <= 1 and self._prefetched != k:
            if now < t - PREFETCH_NS:
                return t - PREFETCH_NS
            self._prefetched = k
            self.prefetch(PREFETCH_CALLS, t, clock, busy)
        return t

    def prefetch(
        self,
        calls: int,
        until: int | None = None,
        clock: Callable[[], int] | None = None,
        busy: Callable[[], bool] | None = None,
    ) -> int:
        """Warm the caches for the next decision: up to ``calls`` runs of the policy on its bound buffers,
        results discarded (:meth:`OnnxPolicy.warm`; a policy without ``warm`` is left alone); with ``until``
        and ``clock``, a run after the first only if it should end by ``until`` (a run after an idle takes
        about half the time of the one before: measured 0.9, 0.42, 0.30, 0.28 ms).
        Tokens never change: the decision fills its observation and runs the policy afresh. Returns the
        runs done. ``busy``: stop before a run once it returns True (an event waits in the engine's queue: a
        note-on is handled at once, not kept waiting for the warm-up)."""
        warm = getattr(self.policy, "warm", None)
        if warm is None:
            return 0
        done = 0
        t0 = clock() if clock is not None else 0
        while done < calls:
            if busy is not None and busy():
                break
            warm()
            done += 1
            if clock is not None and until is not None:
                t1 = clock()
                if t1 + (t1 - t0) // 2 > until:  # the next run (about half as long) would end after it
                    break
                t0 = t1
        if done and self.warm_after is not None:
            self.warm_after()
        return done

    def swap(self, policy: Policy, next_step: int | None, performer_next: int) -> None:
        """Install ``policy``; mid-session (``next_step`` given) rebuild its windows from the history."""
        self._install(policy)
        if next_step is None:
            return
        spbar = self.grid.steps_per_bar
        w = policy.meta.window
        start = max(0, ((performer_next - w - 1) // spbar) * spbar)
        start = min(start, (next_step // spbar) * spbar)
        self.base = start
        for s in range(start, next_step):
            if isinstance(self.stream, BandStream):
                self.stream.push_agents(self._hist_band[:, s % HISTORY])
            else:
                self.stream.push_agent(int(self._hist_agent[s % HISTORY]))
        for s in range(start, performer_next):
            self.stream.push_performer(int(self._hist_perf[s % HISTORY]))


def observation_for(policy: Policy) -> ObservationBuffers:
    """Buffers ``policy`` can be called with (a band policy's carry ``others`` and ``voice``)."""
    band = policy.meta.band
    if band is None:
        return ObservationBuffers.allocate(1, policy.meta.window)
    return BandBuffers.allocate_band(1, policy.meta.window, band.size)


def check_grid(policy: Policy, grid: Grid) -> None:
    """:class:`PolicyError` unless ``policy`` plays on ``grid`` (a swap cannot change the grid)."""
    m = policy.meta
    if (m.steps_per_beat, m.beats_per_bar) != (grid.steps_per_beat, grid.beats_per_bar):
        raise PolicyError(
            f"policy {policy.name} plays {m.steps_per_beat} steps/beat x {m.beats_per_bar} beats/bar, "
            f"the clock's grid is {grid.steps_per_beat} x {grid.beats_per_bar}"
        )


def load_for_swap(
    loader: Callable[[str], Policy],
    name: str,
    reply_to: tuple[str, int] | None,
    put: Callable[[PolicyLoaded], None],
    now: Callable[[], int],
) -> None:
    """Load (and warm up) a policy off the engine thread; hand the result back as a :class:`PolicyLoaded`."""
    try:
        policy = loader(name)
        obs = observation_for(policy)
        for _ in range(3):  # onnxruntime's first runs are slow: pay them here, not on stage
            policy(obs)
        put(PolicyLoaded(now(), policy, name, "", reply_to, from_loader=True))
    except Exception as e:  # any failure leaves the current policy playing; the message says why
        err = str(e) if isinstance(e, PolicyError) else f"{type(e).__name__}: {e}"
        put(PolicyLoaded(now(), None, name, err, reply_to, from_loader=True))


def normal_scheduling() -> bool:
    """Drop the calling thread from a real-time policy (SCHED_FIFO/RR) to SCHED_OTHER; True if it did.

    A thread inherits its creator's scheduling policy: a loader started by the engine thread under
    SCHED_FIFO would load (file I/O, graph optimization: tens of ms of CPU) at real-time priority and
    compete with the engine on a small machine. Lowering one's own priority needs no privilege.
    """
    if not hasattr(os, "sched_getscheduler"):
        return False
    try:
        if os.sched_getscheduler(0) not in (os.SCHED_FIFO, os.SCHED_RR):
            return False
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        return True
    except OSError as e:
        log.debug("could not drop the loader thread to normal scheduling: %s", e)
        return False


def loader_thread_main(
    loader: Callable[[str], Policy],
    name: str,
    reply_to: tuple[str, int] | None,
    put: Callable[[PolicyLoaded], None],
    now: Callable[[], int],
) -> None:
    """The policy-loader thread's body: normal scheduling first (by construction, whatever the loader),
    then :func:`load_for_swap`."""
    normal_scheduling()
    load_for_swap(loader, name, reply_to, put, now)
