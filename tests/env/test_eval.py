"""Online evaluation on hand-made pieces: causality, batching, decoding and the baseline policies."""

from __future__ import annotations

import dataclasses

import numpy as np
import numpy.typing as npt
import pytest

from liveagent.env import evaluate as ev
from liveagent.env.policies import (
    EvalPolicy,
    PolicyLoadError,
    bach_policy,
    from_meta,
    load_policy,
    random_policy,
)
from liveagent.live.engine import policy as live
from liveagent.music.features import ObservationBuffers
from liveagent.music.piece import Piece
from liveagent.music.theory import Key
from liveagent.music.tokens import HOLD, ONSET_BASE, REST, VOCAB_SIZE, Grid, onset


def line(*notes: tuple[int | None, int]) -> np.ndarray:
    out: list[int] = []
    for pitch, length in notes:
        out += [REST] * length if pitch is None else [onset(pitch)] + [HOLD] * (length - 1)
    return np.array(out, dtype=np.int64)


def hand_pieces() -> list[Piece]:
    """Two short duets of different lengths (C major), soprano over bass."""
    a = Piece(
        "a",
        line((72, 4), (74, 4), (76, 8), (None, 2), (79, 6)),
        line((48, 8), (55, 8), (48, 8)),
        key=Key(0, "major"),
    )
    b = Piece("b", line((67, 4), (65, 4), (64, 8)), line((48, 4), (50, 4), (48, 8)), key=Key(0, "major"))
    return [a, b]


