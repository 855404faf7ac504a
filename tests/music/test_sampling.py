"""The shared sampler: greedy is argmax after the mask, sampling stays inside it, seeds reproduce."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liveagent.music.sampling import Sampler, SamplerConfig, pitch_class_mask, range_mask, resolve_hold
from liveagent.music.tokens import HOLD, ONSET_BASE, REST, VOCAB_SIZE, onset


def random_mask(rng: np.random.Generator, b: int) -> np.ndarray:
    m = rng.random((b, VOCAB_SIZE)) < 0.2
    m[:, REST] |= ~m.any(axis=1)
    return m


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 6))
def test_greedy_is_argmax_after_mask(seed: int, b: int) -> None:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(b, VOCAB_SIZE)).astype(np.float32)
    mask = random_mask(rng, b)
    got = Sampler().sample(logits, mask)
    want = np.argmax(np.where(mask, logits, -np.inf), axis=1)
    assert np.array_equal(got, want)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(0, 2**31 - 1),
    st.floats(0.05, 5.0),
    st.floats(0.05, 1.0),
    st.integers(1, 4),
)
def test_sampling_stays_inside_mask(seed: int, temperature: float, top_p: float, b: int) -> None:
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=3, size=(b, VOCAB_SIZE))
    mask = random_mask(rng, b)
    s = Sampler(SamplerConfig(temperature=temperature, top_p=top_p, seed=seed))
    for _ in range(5):
        tok = s.sample(logits, mask)
        assert mask[np.arange(b), tok].all()
    one = s.sample(logits[0], mask[0])  # a [130] mask applies to every row
    assert mask[0, one[0]]


def test_top_p_keeps_the_nucleus() -> None:
    logits = np.full(VOCAB_SIZE, -20.0)
    logits[[5, 6]] = [3.0, 2.9]  # two tokens hold ~all the mass, each ~half
    s = Sampler(SamplerConfig(temperature=1.0, top_p=0.4, seed=1))
    draws = {int(s.sample(logits)[0]) for _ in range(50)}
    assert draws == {5}  # the nucleus of 40% is the single most likely token
    s = Sampler(SamplerConfig(temperature=1.0, top_p=0.99, seed=1))
    draws = {int(s.sample(logits)[0]) for _ in range(200)}
    assert draws == {5, 6}


def test_seeded_reproducibility() -> None:
    logits = np.random.default_rng(0).normal(size=(3, VOCAB_SIZE))
    a = Sampler(SamplerConfig(temperature=1.0, top_p=0.9, seed=42))
    b = Sampler(SamplerConfig(temperature=1.0, top_p=0.9, seed=42))
    seq_a = [a.sample(logits).tolist() for _ in range(20)]
    seq_b = [b.sample(logits).tolist() for _ in range(20)]
    assert seq_a == seq_b
    c = Sampler(SamplerConfig(temperature=1.0, top_p=0.9, seed=43))
    assert [c.sample(logits).tolist() for _ in range(20)] != seq_a


def test_nothing_allowed_or_non_finite_gives_rest() -> None:
    logits = np.zeros((2, VOCAB_SIZE))
    logits[1, :] = np.nan
    mask = np.zeros((2, VOCAB_SIZE), dtype=bool)
    mask[1, :] = True
    assert Sampler().sample(logits, mask).tolist() == [REST, REST]
    assert Sampler(SamplerConfig(temperature=1.0, seed=0)).sample(logits, mask).tolist() == [REST, REST]


def test_masks() -> None:
    m = range_mask(36, 62)
    assert m[REST] and m[HOLD] and m[onset(36)] and m[onset(62)]
    assert not m[onset(35)] and not m[onset(63)]
    assert m.sum() == 2 + 27
    pc = pitch_class_mask([0, 4, 7, 12])
    on = np.nonzero(pc[ONSET_BASE:])[0]
    assert set((on % 12).tolist()) == {0, 4, 7}
    with pytest.raises(ValueError):
        range_mask(70, 60)
    with pytest.raises(ValueError):
        pitch_class_mask([])
    with pytest.raises(ValueError):
        SamplerConfig(temperature=-1)
    with pytest.raises(ValueError):
        SamplerConfig(top_p=0)


def test_resolve_hold() -> None:
    assert resolve_hold(HOLD, sounding=False) == REST
    assert resolve_hold(HOLD, sounding=True) == HOLD
    assert resolve_hold(onset(60), sounding=False) == onset(60)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from(["finite", "nan", "posinf", "none_allowed", "no_mask"]))
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # inf + -inf (a masked inf)
def test_the_live_one_row_greedy_path_matches_the_general_one(seed: int, case: str) -> None:
    """One row, a 1-D mask, greedy (the engine's call) takes a short path; it must pick what the general
    path picks for the same row (a batch of two), non-finite logits and an empty mask included."""
    rng = np.random.default_rng(seed)
    row = rng.normal(size=VOCAB_SIZE).astype(np.float32)
    mask: np.ndarray | None = rng.random(VOCAB_SIZE) < 0.3
    assert mask is not None
    if case == "nan":
        row[int(np.argmax(np.where(mask, row, -np.inf)))] = np.nan
    elif case == "posinf":
        row[int(rng.integers(VOCAB_SIZE))] = np.inf
    elif case == "none_allowed":
        mask[:] = False
    elif case == "no_mask":
        mask = None
    out = np.full(1, -1, dtype=np.int64)
    got = Sampler().sample(row[None, :], mask, out=out)
    assert got is out
    batch_mask = None if mask is None else np.stack([mask, mask])
    want = Sampler().sample(np.stack([row, row]), batch_mask)
    assert got.tolist() == [int(want[0])], (case, got, want)
