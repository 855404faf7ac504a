"""The sampler's temperature draw follows softmax(logits / T) and never leaves the mask."""

from __future__ import annotations

import numpy as np

from liveagent.music.sampling import Sampler, SamplerConfig, range_mask, resolve_holds
from liveagent.music.tokens import HOLD, ONSET_BASE, REST, VOCAB_SIZE


def test_temperature_one_draws_the_softmax_distribution() -> None:
    probs = np.full(VOCAB_SIZE, 1e-12)
    probs[:3] = [0.1, 0.2, 0.7]
    logits = np.log(probs)[None, :]
    s = Sampler(SamplerConfig(temperature=1.0, seed=1))
    counts = np.bincount([int(s.sample(logits)[0]) for _ in range(20_000)], minlength=VOCAB_SIZE)
    freq = counts[:3] / counts.sum()
    # 20,000 draws: the standard error of 0.7 is ~0.003, so 0.02 is a >6 sigma margin.
    np.testing.assert_allclose(freq, [0.1, 0.2, 0.7], atol=0.02)


def test_draws_at_high_temperature_stay_inside_the_mask() -> None:
    mask = range_mask(40, 42)
    s = Sampler(SamplerConfig(temperature=5.0, seed=2))
    logits = np.zeros((1, VOCAB_SIZE))
    drawn = {int(s.sample(logits, mask)[0]) for _ in range(2_000)}
    allowed = {REST, HOLD, ONSET_BASE + 40, ONSET_BASE + 41, ONSET_BASE + 42}
    assert drawn <= allowed
    assert len(drawn) == len(allowed)  # at T=5 over a flat row every allowed token shows up


def test_resolve_holds_turns_hold_after_silence_into_rest() -> None:
    tokens = np.array([HOLD, HOLD, ONSET_BASE + 60, HOLD, REST])
    sounding = np.array([False, True, True, True, False])
    assert resolve_holds(tokens, sounding).tolist() == [REST, HOLD, ONSET_BASE + 60, HOLD, REST]
