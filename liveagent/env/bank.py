"""A corpus of pieces packed into flat arrays, so N episodes can be drawn and loaded without a Python loop.

Both environments draw episodes from a :class:`PieceBank`: for each env that starts an episode it picks a
piece, a transposition (uniform over the keys that keep the real accompaniment inside the agent's range
and everything inside MIDI), and, in phrase mode, a bar-aligned start; then gathers the tokens of all those
episodes at once into the caller's ``[N, T_max]`` histories.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from liveagent.music.piece import Piece
from liveagent.music.tokens import ONSET_BASE, REST, Grid, pitch_range

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass
class Episodes:
    """The episodes drawn for some envs (arrays over those envs)."""

    piece: IntArray
    shift: IntArray
    """Transposition in semitones."""
    start: IntArray
    """First step of the episode in the piece (a multiple of the bar length)."""
    length: IntArray
    ends_piece: BoolArray
    """The episode runs to the piece's end (terminated); else it is a phrase cut short (truncated)."""


class PieceBank:
    """Pieces packed flat: ``performer``/``accompaniment`` concatenated, with offsets, lengths and keys."""

    def __init__(
        self,
        pieces: Sequence[Piece],
        *,
        grid: Grid,
        pitch_min: int,
        pitch_max: int,
        transpose: bool,
        phrase_steps: int | None,
    ) -> None:
        if not pieces:
            raise ValueError("the environment needs at least one piece")
        for p in pieces:
            if p.grid != grid:
                raise ValueError(f"{p.name}: grid {p.grid} differs from the environment's {grid}")
            if p.n_steps == 0:
                raise ValueError(f"{p.name}: empty piece")
        if phrase_steps is not None and phrase_steps < 1:
            raise ValueError(f"phrase_steps must be positive, got {phrase_steps}")
        self.pieces = list(pieces)
        self.grid = grid
        self.phrase_steps = phrase_steps
        self.lengths = np.array([p.n_steps for p in pieces], dtype=np.int64)
        self.offsets = np.concatenate(([0], np.cumsum(self.lengths)[:-1])).astype(np.int64)
        self.performer = np.concatenate([p.performer for p in pieces]).astype(np.int64)
        self.accompaniment = np.concatenate([p.accompaniment for p in pieces]).astype(np.int64)
        self.key_masks = np.stack(
            [p.key.mask() if p.key is not None else np.ones(12, dtype=bool) for p in pieces]
        )
        self.shifts, self.n_shifts = self._shift_table(pitch_min, pitch_max, transpose)
        self.max_length = int(
            self.lengths.max() if phrase_steps is None else min(phrase_steps, self.lengths.max())
        )

    def _shift_table(self, pitch_min: int, pitch_max: int, transpose: bool) -> tuple[IntArray, IntArray]:
        """Per piece, the transpositions to draw from: one per reachable key (the smallest such shift)."""
        shifts = np.zeros((len(self.pieces), 12), dtype=np.int64)
        counts = np.ones(len(self.pieces), dtype=np.int64)
        if not transpose:
            return shifts, counts
        for i, p in enumerate(self.pieces):
            acc = pitch_range(p.accompaniment)
            lo_all, hi_all = p.pitch_span()
            lo_s, hi_s = -lo_all, 127 - hi_all
            if acc is not None:
                lo_s, hi_s = max(lo_s, pitch_min - acc[0]), min(hi_s, pitch_max - acc[1])
            ok = [s for s in sorted(range(-11, 12), key=abs) if lo_s <= s <= hi_s]
            by_key: dict[int, int] = {}
            for s in ok:
                by_key.setdefault(s % 12, s)
            chosen = sorted(by_key.values()) or [0]
            shifts[i, : len(chosen)] = chosen
            counts[i] = len(chosen)
        return shifts, counts

    def draw(
        self,
        rng: np.random.Generator,
        n: int,
        *,
        pieces: npt.ArrayLike | None = None,
        shifts: npt.ArrayLike | None = None,
        starts: npt.ArrayLike | None = None,
    ) -> Episodes:
        """Draw ``n`` episodes; ``pieces``/``shifts``/``starts`` pin them (e.g. for tests and evaluation)."""
        piece = (
            rng.integers(0, len(self.pieces), size=n)
            if pieces is None
            else np.asarray(pieces, dtype=np.int64)
        )
        if piece.shape != (n,) or (n and (piece.min() < 0 or piece.max() >= len(self.pieces))):
            raise ValueError(f"bad piece indices {piece!r} for a bank of {len(self.pieces)}")
        if shifts is None:
            pick = (rng.random(n) * self.n_shifts[piece]).astype(np.int64)
            shift = self.shifts[piece, pick]
        else:
            shift = np.broadcast_to(np.asarray(shifts, dtype=np.int64), (n,)).copy()
        total = self.lengths[piece]
        if self.phrase_steps is None:
            start = np.zeros(n, dtype=np.int64)
            length = total.copy()
        else:
            spb = self.grid.steps_per_bar
            if starts is None:
                n_starts = np.maximum((total - self.phrase_steps) // spb + 1, 1)
                start = (rng.random(n) * n_starts).astype(np.int64) * spb
            else:
                start = np.broadcast_to(np.asarray(starts, dtype=np.int64), (n,)).copy()
                if (start % spb).any() or (start < 0).any():
                    raise ValueError(f"phrase starts must be non-negative multiples of the bar ({spb} steps)")
            length = np.minimum(self.phrase_steps, total - start)
        if n and length.min() < 1:
            raise ValueError("an episode starts at or after its piece's end")
        return Episodes(piece, shift, start, length, start + length >= total)

    def load(self, ep: Episodes, performer: IntArray, accompaniment: IntArray, *, history: int = 0) -> None:
        """Write the episodes' (transposed) token lines into ``[n, history + T_max]`` rows, REST-padded.

        The first ``history`` columns hold the piece's steps before the episode's start (REST before the
        piece's beginning), so a phrase cut from the middle of a piece keeps its past in the window.
        """
        t_max = performer.shape[1]
        steps = np.arange(t_max, dtype=np.int64) - history
        valid = (steps[None, :] < ep.length[:, None]) & (ep.start[:, None] + steps[None, :] >= 0)
        idx = np.where(valid, self.offsets[ep.piece, None] + ep.start[:, None] + steps[None, :], 0)
        for src, dst in ((self.performer, performer), (self.accompaniment, accompaniment)):
            tok = src[idx]
            tok = np.where(tok >= ONSET_BASE, tok + ep.shift[:, None], tok)
            dst[:] = np.where(valid, tok, REST)
        if performer.size and performer.max() >= ONSET_BASE + 128:
            raise ValueError("a transposition left the MIDI range")

    def key_masks_for(self, ep: Episodes) -> BoolArray:
        """``[n, 12]`` in-key pitch classes of the transposed pieces."""
        pcs = (np.arange(12)[None, :] - ep.shift[:, None]) % 12
        return np.take_along_axis(self.key_masks[ep.piece], pcs, axis=1)
