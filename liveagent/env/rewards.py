"""Reward terms for N environments at once: the rule-based terms' state tracker and the learned-term hook.

The rules themselves (each a named function with its musical source, their weights in
:class:`RewardConfig`) live in :mod:`liveagent.env.reward_terms` and are re-exported here.
:class:`RewardTracker` keeps the per-env state the rules need in preallocated ``[N]`` arrays (the agent's
sounding pitch, its last onset pitch and melodic interval, the run of repeated notes, how long it has held
or rested), builds each step's :class:`StepContext` and evaluates every term, without a Python loop over
envs. The environment multiplies each term by its weight and reports each weighted term separately in
``info["reward_terms"]``; the step's reward is their sum plus the learned terms (:data:`LearnedTerm`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import numpy.typing as npt

from liveagent.env.reward_terms import (
    TERMS,
    BoolArray,
    FloatArray,
    IntArray,
    RewardConfig,
    StepContext,
    TermFn,
    consecutive_leaps,
    consonance,
    contrary_motion,
    hidden_perfect,
    in_key,
    independent_onset,
    large_leap,
    leap_resolution,
    long_note,
    offbeat,
    on_beat,
    parallel_imperfect,
    parallel_perfect,
    range_,
    repetition,
    silent_bar,
    stepwise,
    sync,
    vertical_consonance,
    voice_crossing,
    weak_onset,
)
from liveagent.music.features import ObservationBuffers
from liveagent.music.sampling import resolve_holds
from liveagent.music.theory import Key
from liveagent.music.tokens import HOLD, NO_PITCH, ONSET_BASE, VOCAB_SIZE, Grid

__all__ = [
    "TERMS",
    "LearnedFn",
    "LearnedTerm",
    "RewardConfig",
    "RewardTracker",
    "StepContext",
    "TermFn",
    "consecutive_leaps",
    "consonance",
    "contrary_motion",
    "hidden_perfect",
    "in_key",
    "independent_onset",
    "key_mask_of",
    "large_leap",
    "leap_resolution",
    "long_note",
    "offbeat",
    "on_beat",
    "parallel_imperfect",
    "parallel_perfect",
    "range_",
    "repetition",
    "score_lines",
    "silent_bar",
    "stepwise",
    "sync",
    "vertical_consonance",
    "voice_crossing",
    "weak_onset",
]

LearnedFn = Callable[[ObservationBuffers, IntArray], npt.NDArray[np.floating]]
"""A learned reward term: ``fn(obs, actions) -> float[N]``, evaluated on the observation the actions were
chosen from (e.g. ``log p_prior(a|s)`` for the KL leash, a discriminator score, an ensemble mean)."""
LearnedTerm = tuple[float, LearnedFn]
"""``(weight, fn)`` of a learned term, passed to the environments as ``learned_terms={name: (w, fn)}``."""


class RewardTracker:
    """The per-env state of the rules for N envs, in preallocated ``[N]`` arrays, and their evaluation.

    ``step`` takes the agent's tokens and the performer's revealed token at t, returns the resolved
    tokens (HOLD while silent -> REST) and the unweighted terms, and advances the state.
    """

    def __init__(
        self,
        n: int,
        config: RewardConfig | None = None,
        *,
        grid: Grid | None = None,
        pitch_min: int = 0,
        pitch_max: int = 127,
    ) -> None:
        self.n = n
        self.config = config or RewardConfig()
        self.grid = grid or Grid()
        self.pitch_min = pitch_min
        self.pitch_max = pitch_max
        self._weights = {k: np.float32(w) for k, w in self.config.weights().items()}
        self.agent_pitch = np.full(n, NO_PITCH, dtype=np.int64)
        """Agent's sounding pitch after the last step."""
        self.last_onset = np.full(n, NO_PITCH, dtype=np.int64)
        self.last_interval = np.zeros(n, dtype=np.int64)
        self.repeat_pitch = np.full(n, NO_PITCH, dtype=np.int64)
        self.repeat_count = np.zeros(n, dtype=np.int64)
        self.repeat_broken = np.zeros(n, dtype=bool)
        """Holds or rests came between the strikes of the current run (or just before its first strike)."""
        self.repeat_gap = np.zeros(n, dtype=bool)
        """A hold or rest came after the agent's last onset."""
        self.held_steps = np.zeros(n, dtype=np.int64)
        self.silent_steps = np.zeros(n, dtype=np.int64)
        self.perf_pitch = np.full(n, NO_PITCH, dtype=np.int64)
        """Performer's sounding pitch after the last step."""
        self.key_mask = np.ones((n, 12), dtype=bool)
        self.bar_ring = np.zeros((n, self.grid.steps_per_bar), dtype=bool)
        """Agent onsets of the trailing bar, indexed by position in the bar."""

    def reset_rows(
        self,
        rows: IntArray | BoolArray,
        key_mask: npt.ArrayLike | None = None,
        *,
        agent_pitch: npt.ArrayLike | None = None,
        perf_pitch: npt.ArrayLike | None = None,
    ) -> None:
        """Start episodes in ``rows`` (indices or bool mask); ``key_mask``: ``[len(rows), 12]`` or [12].

        ``agent_pitch`` / ``perf_pitch``: what sounds just before the first step (an episode cut from the
        middle of a piece, its history in the window), else silence.
        """
        self.agent_pitch[rows] = NO_PITCH if agent_pitch is None else agent_pitch
        self.bar_ring[rows] = False
        self.last_onset[rows] = NO_PITCH if agent_pitch is None else agent_pitch
        self.last_interval[rows] = 0
        self.repeat_pitch[rows] = NO_PITCH
        self.repeat_count[rows] = 0
        self.repeat_broken[rows] = False
        self.repeat_gap[rows] = False
        self.held_steps[rows] = 0
        self.silent_steps[rows] = 0
        self.perf_pitch[rows] = NO_PITCH if perf_pitch is None else perf_pitch
        self.key_mask[rows] = True if key_mask is None else key_mask

    def resolve(self, actions: IntArray) -> IntArray:
        """HOLD while the agent is silent means REST (the contract)."""
        return resolve_holds(actions, self.agent_pitch != NO_PITCH)

    def step(
        self, actions: npt.ArrayLike, perf_token: npt.ArrayLike, position: npt.ArrayLike
    ) -> tuple[IntArray, dict[str, FloatArray]]:
        """Score one step of all N envs and advance the state: ``(resolved tokens, {term: float32[N]})``.

        ``perf_token`` is the performer's token at t (HOLD continues its sounding pitch, HOLD after silence
        is silence); ``position`` the step inside the bar.
        """
        a = np.asarray(actions, dtype=np.int64)
        if a.shape != (self.n,):
            raise ValueError(f"expected {self.n} actions, got shape {a.shape}")
        if a.size and (a.min() < 0 or a.max() >= VOCAB_SIZE):
            raise ValueError(f"actions must be tokens in 0..{VOCAB_SIZE - 1}")
        a = self.resolve(a)
        pt = np.asarray(perf_token, dtype=np.int64)
        agent_onset = a >= ONSET_BASE
        agent_pitch = np.where(agent_onset, a - ONSET_BASE, np.where(a == HOLD, self.agent_pitch, NO_PITCH))
        perf_onset = pt >= ONSET_BASE
        perf_pitch = np.where(perf_onset, pt - ONSET_BASE, np.where(pt == HOLD, self.perf_pitch, NO_PITCH))
        has_interval = agent_onset & (self.last_onset != NO_PITCH)
        interval = np.where(has_interval, agent_pitch - self.last_onset, 0)
        sounding = agent_pitch != NO_PITCH
        held = np.where(sounding, np.where(agent_onset, 1, self.held_steps + 1), 0)
        silent = np.where(sounding, 0, self.silent_steps + 1)
        pos = np.asarray(position, dtype=np.int64)
        self.bar_ring[np.arange(self.n), pos % self.grid.steps_per_bar] = agent_onset
        ctx = StepContext(
            action=a,
            agent_onset=agent_onset,
            agent_pitch=agent_pitch,
            agent_prev=self.agent_pitch,
            perf_onset=perf_onset,
            perf_pitch=perf_pitch,
            perf_prev=self.perf_pitch,
            position=pos,
            interval=interval,
            has_interval=has_interval,
            prev_interval=self.last_interval,
            repeat_pitch=self.repeat_pitch,
            repeat_count=self.repeat_count,
            repeat_broken=np.where(
                agent_onset & (agent_pitch == self.repeat_pitch), self.repeat_broken, False
            )
            | self.repeat_gap,
            held_steps=held,
            silent_steps=silent,
            key_mask=self.key_mask,
            bar_onsets=self.bar_ring.sum(axis=1),
            grid=self.grid,
            pitch_min=self.pitch_min,
            pitch_max=self.pitch_max,
        )
        terms = {name: fn(ctx, self.config) for name, fn in TERMS.items()}
        # Advance the state.
        same = agent_onset & (agent_pitch == self.repeat_pitch)
        self.repeat_count[:] = np.where(
            agent_onset, np.where(same, self.repeat_count + 1, 1), self.repeat_count
        )
        # RL Tuner scans back from the new note over holds, rests and strikes of the same pitch, so the
        # holds/rests just before a run's first strike count as "breaks" too.
        self.repeat_broken[:] = np.where(
            agent_onset, np.where(same, self.repeat_broken, False) | self.repeat_gap, self.repeat_broken
        )
        self.repeat_gap[:] = ~agent_onset
        self.repeat_pitch[:] = np.where(agent_onset, agent_pitch, self.repeat_pitch)
        self.last_interval[:] = np.where(has_interval, interval, self.last_interval)
        self.last_onset[:] = np.where(agent_onset, agent_pitch, self.last_onset)
        self.agent_pitch[:] = agent_pitch
        self.perf_pitch[:] = perf_pitch
        self.held_steps[:] = held
        self.silent_steps[:] = silent
        return a, terms

    def weighted(self, terms: Mapping[str, FloatArray]) -> dict[str, FloatArray]:
        """Each term times its weight (what ``info["reward_terms"]`` reports)."""
        return {
            name: (value * np.float32(self._weights[name])).astype(np.float32)
            for name, value in terms.items()
        }


