"""Play a band policy online against pieces, as the live engine plays it: `liveagent eval --band`.

Every step, the voices are decided in the band's order (bass, tenor, alto for ``satb``), each hearing the
soprano's step t (follow timing; up to t-1 in anticipate timing), its own past, the voices already decided
at t and the others' past;
decoding is the shared one (greedy after each voice's range mask), the silence gate, then
``resolve_hold``. All pieces are played at once (batch = pieces). The live engine uses the same
:class:`~liveagent.live.engine.policy.OnnxPolicy` and the same builder
(:class:`~liveagent.music.band.BandStream`), so what is evaluated is what is played.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from liveagent.live.engine.policy import OnnxPolicy, PolicyError
from liveagent.music.band import BandBuffers, build_band_observation
from liveagent.music.features import hears_current_step
from liveagent.music.piece import Piece, pad_lines
from liveagent.music.sampling import (
    Sampler,
    SamplerConfig,
    count_heard_silence,
    range_mask,
    resolve_holds,
    silence_gate,
)
from liveagent.music.tokens import REST, TokenArray

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]


def load_band_policy(name_or_path: str) -> OnnxPolicy:
    """An exported band policy (metadata ``band``); :class:`PolicyError` for a solo one."""
    policy = OnnxPolicy.load(name_or_path)
    if policy.meta.band is None:
        raise PolicyError(f"{name_or_path}: not a band policy (no metadata band)")
    return policy


@dataclass
class PriorStats:
    """KL(policy || prior) and argmax agreement over the decisions a band made (after each voice's mask)."""

    kl_sum: float = 0.0
    agree: int = 0
    decisions: int = 0

    def row(self) -> dict[str, float]:
        if not self.decisions:
            return {}
        return {
            "kl_prior": self.kl_sum / self.decisions,
            "prior_agree_pct": 100.0 * self.agree / self.decisions,
        }

    def add(self, logits: FloatArray, prior_logits: FloatArray, mask: BoolArray, live: BoolArray) -> None:
        lp, lq = _log_softmax(logits[live], mask), _log_softmax(prior_logits[live], mask)
        p = np.exp(lp)
        on = p > 0  # masked tokens: -inf in both, never subtracted (inf - inf warned, then was dropped)
        self.kl_sum += float((p[on] * (lp[on] - lq[on])).sum())
        self.agree += int((lp.argmax(1) == lq.argmax(1)).sum())
        self.decisions += int(live.sum())


def _log_softmax(x: FloatArray, mask: BoolArray) -> npt.NDArray[np.float64]:
    z = np.where(mask[None, :], x.astype(np.float64), -np.inf)
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def play_band(
    policy: OnnxPolicy | str,
    pieces: Sequence[Piece],
    *,
    sampler: Sampler | None = None,
    waits_for_performer: bool = True,
    prior: OnnxPolicy | None = None,
    prior_stats: PriorStats | None = None,
) -> list[dict[str, TokenArray]]:
    """Each piece's band lines (voice -> tokens, trimmed to the piece), played online under its soprano.

    With ``prior`` (a band of the same voices and window) and ``prior_stats``, the prior scores the same
    states: KL to it and argmax agreement are summed into ``prior_stats``."""
    if isinstance(policy, str):
        policy = load_band_policy(policy)
    spec = policy.meta.band
    if spec is None:
        raise PolicyError(f"{policy.name}: not a band policy")
    if not pieces:
        return []
    sampler = sampler or Sampler(SamplerConfig(temperature=0.0))
    grid = pieces[0].grid
    spbar = grid.steps_per_bar
    perf, lengths = pad_lines(list(pieces), "performer")
    b, t_max = perf.shape
    n = spec.size
    lines = np.full((b, n, t_max), REST, dtype=np.int64)
    obs = BandBuffers.allocate_band(b, policy.meta.window, n)
    masks = [range_mask(lo, hi) for lo, hi in spec.ranges]
    sounding = np.zeros((b, n), dtype=bool)
    silent = np.full(b, spbar, dtype=np.int64)  # the gate opens on the performer's first note
    steps = np.zeros(b, dtype=np.int64)
    hears_t = hears_current_step(policy.meta.mode)
    for t in range(t_max):
        steps.fill(t)
        live = t < lengths
        if waits_for_performer:
            count_heard_silence(silent, perf, t, hears_t)
        for v in spec.order_index:
            build_band_observation(perf, lines, v, steps, spec=spec, window=policy.meta.window,
                                   steps_per_bar=spbar, mode=policy.meta.mode, out=obs)  # fmt: skip
            logits = policy(obs)
            if prior is not None and prior_stats is not None:
                prior_stats.add(logits, prior(obs), masks[v], live)
            drawn = sampler.sample(logits, masks[v])
            if waits_for_performer:
                silence_gate(silent, drawn, spbar)
            tokens = resolve_holds(drawn, sounding[:, v])
            tokens[~live] = REST
            lines[:, v, t] = tokens
            sounding[:, v] = tokens != REST
    return [
        {voice: lines[i, j, : int(lengths[i])].copy() for j, voice in enumerate(spec.voices)}
        for i in range(b)
    ]
