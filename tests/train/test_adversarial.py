"""The discriminator learns real from generated decisions, and PPO with its reward still learns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from liveagent.env.config import EnvConfig
from liveagent.env.vector import BatchedAccompanimentEnv
from liveagent.train.adversarial import TERM, AdversarialConfig, DiscriminatorReward, real_decisions, train
from liveagent.train.checkpoint import load_checkpoint
from liveagent.train.data import build_windows, toy_pieces
from liveagent.train.ppo import PPOConfig, train_ppo
from tests.train.test_ppo import tiny_net, toy_recipe

ENV = EnvConfig(window=4, pitch_min=36, pitch_max=64, transpose=False, phrase_steps=32)


def toy_real(window: int = 4):  # type: ignore[no-untyped-def]
    return build_windows(
        toy_pieces(6, seed=0, bars=4), window=window, mode="anticipate", pitch_min=36, pitch_max=64
    )


def make_disc(**kw: float) -> DiscriminatorReward:
    cfg = AdversarialConfig(**({"hidden": 32, "steps": 1, "batch_size": 128, "lr": 3e-3} | kw))  # type: ignore[arg-type]
    return DiscriminatorReward(toy_real(), window=4, steps_per_bar=16, config=cfg, seed=0, transpose=False)


@pytest.mark.timeout(60)
def test_discriminator_separates_real_from_generated() -> None:
    disc = make_disc()
    rng = np.random.default_rng(1)
    perf, agent, pos = real_decisions(disc.real, 2048, rng, transpose=False)
    fake_agent = agent.clone()
    fake_agent[:, -1] = torch.from_numpy(rng.integers(2 + 36, 2 + 65, size=2048))  # random bass notes
    before = float(disc.score(perf, agent, pos).mean() - disc.score(perf, fake_agent, pos).mean())
    for _ in range(80):
        metrics = disc.update(perf, fake_agent, pos)
    real_s, fake_s = disc.score(perf, agent, pos), disc.score(perf, fake_agent, pos)
    after = float(real_s.mean() - fake_s.mean())
    assert abs(before) < 0.2
    assert after > 1.0, (before, after, metrics)
    assert metrics["acc_fake"] > 0.8
    assert float(real_s.abs().max()) <= disc.config.reward_clip + 1e-6


def test_env_term_scores_the_decision_with_the_action_appended() -> None:
    disc = make_disc()
    env = BatchedAccompanimentEnv(toy_pieces(2, seed=0, bars=2), 4, ENV, seed=0)
    obs, _ = env.reset(seed=0)
    actions = np.array([0, 1, 50, 60])
    got = disc.env_term(obs, actions)
    agent = torch.from_numpy(obs.agent)
    a = torch.from_numpy(actions)
    a = torch.where((a == 1) & (agent[:, -1] == 0), torch.zeros_like(a), a)
    want = disc.score(
        torch.from_numpy(obs.performer),
        torch.cat((agent[:, 1:], a[:, None]), 1),
        torch.from_numpy(obs.position),
    )
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-6)


@pytest.mark.timeout(120)
def test_adversarial_ppo_reward_rises() -> None:
    disc = make_disc(reward_coef=0.3)
    env = BatchedAccompanimentEnv(
        toy_pieces(6, seed=0, bars=4),
        16,
        ENV,
        learned_terms={TERM: (0.3, disc.env_term)},
        seed=0,
        copy_obs=False,
    )
    cfg = PPOConfig(
        total_steps=16 * 32 * 12, num_steps=32, num_minibatches=2, learning_rate=3e-3, kl_coef=0.0,
        critic_hidden=32, critic_embed=4,
    )  # fmt: skip
    history = train_ppo(cfg, env, tiny_net(), learners=[disc])
    first, last = history.first_last(0.25)  # the theory part of the reward (learned terms excluded)
    assert last > first + 0.3, (first, last)
    row = history.rows[-1]
    assert f"term/{TERM}" in row and "discriminator/acc_real" in row
    assert disc.updates == 12


@pytest.mark.timeout(180)
def test_adversarial_entry_point(tmp_path: Path) -> None:
    path = train(toy_recipe(tmp_path), tmp_path / "run")
    ck = load_checkpoint(path)
    assert ck.algo == "adversarial"
    assert {"critic", "discriminator"} <= set(ck.extra)