def key_mask_of(key: Key | None) -> BoolArray:
    """[12] in-key pitch classes (all True when the key is unknown)."""
    return np.ones(12, dtype=bool) if key is None else key.mask()


def score_lines(
    performer: npt.ArrayLike,
    agent: npt.ArrayLike,
    *,
    key: Key | None = None,
    config: RewardConfig | None = None,
    grid: Grid | None = None,
    pitch_min: int = 0,
    pitch_max: int = 127,
) -> dict[str, FloatArray]:
    """Unweighted terms of whole lines, ``{name: float32[..., T]}`` for ``[T]`` or ``[B, T]`` token lines.

    Runs :class:`RewardTracker` step by step over the lines as the environment would (the agent's line as
    its actions). Handy for tests, analyses and scoring a real accompaniment.
    """
    perf = np.atleast_2d(np.asarray(performer, dtype=np.int64))
    ag = np.atleast_2d(np.asarray(agent, dtype=np.int64))
    if perf.shape != ag.shape:
        raise ValueError(f"performer {perf.shape} and agent {ag.shape} lines differ in shape")
    b, t_len = perf.shape
    grid = grid or Grid()
    tracker = RewardTracker(b, config, grid=grid, pitch_min=pitch_min, pitch_max=pitch_max)
    tracker.reset_rows(np.arange(b), key_mask_of(key))
    out = {name: np.zeros((b, t_len), dtype=np.float32) for name in TERMS}
    for t in range(t_len):
        _, terms = tracker.step(ag[:, t], perf[:, t], np.full(b, t % grid.steps_per_bar))
        for name, value in terms.items():
            out[name][:, t] = value
    if np.ndim(performer) == 1:
        return {name: v[0] for name, v in out.items()}
    return out
