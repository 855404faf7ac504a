"""Play a band policy online against pieces, as the live engine plays it: `liveagent eval --band`.

Every step, the voices are decided in the band's order (bass, tenor, alto for ``satb``), each hearing the
soprano's step t (follow timing), its own past, the voices already decided at t and the others' past;
decoding is the shared one (greedy after each voice's range mask), the silence gate, then
``resolve_hold``. All pieces are played at once (batch = pieces). The live engine uses the same
:class:`~liveagent.live.engine.policy.OnnxPolicy` and the same builder
(:class:`~liveagent.music.band.BandStream`), so what is evaluated is what is played.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from liveagent.live.engine.policy import OnnxPolicy, PolicyError
from liveagent.music.band import BandBuffers, build_band_observation
from liveagent.music.piece import Piece, pad_lines
from liveagent.music.sampling import (
    Sampler,
    SamplerConfig,
    count_silence,
    range_mask,
    resolve_holds,
    silence_gate,
)
from liveagent.music.tokens import REST, TokenArray

IntArray = npt.NDArray[np.int64]


def load_band_policy(name_or_path: str) -> OnnxPolicy:
    """An exported band policy (metadata ``band``); :class:`PolicyError` for a solo one."""
    policy = OnnxPolicy.load(name_or_path)
    if policy.meta.band is None:
        raise PolicyError(f"{name_or_path}: not a band policy (no metadata band)")
    return policy


def play_band(
    policy: OnnxPolicy | str,
    pieces: Sequence[Piece],
    *,
    sampler: Sampler | None = None,
    waits_for_performer: bool = True,
) -> list[dict[str, TokenArray]]:
    """Each piece's band lines (voice -> tokens, trimmed to the piece), played online under its soprano."""
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
    for t in range(t_max):
        steps.fill(t)
        live = t < lengths
        if waits_for_performer:
            count_silence(silent, perf[:, t])
        for v in spec.order_index:
            build_band_observation(perf, lines, v, steps, spec=spec, window=policy.meta.window,
                                   steps_per_bar=spbar, mode=policy.meta.mode, out=obs)  # fmt: skip
            drawn = sampler.sample(policy(obs), masks[v])
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
