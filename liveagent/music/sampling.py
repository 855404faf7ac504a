"""Decoding outside the graph: masks and the one sampler shared by `liveagent eval` and the live engine.

What is evaluated is what is played: both call :class:`Sampler` on the policy's logits with the same
masks. Greedy decoding (``temperature == 0``) is argmax after the mask.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from liveagent.music.tokens import HOLD, N_PITCHES, ONSET_BASE, REST, VOCAB_SIZE

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float32]


def range_mask(pitch_min: int = 0, pitch_max: int = N_PITCHES - 1) -> BoolArray:
    """Tokens allowed when onsets must lie in ``pitch_min..pitch_max`` (REST and HOLD always allowed)."""
    if not 0 <= pitch_min <= pitch_max < N_PITCHES:
        raise ValueError(f"bad pitch range {pitch_min}..{pitch_max}")
    mask = np.zeros(VOCAB_SIZE, dtype=bool)
    mask[REST] = mask[HOLD] = True
    mask[ONSET_BASE + pitch_min : ONSET_BASE + pitch_max + 1] = True
    return mask


def pitch_class_mask(pitch_classes: Iterable[int]) -> BoolArray:
    """Tokens allowed when onsets must belong to ``pitch_classes`` (a scale; REST and HOLD allowed)."""
    pcs = {int(pc) % 12 for pc in pitch_classes}
    if not pcs:
        raise ValueError("a scale mask needs at least one pitch class")
    mask = np.zeros(VOCAB_SIZE, dtype=bool)
    mask[REST] = mask[HOLD] = True
    pitches = np.arange(N_PITCHES)
    mask[ONSET_BASE + pitches[np.isin(pitches % 12, list(pcs))]] = True
    return mask


@dataclass(frozen=True)
class SamplerConfig:
    """How tokens are drawn from logits."""

    temperature: float = 0.0
    """0 = greedy (argmax after masks); otherwise logits are divided by it before softmax."""
    top_p: float = 1.0
    """Nucleus sampling: keep the smallest set of tokens whose probability reaches top_p (1 = all)."""
    seed: int | None = None
    """Seed of the sampler's own generator, for reproducible sampled runs."""

    def __post_init__(self) -> None:
        if not (np.isfinite(self.temperature) and 0.0 <= self.temperature <= 10.0):
            raise ValueError(f"temperature must be in 0..10, got {self.temperature}")
        if not (np.isfinite(self.top_p) and 0.0 < self.top_p <= 1.0):
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")


