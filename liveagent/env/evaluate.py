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
from liveagent.env.metrics import consonance_counts, line_metrics
from liveagent.env.policies import EpisodeBatch, EvalPolicy, check_logits
from liveagent.env.rewards import RewardTracker, key_mask_of
from liveagent.music.features import ObservationBuffers, build_observation, hears_current_step
from liveagent.music.piece import Piece, pad_lines
from liveagent.music.sampling import (
    Sampler,
    SamplerConfig,
    count_heard_silence,
    range_mask,
    resolve_holds,
    silence_gate,
)
from liveagent.music.tokens import HOLD, NO_PITCH, ONSET_BASE, REST, sounding_pitches

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
    kl_to_prior: bool = True
    """For a policy whose metadata names its ``prior``, report KL(policy || prior) per decision and how
    often their argmax agree, on the states the policy visits (a leash can freeze a policy)."""
    adaptation: bool = True
    """Also play every piece with the performer transposed by a tritone from its middle bar on, and
    report consonance in the bar of the change and in the bar after it (ReaLchords' adaptation test)."""


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


@dataclass
class PriorComparison:
    """KL(policy || prior) and argmax agreement summed over the decisions of one play."""

    kl_sum: float = 0.0
    agree: int = 0
    decisions: int = 0

    def row(self) -> dict[str, float]:
        n = self.decisions
        return {
            "kl_prior": self.kl_sum / n if n else math.nan,
            "prior_agree_pct": 100.0 * self.agree / n if n else math.nan,
        }


