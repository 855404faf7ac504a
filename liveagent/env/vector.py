"""``BatchedAccompanimentEnv``: N accompaniment episodes stepped in lockstep with numpy, for the trainers.

The same task as :class:`liveagent.env.accompaniment.AccompanimentEnv` (which is this env with N = 1 and no
autoreset), without a Python loop over envs in ``step``::

    env = BatchedAccompanimentEnv(pieces, num_envs=64, config=EnvConfig(), learned_terms=None)
    obs, info = env.reset(seed=0)             # obs: ObservationBuffers ([N, W] performer/agent, [N] position)
    logits = policy(obs)                       # float32 [N, 130]
    actions = Sampler().sample(logits, info["action_mask"])
    obs, rewards, terminated, truncated, info = env.step(actions)   # int64[N] -> float32[N], bool[N], bool[N]

``step`` info (arrays over the N envs):

- ``reward_terms``: name -> float32[N], each term already weighted; they sum to ``rewards``. Rule-based
  names are :data:`liveagent.env.rewards.TERMS`; learned terms appear under their own names.
- ``action_mask``: bool[N, 130] (REST, HOLD and onsets in ``pitch_min..pitch_max``); the same array each
  step, do not modify it.
- ``done``: bool[N], ``terminated | truncated``. Terminated = the piece ended; truncated = a phrase
  (``phrase_steps``) was cut before the piece's end (bootstrap from ``final_obs``).
- ``final_obs``: ObservationBuffers whose rows of finished envs hold the observation after their last step
  (other rows equal ``obs``), or None when no env finished.
- ``episode_return`` float32[N], ``episode_length`` int64[N], ``episode_reward_terms`` name -> float32[N]:
  totals of the episodes that just finished (0 in other rows; shared zero arrays when none finished).
- ``piece`` int64[N] (index into ``env.pieces``), ``transpose`` int64[N], ``start`` int64[N] (first step
  of the episode in its piece), ``t`` int64[N] (steps played): the episodes in progress after autoreset (a
  finished env starts a new random piece in the same ``step``; its ``obs`` row is the new episode's first
  observation).

Learned reward terms (``learned_terms={name: (weight, fn)}``, ``fn(obs, actions) -> float[N]``) are called
with the observation the actions were chosen from, before the step: ``log p_prior(a|s)`` for a KL leash, a
discriminator's score, an ensemble's mean. ``env.learned_terms`` is a plain dict the trainer may update.

Returned observations are fresh copies unless ``copy_obs=False`` (then they are the env's own buffers,
overwritten by the next ``step``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from gymnasium import spaces

from liveagent.env.bank import Episodes, PieceBank
from liveagent.env.config import EnvConfig, default_pieces
from liveagent.env.rewards import TERMS, LearnedTerm, RewardTracker
from liveagent.music.features import (
    ObservationBuffers,
    build_observation,
    hears_current_step,
    hide_current_onsets,
)
from liveagent.music.piece import Piece
from liveagent.music.tokens import HOLD, NO_PITCH, ONSET_BASE, REST, sounding_pitches

log = logging.getLogger(__name__)

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]


def clone_obs(obs: ObservationBuffers) -> ObservationBuffers:
    """A copy of ``obs`` in fresh arrays."""
    return ObservationBuffers(obs.performer.copy(), obs.agent.copy(), obs.position.copy())


class BatchedAccompanimentEnv:
    """N accompaniment episodes in lockstep (see the module docstring for the API)."""

    def __init__(
        self,
        pieces: Sequence[Piece] | None = None,
        num_envs: int = 8,
        config: EnvConfig | None = None,
        *,
        learned_terms: Mapping[str, LearnedTerm] | None = None,
        autoreset: bool = True,
        copy_obs: bool = True,
        seed: int | None = None,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be positive, got {num_envs}")
        self.config = config or EnvConfig()
        cfg = self.config
        self.pieces: list[Piece] = list(pieces) if pieces is not None else default_pieces(cfg)
        self.num_envs = num_envs
        self.autoreset = autoreset
        self.copy_obs = copy_obs
        self.learned_terms: dict[str, LearnedTerm] = dict(learned_terms or {})
        clash = set(self.learned_terms) & set(TERMS)
        if clash:
            raise ValueError(f"learned term names clash with rule terms: {sorted(clash)}")
        self.bank = PieceBank(
            self.pieces,
            grid=cfg.grid,
            pitch_min=cfg.pitch_min,
            pitch_max=cfg.pitch_max,
            transpose=cfg.transpose,
            phrase_steps=cfg.phrase_steps,
        )
        self.single_observation_space = cfg.observation_space()
        self.single_action_space = spaces.Discrete(130)
        self.np_random = np.random.default_rng(seed)
        self._hist = cfg.history_steps
        """Columns of real history before each episode's first step (``EnvConfig.phrase_history``)."""
        self._hide_late = cfg.late_onset_prob > 0.0 and hears_current_step(cfg.mode)
        self.late_hidden = 0
        """Performer onsets hidden from the agent so far (``EnvConfig.late_onset_prob``)."""
        n, t_max = num_envs, self.bank.max_length + self._hist
        self._rows = np.arange(n)
        self._perf = np.full((n, t_max), REST, dtype=np.int64)
        self._acc = np.full((n, t_max), REST, dtype=np.int64)
        self._agent = np.full((n, t_max), REST, dtype=np.int64)
        self._t = np.zeros(n, dtype=np.int64)
        self._len = np.ones(n, dtype=np.int64)
        self._ends_piece = np.ones(n, dtype=bool)
        self._piece = np.zeros(n, dtype=np.int64)
        self._shift = np.zeros(n, dtype=np.int64)
        self._ep_start = np.zeros(n, dtype=np.int64)
        self._change_at = np.full(n, -1, dtype=np.int64)
        """Column where the performer jumps key (``EnvConfig.key_change_prob``), -1 for none."""
        self._change_by = np.zeros(n, dtype=np.int64)
        self._ep_return = np.zeros(n, dtype=np.float32)
        self._weights = np.array(list(cfg.reward.weights().values()), dtype=np.float32)[:, None]
        self._ep_rule = np.zeros((len(TERMS), n), dtype=np.float32)
        """Per-episode sums of the weighted rule terms, [K, N] in TERMS order."""
        self._ep_learned: dict[str, FloatArray] = {}
        """Per-episode sums of the learned terms (created when a term first appears)."""
        self._obs = ObservationBuffers.allocate(n, cfg.window)
        self._tracker = RewardTracker(
            n, cfg.reward, grid=cfg.grid, pitch_min=cfg.pitch_min, pitch_max=cfg.pitch_max
        )
        self.action_mask = np.broadcast_to(cfg.action_mask(), (n, 130)).copy()
        self._started = False
        self._zeros_f = np.zeros(n, dtype=np.float32)
        self._zeros_i = np.zeros(n, dtype=np.int64)

    # -- episodes ---------------------------------------------------------------------------------------

    def _start(self, rows: IntArray, ep: Episodes) -> None:
        """Load episodes ``ep`` into ``rows`` and build their first observations."""
        k, h = rows.size, self._hist
        perf = np.empty((k, self._perf.shape[1]), dtype=np.int64)
        acc = np.empty_like(perf)
        self.bank.load(ep, perf, acc, history=h)
        self._change_at[rows] = -1
        if self.config.key_change_prob > 0.0:
            self._key_changes(rows, ep, perf, acc)
        self._perf[rows] = perf
        self._acc[rows] = acc
        agent = np.full_like(acc, REST)
        agent[:, :h] = acc[:, :h]  # the real accompaniment is the agent's past before the phrase
        self._agent[rows] = agent
        self._t[rows] = h
        self._len[rows] = h + ep.length
        self._ends_piece[rows] = ep.ends_piece
        self._piece[rows] = ep.piece
        self._shift[rows] = ep.shift
        self._ep_start[rows] = ep.start
        before_agent = before_perf = None
        if h:
            before_agent = sounding_pitches(acc[:, :h])[:, -1]
            before_perf = sounding_pitches(perf[:, :h])[:, -1]
        self._tracker.reset_rows(
            rows, self.bank.key_masks_for(ep), agent_pitch=before_agent, perf_pitch=before_perf
        )
        self._ep_return[rows] = 0.0
        self._ep_rule[:, rows] = 0.0
        for v in self._ep_learned.values():
            v[rows] = 0.0
        self._build_obs(rows)

    def _key_changes(self, rows: IntArray, ep: Episodes, perf: IntArray, acc: IntArray) -> None:
        """Move the performer (and the reference part) of some new episodes to a new key from a bar line."""
        rng, spb, h = self.np_random, self.config.steps_per_bar, self._hist
        for i in np.flatnonzero(rng.random(rows.size) < self.config.key_change_prob):
            bars = int(ep.length[i]) // spb
            if bars < 2:
                continue
            c = h + spb * int(rng.integers(1, bars))
            d = int(rng.choice([-6, -5, -4, -3, -2, -1, 1, 2, 3, 4, 5, 6]))
            line = perf[i]
            notes = line[c:][line[c:] >= ONSET_BASE] - ONSET_BASE
            if notes.size and (notes.max() + d > 127 or notes.min() + d < 0):
                d = -d
            sounding = sounding_pitches(line)[c]
            for arr in (perf[i], acc[i]):
                tail = arr[c:]
                tail[tail >= ONSET_BASE] += d
            if perf[i, c] == HOLD and sounding != NO_PITCH:
                perf[i, c] = ONSET_BASE + sounding + d  # the held note is struck again in the new key
            self._change_at[rows[i]] = c
            self._change_by[rows[i]] = d

    def _build_obs(self, rows: IntArray | None = None) -> None:
        cfg = self.config
        if rows is None:
            build_observation(
                self._perf,
                self._agent,
                self._t,
                window=cfg.window,
                steps_per_bar=cfg.steps_per_bar,
                mode=cfg.mode,
                out=self._obs,
            )
            if self._hide_late:
                hide = self.np_random.random(self.num_envs) < cfg.late_onset_prob
                self.late_hidden += hide_current_onsets(self._obs.performer, hide)
            return
        tmp = ObservationBuffers.allocate(rows.size, cfg.window)
        build_observation(
            self._perf[rows],
            self._agent[rows],
            self._t[rows],
            window=cfg.window,
            steps_per_bar=cfg.steps_per_bar,
            mode=cfg.mode,
            out=tmp,
        )
        if self._hide_late:
            hide = self.np_random.random(rows.size) < cfg.late_onset_prob
            self.late_hidden += hide_current_onsets(tmp.performer, hide)
        self._obs.performer[rows] = tmp.performer
        self._obs.agent[rows] = tmp.agent
        self._obs.position[rows] = tmp.position

    def _out_obs(self) -> ObservationBuffers:
        return clone_obs(self._obs) if self.copy_obs else self._obs

    def _info(self) -> dict[str, Any]:
        return {
            "action_mask": self.action_mask,
            "piece": self._piece.copy(),
            "transpose": self._shift.copy(),
            "start": self._ep_start.copy(),
            "t": self._t - self._hist,
        }

    def reset(
        self, *, seed: int | None = None, options: Mapping[str, Any] | None = None
    ) -> tuple[ObservationBuffers, dict[str, Any]]:
        """Start N new episodes. ``options`` may pin ``pieces`` (int[N]), ``transpose`` and ``starts``."""
        if seed is not None:
            self.np_random = np.random.default_rng(seed)
        opts = dict(options or {})
        ep = self.bank.draw(
            self.np_random,
            self.num_envs,
            pieces=opts.get("pieces"),
            shifts=opts.get("transpose"),
            starts=opts.get("starts"),
        )
        self._start(self._rows, ep)
        self._started = True
        return self._out_obs(), self._info()

    # -- stepping ---------------------------------------------------------------------------------------

    def expert_actions(self) -> IntArray:
        """The real accompaniment's token at each env's current step (the ``bach`` policy, imitation data)."""
        return self._acc[self._rows, np.minimum(self._t, self._acc.shape[1] - 1)].copy()

    def step(
        self, actions: npt.ArrayLike
    ) -> tuple[ObservationBuffers, FloatArray, BoolArray, BoolArray, dict[str, Any]]:
        """Play ``actions`` (int64[N] tokens) at every env's current step; see the module docstring."""
        if not self._started:
            raise RuntimeError("call reset() before step()")
        a = np.asarray(actions, dtype=np.int64).reshape(-1)
        if a.shape != (self.num_envs,):
            raise ValueError(f"expected {self.num_envs} actions, got shape {np.shape(actions)}")
        over = self._t >= self._len
        if over.any():
            raise RuntimeError("episode over in some envs (autoreset=False): call reset()")
        learned = {
            name: (np.asarray(fn(self._obs, a), dtype=np.float32).reshape(self.num_envs) * np.float32(w))
            for name, (w, fn) in self.learned_terms.items()
        }
        t = self._t
        position = t % self.config.steps_per_bar
        changing = self._change_at == t
        if changing.any():  # the key the in-key term judges moves with the performer
            for r in np.flatnonzero(changing):
                self._tracker.key_mask[r] = np.roll(self._tracker.key_mask[r], self._change_by[r])
        resolved, raw = self._tracker.step(a, self._perf[self._rows, t], position)
        self._agent[self._rows, t] = resolved
        weighted = np.stack(list(raw.values()))
        weighted *= self._weights
        rewards = weighted.sum(axis=0)
        self._ep_rule += weighted
        terms: dict[str, FloatArray] = dict(zip(TERMS, weighted, strict=True))
        for name, value in learned.items():
            terms[name] = value
            rewards += value
            if name not in self._ep_learned:
                self._ep_learned[name] = np.zeros(self.num_envs, dtype=np.float32)
            self._ep_learned[name] += value
        self._ep_return += rewards
        self._t += 1
        done = self._t >= self._len
        terminated = done & self._ends_piece
        truncated = done & ~self._ends_piece
        self._build_obs()
        info: dict[str, Any] = {"reward_terms": terms, "done": done, "final_obs": None}
        if done.any():
            info["episode_return"] = np.where(done, self._ep_return, np.float32(0))
            info["episode_length"] = np.where(done, self._t - self._hist, 0)
            ep_rule = np.where(done, self._ep_rule, np.float32(0))
            ep_terms = dict(zip(TERMS, ep_rule, strict=True))
            for name, v in self._ep_learned.items():
                ep_terms[name] = np.where(done, v, np.float32(0))
            info["episode_reward_terms"] = ep_terms
            info["final_obs"] = clone_obs(self._obs)
            if self.autoreset:
                rows = np.flatnonzero(done)
                self._start(rows, self.bank.draw(self.np_random, rows.size))
        else:
            info["episode_return"] = self._zeros_f
            info["episode_length"] = self._zeros_i
            info["episode_reward_terms"] = dict.fromkeys([*TERMS, *self._ep_learned], self._zeros_f)
        info.update(self._info())
        return self._out_obs(), rewards, terminated, truncated, info

    def close(self) -> None:
        """Nothing to release; here for symmetry with gymnasium."""
