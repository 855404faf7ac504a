"""Online evaluation of policies over a list of pieces, exactly as the environment plays them.

At step ``t`` the agent chooses its token from the performer's past (``anticipate``; ``react`` policies
also see the performer's token at ``t``) and its own past. All pieces of a split are played at once:
the lines are REST-padded to ``[B, T_max]`` and each step is one :func:`build_observation`, one policy
call and one :meth:`Sampler.sample` for the whole batch. Decoding is the live engine's: the policy's
range mask, the shared sampler, then :func:`resolve_holds` (HOLD while silent is REST), so what is
evaluated is what would be played. The finished lines are scored by :mod:`liveagent.env.metrics`, and the
environment's reward terms (:class:`~liveagent.env.rewards.RewardTracker`) are averaged per step.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from liveagent.env.config import EnvConfig
from liveagent.env.metrics import line_metrics
from liveagent.env.policies import EpisodeBatch, EvalPolicy, check_logits
from liveagent.env.rewards import RewardTracker, key_mask_of
from liveagent.music.features import ObservationBuffers, build_observation
from liveagent.music.piece import Piece, pad_lines
from liveagent.music.sampling import Sampler, SamplerConfig, range_mask, resolve_holds
from liveagent.music.tokens import REST

log = logging.getLogger(__name__)

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class EvalConfig:
    """How policies are decoded and what is reported."""

    temperature: float = 0.0
    """Sampling temperature; 0 = greedy (how policies are judged, and the default on stage)."""
    top_p: float = 1.0
    """Nucleus sampling threshold (1 = off)."""
    seed: int = 0
    """Seed of each policy's sampler (each policy gets a fresh sampler with this seed)."""
    progress: bool = True
    """Show a progress bar (on stderr) while playing."""
    rewards: bool = True
    """Also report the mean per-step reward terms of the environment."""


@dataclass
class PolicyResult:
    """One policy's row of the table and what it played."""

    name: str
    row: dict[str, float]
    """Metric key -> value (see :data:`liveagent.env.metrics.COLUMNS`)."""
    rewards: dict[str, float] = field(default_factory=dict)
    """Mean per-step weighted reward term (and ``total``); empty when ``EvalConfig.rewards`` is off."""
    lines: list[IntArray] = field(default_factory=list, repr=False)
    """The agent's played line per piece (length of the piece)."""
    seconds: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    def metrics_json(self) -> str:
        """The row as JSON (NaN -> null): what an exported policy stores in its ``metrics`` metadata."""
        return json.dumps(json_safe({"policy": self.name, **self.row, "reward": self.rewards.get("total")}))


