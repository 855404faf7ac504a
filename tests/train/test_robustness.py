"""Performer-mistake perturbations: each does what it says and nothing else."""

from __future__ import annotations

import numpy as np
import pytest

from liveagent.music.piece import Piece
from liveagent.music.tokens import HOLD, ONSET_BASE, REST, onset, sounding_pitches
from liveagent.train.robustness import (
    PerturbConfig,
    drop_notes,
    extra_notes,
    perturb_piece,
    perturb_pieces,
    perturbation_stats,
    transpose_from,
    wrong_notes,
)

# C4 held 4 steps, rest, E4 held 3 steps, G4 one step, rest x2, C5 held 4 steps.
LINE = np.array(
    [
        onset(60),
        HOLD,
        HOLD,
        HOLD,
        REST,
        onset(64),
        HOLD,
        HOLD,
        onset(67),
        REST,
        REST,
        onset(72),
        HOLD,
        HOLD,
        HOLD,
    ]
)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_wrong_notes_move_pitches_only() -> None:
    out = wrong_notes(LINE, 1.0, rng())
    on = LINE >= ONSET_BASE
    assert (out[~on] == LINE[~on]).all()  # rhythm (REST/HOLD) untouched
    moved = np.abs(out[on] - LINE[on])
    assert ((moved >= 1) & (moved <= 2)).all()
    assert (wrong_notes(LINE, 0.0, rng()) == LINE).all()


def test_drop_notes_silence_whole_notes() -> None:
    out = drop_notes(LINE, 1.0, rng())
    assert (out == REST).all()
    some = drop_notes(LINE, 0.5, rng(3))
    # Every note is either intact or entirely silent (no orphan HOLD after a REST).
    s_in, s_out = sounding_pitches(LINE), sounding_pitches(some)
    assert ((s_out == s_in) | (s_out == -1)).all()
    assert not np.any((some[1:] == HOLD) & (some[:-1] == REST))
    assert (some != LINE).any() and (some == LINE).any()


def test_extra_notes_insert_neighbours_and_restrike() -> None:
    out = extra_notes(LINE, 1.0, rng())
    changed = np.flatnonzero(out != LINE)
    assert changed.size > 0
    sounding = sounding_pitches(LINE)
    for i in changed:
        assert LINE[i] == HOLD  # only held steps change
        assert out[i] >= ONSET_BASE
        p = out[i] - ONSET_BASE
        # Either a neighbour of the held pitch, or the held pitch struck again after a neighbour.
        assert 1 <= abs(p - sounding[i]) <= 2 or (p == sounding[i] and out[i - 1] >= ONSET_BASE)
    assert (extra_notes(LINE, 0.0, rng()) == LINE).all()


def test_transpose_from_moves_tail_only() -> None:
    out = transpose_from(LINE, 5, 3)
    assert (out[:5] == LINE[:5]).all()
    tail_on = LINE[5:] >= ONSET_BASE
    assert (out[5:][tail_on] == LINE[5:][tail_on] + 3).all()
    assert (out[5:][~tail_on] == LINE[5:][~tail_on]).all()


def test_perturb_piece_keeps_accompaniment_or_modulates_it() -> None:
    piece = Piece("p", LINE.copy(), LINE.copy() - np.where(LINE >= ONSET_BASE, 24, 0))
    cfg = PerturbConfig(wrong_note=0.0, drop_note=0.0, extra_note=0.0, transpose=1.0)
    moved = perturb_piece(piece, cfg, rng(1))
    assert "~T" in moved.name
    diff = moved.performer - piece.performer
    k = diff[diff != 0]
    assert k.size and (k == k[0]).all() and 1 <= abs(k[0]) <= cfg.max_transpose
    # The accompaniment moved by the same amount from the same step (a modulation).
    assert ((moved.accompaniment - piece.accompaniment) != 0).tolist() == (diff != 0).tolist()
    kept = perturb_piece(piece, PerturbConfig(transpose=1.0, transpose_accompaniment=False), rng(1))
    assert (kept.accompaniment == piece.accompaniment).all()


def test_perturb_pieces_is_deterministic_and_counts() -> None:
    pieces = [Piece(f"p{i}", LINE.copy(), LINE.copy()) for i in range(3)]
    cfg = PerturbConfig(copies=2, wrong_note=0.3)
    a = perturb_pieces(pieces, cfg, seed=5)
    b = perturb_pieces(pieces, cfg, seed=5)
    assert len(a) == 9 and a[:3] == pieces
    assert all((x.performer == y.performer).all() for x, y in zip(a, b, strict=True))
    stats = perturbation_stats(LINE, a[3].performer)
    assert 0.0 <= stats["onsets_changed"] <= 1.0


def test_config_validates_rates() -> None:
    with pytest.raises(ValueError):
        PerturbConfig(wrong_note=1.5)
    with pytest.raises(ValueError):
        PerturbConfig(max_transpose=0)