class Sampler:
    """Masked greedy / temperature / top-p sampling over ``[B, 130]`` logits.

    The scratch buffer is allocated for the largest batch seen; with ``out=`` the live path (B = 1)
    allocates nothing per call after the first.
    """

    def __init__(self, config: SamplerConfig | None = None) -> None:
        self.config = config or SamplerConfig()
        self._rng = np.random.default_rng(self.config.seed)
        self._scratch = np.empty((1, VOCAB_SIZE), dtype=np.float64)
        self._mask_key: BoolArray | None = None
        self._cdf = np.empty(VOCAB_SIZE, dtype=np.float64)
        self._mask_add = np.zeros(VOCAB_SIZE, dtype=np.float64)

    def with_temperature(self, temperature: float) -> Sampler:
        """A sampler with another temperature that keeps this one's random stream."""
        s = Sampler(SamplerConfig(temperature, self.config.top_p, self.config.seed))
        s._rng = self._rng
        return s

    def sample(
        self,
        logits: npt.ArrayLike,
        mask: BoolArray | None = None,
        out: npt.NDArray[np.int64] | None = None,
    ) -> npt.NDArray[np.int64]:
        """Draw one token per row. ``mask`` is ``[130]`` or ``[B, 130]``; True = allowed.

        Non-finite logits are treated as forbidden; a row with nothing allowed falls back to REST.
        Returns a new array, or fills and returns ``out`` (int64 [B]) so a hot path allocates nothing.
        """
        lg = np.asarray(logits)
        if lg.ndim == 1:
            lg = lg[None, :]
        b = lg.shape[0]
        if b == 1 and self.config.temperature == 0.0 and (mask is None or mask.ndim == 1):
            # The live path (one row, greedy) in three numpy calls: on stage each call finds numpy's code
            # out of the caches after the idle between steps (~15-25 us a call; the general path took
            # ~120 us of a ~570 us decision inside `serve`). A non-finite maximum takes the general path.
            x1 = self._scratch[0]
            if mask is None:
                np.copyto(x1, lg[0])
            else:
                np.add(lg[0], self._additive(mask), out=x1)
            i = int(x1.argmax())
            if math.isfinite(x1[i]):
                if out is None:
                    out = np.empty(1, dtype=np.int64)
                out[0] = i
                return out
        if self._scratch.shape[0] < b:
            self._scratch = np.empty((b, VOCAB_SIZE), dtype=np.float64)
        x = self._scratch[:b]
        if mask is None:
            np.copyto(x, lg)
        elif mask.ndim == 1:
            np.add(lg, self._additive(mask), out=x)  # 0 where allowed, -inf where not
        else:
            np.add(lg, np.where(mask[:b], 0.0, -np.inf), out=x)
        if out is None:
            out = np.empty(b, dtype=np.int64)
        np.argmax(x, axis=1, out=out)
        if b == 1:
            clean = bool(np.isfinite(x[0, out[0]]))
        else:
            clean = bool(np.isfinite(x[np.arange(b), out]).all())
        if not clean:
            # NaN or +inf logits are forbidden: rare, so the slow path may allocate.
            x[~np.isfinite(x)] = -np.inf
            np.argmax(x, axis=1, out=out)
        cfg = self.config
        if b == 1 and clean:
            if cfg.temperature > 0.0:  # the live path: no per-call arrays
                out[0] = self._draw(x[0], cfg.temperature, cfg.top_p)
            return out
        if cfg.temperature > 0.0 or not clean:
            dead = ~np.isfinite(x[np.arange(b), out])
            if cfg.temperature > 0.0:
                for i in range(b):
                    if not dead[i]:
                        out[i] = self._draw(x[i], cfg.temperature, cfg.top_p)
            out[dead] = REST
        return out

    def _additive(self, mask: BoolArray) -> npt.NDArray[np.float64]:
        """The mask as 0 / -inf to add to logits, cached for the last mask object seen (the live one).

        Callers replace a mask rather than mutate it in place (the engine builds a new one on a swap).
        """
        if mask is not self._mask_key:
            self._mask_key = mask
            self._mask_add = np.where(mask, 0.0, -np.inf)
        return self._mask_add

    def _draw(self, row: npt.NDArray[np.float64], temperature: float, top_p: float) -> int:
        """One token from ``softmax(row / temperature)`` (masked entries are -inf), in place."""
        row -= row.max()
        row /= temperature
        np.exp(row, out=row)
        if top_p < 1.0:
            row /= row.sum()
            order = np.argsort(-row)
            cum = np.cumsum(row[order])
            keep = order[: int(np.searchsorted(cum, top_p)) + 1]
            probs = row[keep] / row[keep].sum()
            return int(keep[self._rng.choice(keep.size, p=probs)])
        # Inverse CDF into a preallocated buffer: masked tokens have zero width and are never drawn.
        cdf = np.cumsum(row, out=self._cdf)
        u = self._rng.random() * cdf[-1]
        return min(int(np.searchsorted(cdf, u, side="right")), VOCAB_SIZE - 1)


def resolve_hold(token: int, sounding: bool) -> int:
    """HOLD while nothing sounds means REST (the contract)."""
    return REST if token == HOLD and not sounding else token


def resolve_holds(tokens: npt.ArrayLike, sounding: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Vectorized :func:`resolve_hold`: HOLD where ``sounding`` is False becomes REST (elementwise)."""
    tok = np.asarray(tokens, dtype=np.int64)
    return np.where((tok == HOLD) & ~np.asarray(sounding, dtype=bool), REST, tok)


def count_silence(run: npt.NDArray[np.int64], performer_tokens: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """In place: the performer's consecutive silent steps after hearing one more step (REST: +1, else 0).

    The accompanist waits for the performer: it rests before the performer's first note and once the
    performer has been silent for a bar (:func:`silence_gate`), so it never plays alone into a silent hall
    nor keeps going after the player stopped. Start ``run`` at the gate (a bar) so a session opens closed.
    Used by `liveagent eval` and by the live engine, so what is evaluated is what is played.
    """
    tok = np.asarray(performer_tokens)
    np.copyto(run, np.where(tok == REST, run + 1, 0))
    return run


def count_heard_silence(
    run: npt.NDArray[np.int64], performer: npt.NDArray[np.int64], t: int, hears_current: bool
) -> npt.NDArray[np.int64]:
    """:func:`count_silence` before deciding step ``t`` of whole lines ``performer`` [B, T]: with step t
    heard (follow, react) or up to t-1 (anticipate: the gate knows what the decision knows)."""
    if hears_current:
        return count_silence(run, performer[:, t])
    if t > 0:
        return count_silence(run, performer[:, t - 1])
    return run


def silence_gate(
    run: npt.NDArray[np.int64], tokens: npt.NDArray[np.int64], steps: int
) -> npt.NDArray[np.int64]:
    """In place: REST where the performer has been silent for at least ``steps`` (a bar)."""
    tokens[run >= steps] = REST
    return tokens
