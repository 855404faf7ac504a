"""GAE and the masked-distribution helpers against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from liveagent.music.tokens import HOLD, REST, onset
from liveagent.train.ppo import append_action
from liveagent.train.rl_common import (
    categorical_entropy,
    compute_gae,
    kl_categorical,
    masked_log_softmax,
    sample_from_logp,
    theory_reward,
)


def test_gae_matches_hand_computation() -> None:
    # T=3, one env; the episode ends after step 1, so step 1 does not bootstrap and step 0 only sees it.
    rewards = np.array([[1.0], [2.0], [3.0]], dtype=np.float32)
    values = np.array([[0.5], [0.5], [0.5]], dtype=np.float32)
    dones = np.array([[0.0], [1.0], [0.0]], dtype=np.float32)
    last = np.array([2.0], dtype=np.float32)
    adv, ret = compute_gae(rewards, values, dones, last, gamma=0.9, lam=0.8)
    # t=2: 3 + 0.9*2 - 0.5 = 4.3; t=1: 2 - 0.5 = 1.5 (terminal); t=0: (1 + 0.9*0.5 - 0.5) + 0.9*0.8*1.5 = 2.03
    np.testing.assert_allclose(adv[:, 0], [2.03, 1.5, 4.3], rtol=1e-6)
    np.testing.assert_allclose(ret[:, 0], [2.53, 2.0, 4.8], rtol=1e-6)


def test_gae_lambda_limits() -> None:
    rng = np.random.default_rng(0)
    r = rng.normal(size=(5, 2)).astype(np.float32)
    v = rng.normal(size=(5, 2)).astype(np.float32)
    d = np.zeros((5, 2), dtype=np.float32)
    last = rng.normal(size=2).astype(np.float32)
    g = 0.9
    # lambda = 0: one-step TD errors.
    adv0, _ = compute_gae(r, v, d, last, gamma=g, lam=0.0)
    next_v = np.concatenate([v[1:], last[None]], axis=0)
    np.testing.assert_allclose(adv0, r + g * next_v - v, rtol=1e-5, atol=1e-6)
    # lambda = 1: discounted return to the end of the rollout (bootstrapped) minus the value.
    _, ret1 = compute_gae(r, v, d, last, gamma=g, lam=1.0)
    mc = np.zeros_like(r)
    acc = last.copy()
    for t in range(4, -1, -1):
        acc = r[t] + g * acc
        mc[t] = acc
    np.testing.assert_allclose(ret1, mc, rtol=1e-5, atol=1e-5)


def test_gae_writes_into_given_buffer() -> None:
    out = np.full((2, 1), 99.0, dtype=np.float32)
    adv, _ = compute_gae(
        np.ones((2, 1), np.float32), np.zeros((2, 1), np.float32), np.zeros((2, 1), np.float32),
        np.zeros(1, np.float32), 1.0, 1.0, out,
    )  # fmt: skip
    assert adv is out
    np.testing.assert_allclose(out[:, 0], [2.0, 1.0])


def test_masked_distribution_helpers() -> None:
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, False, False]])
    logp = masked_log_softmax(logits, mask)
    np.testing.assert_allclose(logp.exp()[0, :2].numpy(), [0.5, 0.5], rtol=1e-6)
    assert float(logp.exp()[0, 2:].sum()) < 1e-12
    assert float(categorical_entropy(logp)[0]) == pytest.approx(np.log(2), rel=1e-6)
    q = torch.log(torch.tensor([[0.25, 0.75, 1e-30, 1e-30]]))
    expected = 0.5 * np.log(0.5 / 0.25) + 0.5 * np.log(0.5 / 0.75)
    assert float(kl_categorical(logp, q)[0]) == pytest.approx(expected, rel=1e-5)
    assert float(kl_categorical(logp, logp)[0]) == pytest.approx(0.0, abs=1e-7)
    draws = sample_from_logp(logp.expand(2000, 4), torch.Generator().manual_seed(0))
    assert set(draws.tolist()) == {0, 1}
    assert 0.4 < float((draws == 0).float().mean()) < 0.6


def test_append_action_resolves_hold_after_rest() -> None:
    agent = torch.tensor([[REST, onset(60)], [onset(60), REST]])
    actions = torch.tensor([HOLD, HOLD])
    out = append_action(agent, actions)
    assert out.tolist() == [[onset(60), HOLD], [REST, REST]]


def test_theory_reward_drops_learned_terms() -> None:
    r = np.array([1.0, 2.0], dtype=np.float32)
    terms = {"consonance": np.array([0.5, 0.5]), "discriminator": np.array([0.25, -1.0])}
    np.testing.assert_allclose(theory_reward(r, terms, {"discriminator"}), [0.75, 3.0])
