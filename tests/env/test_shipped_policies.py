"""The shipped policies, played as `liveagent eval` plays them, on two held-out chorales (test split).

What the README's table reports over the whole test split must hold here too, with margins for two pieces:
the follow default is more consonant than Bach's own bass, both policies moved away from their priors (a leash
can freeze a policy: KL ~0 and ~100 % argmax agreement), and both recover within a bar after the soprano jumps
a tritone (ReaLchords' adaptation test).
"""

from __future__ import annotations

import pytest

from liveagent.env.evaluate import EvalConfig, evaluate_policy
from liveagent.env.policies import load_policy
from liveagent.music.piece import Piece

TEST_CHORALES = ("bach/bwv256", "bach/bwv415")


@pytest.fixture(scope="module")
def pieces() -> list[Piece]:
    from liveagent.music.chorales import load_chorales, split_of

    corpus = load_chorales(only=list(TEST_CHORALES), workers=1)
    assert all(split_of(p.name) == "test" for p in corpus.pieces), "held-out pieces only"
    return list(corpus.pieces)


def _row(name: str, pieces: list[Piece]) -> dict[str, float]:
    return evaluate_policy(load_policy(name), pieces, EvalConfig(progress=False)).row


def test_follow_default_is_consonant_and_sparse_in_parallels(pieces: list[Piece]) -> None:
    row = _row("default", pieces)
    bach = _row("bach", pieces)
    assert row["consonance_pct"] >= bach["consonance_pct"]
    assert row["time_consonance_pct"] >= bach["time_consonance_pct"]
    assert row["parallels_per_100"] <= 2.0
    assert 0.7 <= row["density_ratio"] <= 1.3


@pytest.mark.parametrize("name", ["default", "anticipate"])
def test_shipped_policies_moved_from_their_priors(name: str, pieces: list[Piece]) -> None:
    row = _row(name, pieces)
    assert row["kl_prior"] > 0.02 and row["prior_agree_pct"] < 98.0


@pytest.mark.parametrize(("name", "slack"), [("default", 10.0), ("anticipate", 15.0)])
def test_recovers_within_a_bar_of_a_tritone_jump(name: str, slack: float, pieces: list[Piece]) -> None:
    row = _row(name, pieces)
    assert row["tritone_bar2_pct"] >= row["consonance_pct"] - slack