class CopyPerformer:
    """Plays the performer's latest visible token (its last window entry): a probe of what it may see."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, obs: ObservationBuffers) -> npt.NDArray[np.float32]:
        self.calls += 1
        logits = np.zeros((obs.performer.shape[0], VOCAB_SIZE), dtype=np.float32)
        logits[np.arange(obs.performer.shape[0]), obs.performer[:, -1]] = 1.0
        return logits


def _resolved(tokens: np.ndarray) -> np.ndarray:
    """HOLD after silence -> REST, as the decoder does."""
    out = tokens.copy()
    for t in range(len(out)):
        if out[t] == HOLD and (t == 0 or out[t - 1] == REST):
            out[t] = REST
    return out


def _quiet() -> ev.EvalConfig:
    return ev.EvalConfig(progress=False, adaptation=False)


def test_anticipate_policy_sees_only_the_performers_past() -> None:
    pieces = hand_pieces()
    copy = CopyPerformer()
    pol = EvalPolicy("copy", copy, window=4, pitch_min=0, pitch_max=127)
    res = ev.evaluate_policy(pol, pieces, _quiet())
    for piece, played in zip(pieces, res.lines, strict=True):
        # Deciding step t it has heard up to t-1: the line is the performer's, one step late.
        expected = _resolved(np.concatenate(([REST], piece.performer[:-1])))
        assert played.tolist() == expected.tolist()
    assert copy.calls == max(p.n_steps for p in pieces)  # one batched call per step


def test_react_policy_sees_the_performer_at_t() -> None:
    pieces = hand_pieces()
    pol = EvalPolicy("copy", CopyPerformer(), window=4, mode="react", pitch_min=0, pitch_max=127)
    res = ev.evaluate_policy(pol, pieces, _quiet())
    for piece, played in zip(pieces, res.lines, strict=True):
        assert played.tolist() == piece.performer.tolist()


def test_range_mask_is_applied() -> None:
    # The copy policy wants the soprano's pitches (64..79); with a bass range 36..62 it must not play them.
    pol = EvalPolicy("copy", CopyPerformer(), window=4, pitch_min=36, pitch_max=62)
    res = ev.evaluate_policy(pol, hand_pieces(), _quiet())
    for played in res.lines:
        on = played[played >= ONSET_BASE] - ONSET_BASE
        assert ((on >= 36) & (on <= 62)).all()


def test_bach_oracle_is_the_ceiling() -> None:
    pieces = hand_pieces()
    for temperature in (0.0, 1.0):
        res = ev.evaluate_policy(
            bach_policy(), pieces, ev.EvalConfig(temperature=temperature, progress=False)
        )
        for piece, played in zip(pieces, res.lines, strict=True):
            assert played.tolist() == piece.accompaniment.tolist()
        assert res.row["density_ratio"] == pytest.approx(1.0)
        assert res.row["pc_overlap"] == pytest.approx(1.0)
        assert res.row["ioi_emd"] == pytest.approx(0.0)
    # Piece a: bass onsets at 0 (C3 48 under C5 72: octave), 8 (G3 55 under E5 76: 21 -> major sixth),
    # 16 (performer rests: not judged) -> 2/2; piece b: 67/48 (19 -> fifth), 65/50 (15 -> minor third),
    # 64/48 (16 -> major third) -> 3/3. All consonant.
    assert res.row["consonance_pct"] == pytest.approx(100.0)


def test_random_policy_is_seeded_and_decoded_like_the_engine() -> None:
    pieces = hand_pieces()
    r1 = ev.evaluate_policy(random_policy(seed=3), pieces, _quiet())
    r2 = ev.evaluate_policy(random_policy(seed=3), pieces, _quiet())
    r3 = ev.evaluate_policy(random_policy(seed=4), pieces, _quiet())
    assert all(np.array_equal(a, b) for a, b in zip(r1.lines, r2.lines, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(r1.lines, r3.lines, strict=True))
    for played in r1.lines:
        # No HOLD right after silence: resolve_hold turned it into REST.
        prev = np.concatenate(([REST], played[:-1]))
        assert not ((played == HOLD) & (prev == REST)).any()
        on = played[played >= ONSET_BASE] - ONSET_BASE
        assert ((on >= 36) & (on <= 62)).all()


def test_batch_equals_one_piece_at_a_time() -> None:
    pieces = hand_pieces()
    pol = EvalPolicy("copy", CopyPerformer(), window=4, pitch_min=0, pitch_max=127)
    together = ev.evaluate_policy(pol, pieces, _quiet()).lines
    alone = [ev.evaluate_policy(pol, [p], _quiet()).lines[0] for p in pieces]
    assert [x.tolist() for x in together] == [x.tolist() for x in alone]
    assert [len(x) for x in together] == [p.n_steps for p in pieces]


def test_reward_terms_are_reported() -> None:
    res = ev.evaluate_policy(bach_policy(), hand_pieces(), _quiet())
    assert "total" in res.rewards and "consonance" in res.rewards
    # Bach's part here is all consonant and in key: those terms are never negative.
    assert res.rewards["consonance"] > 0 and res.rewards["in_key"] == 0


def test_bad_logits_shape_is_a_clear_error() -> None:
    bad = EvalPolicy("bad", lambda obs: np.zeros((1, 5), dtype=np.float32), window=2)
    with pytest.raises(PolicyLoadError, match="shape"):
        ev.evaluate_policy(bad, hand_pieces(), _quiet())


def test_unknown_policy_name() -> None:
    with pytest.raises(PolicyLoadError, match="no-such-policy"):
        load_policy("no-such-policy")


def test_live_side_policy_meta_is_understood() -> None:
    meta = live.PolicyMeta(window=4, mode="react", pitch_min=0, pitch_max=127)
    pol = from_meta("probe", CopyPerformer(), meta)
    assert (pol.window, pol.mode, pol.pitch_min, pol.pitch_max) == (4, "react", 0, 127)
    res = ev.evaluate_policy(pol, hand_pieces(), _quiet())
    assert res.lines[0].tolist() == hand_pieces()[0].performer.tolist()  # react: sees the performer at t


def test_rules_is_the_live_engines_rules_policy() -> None:
    """`eval --policy rules` judges exactly what `serve --policy rules` plays: same object, same config."""
    pol = load_policy("rules", grid=Grid())
    on_stage = live.load_policy("rules")
    assert isinstance(pol.fn, live.RulesPolicy) and isinstance(on_stage, live.RulesPolicy)
    assert pol.meta == dataclasses.asdict(on_stage.meta)
    assert (pol.window, pol.mode, pol.pitch_min, pol.pitch_max) == (
        on_stage.meta.window,
        on_stage.meta.mode,
        on_stage.meta.pitch_min,
        on_stage.meta.pitch_max,
    )
    pieces = hand_pieces()
    res = ev.evaluate_policy(pol, pieces, _quiet())
    for piece, played in zip(pieces, res.lines, strict=True):
        assert len(played) == piece.n_steps and (played >= ONSET_BASE).any()
        on = played[played >= ONSET_BASE] - ONSET_BASE
        assert ((on >= pol.pitch_min) & (on <= pol.pitch_max)).all()


def test_rules_plays_on_the_grid_it_is_given() -> None:
    grid = Grid(steps_per_beat=2, beats_per_bar=3)
    policy = load_policy("rules", grid=grid)
    assert policy.grid == grid
    assert (policy.meta["steps_per_beat"], policy.meta["beats_per_bar"]) == (2, 3)