def _log_softmax_masked(
    logits: npt.NDArray[np.float32], mask: npt.NDArray[np.bool_]
) -> npt.NDArray[np.float64]:
    x = np.where(mask, logits.astype(np.float64), -np.inf)
    x -= x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def play(
    policy: EvalPolicy,
    pieces: Sequence[Piece],
    *,
    sampler: Sampler,
    progress: bool = False,
    reward_sums: dict[str, float] | None = None,
    prior: EvalPolicy | None = None,
    prior_stats: PriorComparison | None = None,
) -> IntArray:
    """Play ``policy`` online against every piece at once; the agent's lines ``[B, T_max]`` (REST-padded).

    If ``reward_sums`` is given, the weighted reward terms summed over all valid steps are added to it
    (plus ``_steps``, the number of valid steps). With ``prior`` and ``prior_stats``, the prior scores
    the same states and their KL and argmax agreement (both after the policy's range mask) are summed.
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
    prior_obs = ObservationBuffers.allocate(b, prior.window) if prior is not None else None
    silent = np.full(b, grid.steps_per_bar, dtype=np.int64)  # the gate opens on the first note
    hears_t = hears_current_step(policy.mode)
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
            if prior is not None and prior_obs is not None and prior_stats is not None:
                build_observation(perf, agent, steps, window=prior.window, steps_per_bar=grid.steps_per_bar,
                                  mode=prior.mode, out=prior_obs)  # fmt: skip
                prior_logits = check_logits(prior.name, prior.fn(prior_obs), b)
                live_rows = t < lengths
                lp = _log_softmax_masked(logits, mask[None, :])[live_rows]
                lq = _log_softmax_masked(prior_logits, mask[None, :])[live_rows]
                pr = np.exp(lp)
                safe_lp = np.where(pr > 0, lp, 0.0)
                safe_lq = np.where(pr > 0, np.where(np.isfinite(lq), lq, -1e9), 0.0)
                terms = pr * (safe_lp - safe_lq)
                prior_stats.kl_sum += float(terms.sum())
                prior_stats.agree += int((lp.argmax(axis=1) == lq.argmax(axis=1)).sum())
                prior_stats.decisions += int(live_rows.sum())
            drawn = sampler.sample(logits, mask)
            if policy.waits_for_performer:
                count_heard_silence(silent, perf, t, hears_t)
                silence_gate(silent, drawn, grid.steps_per_bar)
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


TRITONE = 6


def tritone_change_step(piece: Piece) -> int:
    """The bar line nearest the middle of ``piece`` where the adaptation test transposes the performer."""
    spb = piece.grid.steps_per_bar
    return max(spb, (piece.n_steps // 2) // spb * spb)


def with_tritone_change(piece: Piece) -> Piece:
    """``piece`` with the performer a tritone higher from :func:`tritone_change_step` on (a held note is
    struck again at the change, so the new key is heard at once); the accompaniment is left as is."""
    c = tritone_change_step(piece)
    perf = piece.performer.copy()
    sounding = sounding_pitches(perf)
    tail = perf[c:]
    moved = np.where(tail >= ONSET_BASE, tail + TRITONE, tail)
    if tail.size and tail[0] == HOLD and sounding[c] != NO_PITCH:
        moved[0] = ONSET_BASE + sounding[c] + TRITONE
    perf[c:] = np.where(moved >= ONSET_BASE + 128, moved - 12, moved)
    return Piece(f"{piece.name}~tritone", perf, piece.accompaniment, piece.grid, piece.key, piece.bpm)


def adaptation_counts(lines: Sequence[IntArray], pieces: Sequence[Piece]) -> IntArray:
    """[bar, (consonant, judged)] agent onsets against the performer in the bar where the performer jumps a
    tritone (bar 0) and in the bar after it (bar 1)."""
    counts = np.zeros((2, 2), dtype=np.int64)
    for line, piece in zip(lines, pieces, strict=True):
        c, spb = tritone_change_step(piece), piece.grid.steps_per_bar
        for i in range(2):
            lo, hi = c + i * spb, c + (i + 1) * spb
            if hi <= piece.n_steps:
                ok, n = consonance_counts(line[lo:hi], piece.performer[lo:hi])
                counts[i] += (ok, n)
    return counts


def adaptation_pct(counts: IntArray) -> dict[str, float]:
    """The tritone columns from :func:`adaptation_counts` (pooled over lines or voices)."""
    pct = [100.0 * ok / n if n else math.nan for ok, n in counts]
    return {"tritone_bar1_pct": pct[0], "tritone_bar2_pct": pct[1]}


def adaptation_row(lines: Sequence[IntArray], pieces: Sequence[Piece]) -> dict[str, float]:
    """Onset consonance in the bar where the performer jumps a tritone and in the bar after it."""
    return adaptation_pct(adaptation_counts(lines, pieces))


def _prior_of(policy: EvalPolicy) -> EvalPolicy | None:
    """The policy named by ``policy``'s ``prior`` metadata (a shipped name or a path), if any."""
    name = policy.meta.get("prior")
    if not name:
        return None
    from liveagent.env.policies import PolicyLoadError, load_policy

    try:
        return load_policy(str(name), grid=policy.grid)
    except PolicyLoadError as exc:
        log.warning("%s: its prior %r cannot be loaded (%s); no KL column", policy.name, name, exc)
        return None


def evaluate_policy(
    policy: EvalPolicy, pieces: Sequence[Piece], config: EvalConfig | None = None
) -> PolicyResult:
    """Play one policy over ``pieces`` and score it."""
    cfg = config or EvalConfig()
    sampler = Sampler(SamplerConfig(temperature=cfg.temperature, top_p=cfg.top_p, seed=cfg.seed))
    sums: dict[str, float] | None = {} if cfg.rewards else None
    prior = _prior_of(policy) if cfg.kl_to_prior else None
    prior_stats = PriorComparison()
    t0 = time.perf_counter()
    agent = play(
        policy, pieces, sampler=sampler, progress=cfg.progress, reward_sums=sums, prior=prior,
        prior_stats=prior_stats,
    )  # fmt: skip
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
        grid=pieces[0].grid,
    )
    row |= prior_stats.row()
    if cfg.adaptation:
        changed = [with_tritone_change(p) for p in pieces]
        sampler = Sampler(SamplerConfig(temperature=cfg.temperature, top_p=cfg.top_p, seed=cfg.seed))
        moved = play(policy, changed, sampler=sampler)
        row |= adaptation_row([moved[i, : p.n_steps] for i, p in enumerate(changed)], changed)
        # What "recovered" is measured against: the same bar when the performer does not jump.
        row["tritone_bar2_base_pct"] = adaptation_row(lines, pieces)["tritone_bar2_pct"]
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
