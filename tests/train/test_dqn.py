"""DQN (Double DQN, replay, target net, RL Tuner's prior term) learns on a toy corpus in seconds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from liveagent.env.config import EnvConfig
from liveagent.env.vector import BatchedAccompanimentEnv
from liveagent.train.checkpoint import load_checkpoint
from liveagent.train.data import toy_pieces
from liveagent.train.dqn import PRIOR_TERM, DQNConfig, dqn_learned_terms, train, train_dqn
from liveagent.train.networks import NetConfig, PolicyNet
from tests.train.test_ppo import toy_recipe

ENV = EnvConfig(window=4, pitch_min=36, pitch_max=64, transpose=False, phrase_steps=32)


def tiny_net(seed: int = 0) -> PolicyNet:
    torch.manual_seed(seed)
    return PolicyNet(
        NetConfig(window=4, hidden=32, embed_dim=4, position_dim=4, dropout=0.0, pitch_min=36, pitch_max=64)
    )


def dqn_config(**kw: float) -> DQNConfig:
    base = dict(
        total_steps=16 * 400, num_envs=16, learning_starts=256, batch_size=64, start_epsilon=1.0,
        end_epsilon=0.05, exploration_fraction=0.4, learning_rate=3e-3, prior_coef=0.05, log_every=40,
        gamma=0.5,
    )  # fmt: skip
    return DQNConfig(**(base | kw))  # type: ignore[arg-type]


@pytest.mark.timeout(120)
def test_dqn_reward_rises_with_prior_term() -> None:
    cfg = dqn_config()
    prior = tiny_net(1)
    env = BatchedAccompanimentEnv(
        toy_pieces(6, seed=0, bars=4),
        16,
        ENV,
        learned_terms=dqn_learned_terms(cfg, prior),
        seed=0,
        copy_obs=False,
    )
    history = train_dqn(cfg, env, tiny_net(), prior=prior)
    first, last = history.first_last(0.25)
    assert last > first + 0.3, (first, last, history.rewards())
    row = history.rows[-1]
    # The prior term is reported (a log-probability: negative) and included in the total reward.
    assert row["prior_logp"] < 0
    assert np.isfinite(row["loss"])
    assert row["epsilon"] == pytest.approx(0.05)


def test_dqn_refuses_env_without_prior_term() -> None:
    env = BatchedAccompanimentEnv(toy_pieces(2, seed=0, bars=2), 2, ENV, seed=0)
    with pytest.raises(ValueError, match=PRIOR_TERM):
        train_dqn(dqn_config(total_steps=8), env, tiny_net(), prior=tiny_net(1))


def test_dqn_learned_terms_is_log_prob_of_action() -> None:
    prior = tiny_net(1)
    terms = dqn_learned_terms(dqn_config(prior_coef=0.5), prior)
    weight, fn = terms[PRIOR_TERM]
    assert weight == 0.5
    env = BatchedAccompanimentEnv(toy_pieces(2, seed=0, bars=2), 3, ENV, seed=0)
    obs, _ = env.reset(seed=0)
    lp = fn(obs, np.array([0, 1, 40]))
    assert lp.shape == (3,) and (lp < 0).all()
    with torch.no_grad():
        logits = prior(*(torch.from_numpy(a) for a in (obs.performer, obs.agent, obs.position)))
    np.testing.assert_allclose(lp, torch.log_softmax(logits, 1)[[0, 1, 2], [0, 1, 40]].numpy(), rtol=1e-5)
    assert dqn_learned_terms(dqn_config(prior_coef=0.0), prior) == {}


@pytest.mark.timeout(180)
def test_dqn_entry_point(tmp_path: Path) -> None:
    path = train(toy_recipe(tmp_path), tmp_path / "run")
    ck = load_checkpoint(path)
    assert ck.algo == "dqn" and ck.step == 1024
    assert ck.build_net()(
        *(torch.zeros(2, 4, dtype=torch.int64),) * 2, torch.zeros(2, dtype=torch.int64)
    ).shape == (
        2,
        130,
    )