def json_safe(value: Any) -> Any:
    """A JSON-safe copy: NaN/inf -> None, numpy scalars -> Python, tuples -> lists, the rest str()."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def _reward_tracker(pieces: Sequence[Piece]) -> RewardTracker:
    """The environment's reward tracker for this batch.

    Every policy is scored with the environment's default reward config and pitch range (as the
    trainers see it), not its own, so the reward columns compare like with like.
    """
    env = EnvConfig()
    tracker = RewardTracker(
        len(pieces), env.reward, grid=pieces[0].grid, pitch_min=env.pitch_min, pitch_max=env.pitch_max
    )
    keys = np.stack([key_mask_of(p.key) for p in pieces])
    tracker.reset_rows(np.arange(len(pieces)), keys)
    return tracker


def _progress(total: int, desc: str, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, file=sys.stderr, disable=not enabled, leave=False, unit="step")


def play(
    policy: EvalPolicy,
    pieces: Sequence[Piece],
    *,
    sampler: Sampler,
    progress: bool = False,
    reward_sums: dict[str, float] | None = None,
) -> IntArray:
    """Play ``policy`` online against every piece at once; the agent's lines ``[B, T_max]`` (REST-padded).

    If ``reward_sums`` is given, the weighted reward terms summed over all valid steps are added to it
    (plus ``_steps``, the number of valid steps).
    """
    if not pieces:
        raise ValueError("no pieces to evaluate")
    grid = pieces[0].grid
    if any(p.grid != grid for p in pieces):
        raise ValueError("all pieces of one evaluation must share a grid")
    if policy.grid is not None and policy.grid.steps_per_beat != grid.steps_per_beat:
        raise ValueError(
            f"policy {policy.name} was trained with {policy.grid.steps_per_beat} steps per beat, "
            f"the pieces have {grid.steps_per_beat}"
        )
    perf, lengths = pad_lines(list(pieces), "performer")
    acc, _ = pad_lines(list(pieces), "accompaniment")
    b, t_max = perf.shape
    agent = np.full((b, t_max), REST, dtype=np.int64)
    obs = ObservationBuffers.allocate(b, policy.window)
    mask = range_mask(policy.pitch_min, policy.pitch_max)
    steps = np.zeros(b, dtype=np.int64)
    sounding = np.zeros(b, dtype=bool)
    tracker = _reward_tracker(pieces) if reward_sums is not None else None
    if policy.reset is not None:
        policy.reset(EpisodeBatch(perf, acc, lengths))
    with _progress(t_max, policy.name, progress) as bar:
        for t in range(t_max):
            steps.fill(t)
            build_observation(
                perf,
                agent,
                steps,
                window=policy.window,
                steps_per_bar=grid.steps_per_bar,
                mode=policy.mode,
                out=obs,
            )
            logits = check_logits(policy.name, policy.fn(obs), b)
            drawn = sampler.sample(logits, mask)
            tokens = resolve_holds(drawn, sounding)
            live = t < lengths
            tokens[~live] = REST
            agent[:, t] = tokens
            sounding = tokens != REST  # after resolve_hold a HOLD is only kept while a note sounds
            if tracker is not None and reward_sums is not None:
                _, terms = tracker.step(tokens, perf[:, t], steps % grid.steps_per_bar)
                weighted = tracker.weighted(terms)
                total = np.zeros(b, dtype=np.float64)
                for name, value in weighted.items():
                    v = value.astype(np.float64) * live
                    reward_sums[name] = reward_sums.get(name, 0.0) + float(v.sum())
                    total += v
                reward_sums["total"] = reward_sums.get("total", 0.0) + float(total.sum())
                reward_sums["_steps"] = reward_sums.get("_steps", 0.0) + float(live.sum())
            bar.update(1)
    return agent


def evaluate_policy(
    policy: EvalPolicy, pieces: Sequence[Piece], config: EvalConfig | None = None
) -> PolicyResult:
    """Play one policy over ``pieces`` and score it."""
    cfg = config or EvalConfig()
    sampler = Sampler(SamplerConfig(temperature=cfg.temperature, top_p=cfg.top_p, seed=cfg.seed))
    sums: dict[str, float] | None = {} if cfg.rewards else None
    t0 = time.perf_counter()
    agent = play(policy, pieces, sampler=sampler, progress=cfg.progress, reward_sums=sums)
    seconds = time.perf_counter() - t0
    lines = [agent[i, : p.n_steps].copy() for i, p in enumerate(pieces)]
    keys = []
    for p in pieces:
        assert p.key is not None  # Piece estimates it when not given
        keys.append(p.key)
    row = line_metrics(
        lines,
        [p.performer for p in pieces],
        [p.accompaniment for p in pieces],
        keys,
        names=[p.name for p in pieces],
    )
    rewards: dict[str, float] = {}
    if sums:
        n = sums.pop("_steps", 0.0)
        rewards = {k: v / n for k, v in sums.items()} if n else {}
    log.info("%s: %d pieces in %.1f s", policy.name, len(pieces), seconds)
    return PolicyResult(policy.name, row, rewards, lines, seconds, dict(policy.meta))


def evaluate(
    policies: Sequence[EvalPolicy], pieces: Sequence[Piece], config: EvalConfig | None = None
) -> list[PolicyResult]:
    """One :class:`PolicyResult` per policy, in order, over the same pieces and decoding settings."""
    return [evaluate_policy(p, pieces, config) for p in policies]
