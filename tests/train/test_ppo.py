"""PPO learns on a toy corpus in seconds, the KL leash holds it to the prior, the recipe entry point runs."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from liveagent.env.config import EnvConfig
from liveagent.env.vector import BatchedAccompanimentEnv
from liveagent.train.checkpoint import load_checkpoint
from liveagent.train.data import toy_pieces
from liveagent.train.logging_utils import read_metrics
from liveagent.train.networks import NetConfig, PolicyNet
from liveagent.train.ppo import PPOConfig, train, train_ppo
from liveagent.train.rl_common import kl_categorical, masked_log_softmax

ENV = EnvConfig(window=4, pitch_min=36, pitch_max=64, transpose=False, phrase_steps=32)


def tiny_net(seed: int = 0) -> PolicyNet:
    torch.manual_seed(seed)
    return PolicyNet(
        NetConfig(window=4, hidden=32, embed_dim=4, position_dim=4, dropout=0.0, pitch_min=36, pitch_max=64)
    )


def tiny_env(seed: int = 0) -> BatchedAccompanimentEnv:
    return BatchedAccompanimentEnv(
        toy_pieces(6, seed=0, bars=4), num_envs=16, config=ENV, seed=seed, copy_obs=False
    )


def ppo_config(**kw: float) -> PPOConfig:
    base = dict(
        total_steps=16 * 32 * 12, num_steps=32, num_minibatches=2, update_epochs=4, learning_rate=3e-3,
        kl_coef=0.0, critic_hidden=32, critic_embed=4,
    )  # fmt: skip
    return PPOConfig(**(base | kw))  # type: ignore[arg-type]


@pytest.mark.timeout(120)
def test_ppo_reward_rises_on_toy_corpus() -> None:
    history = train_ppo(ppo_config(), tiny_env(), tiny_net())
    first, last = history.first_last(0.25)
    # A random policy scores about -1 per step on the toy duets (out-of-key, dissonant, leaping).
    assert first < -0.6
    assert last > first + 0.3, (first, last, history.rewards())
    assert {"pg_loss", "v_loss", "entropy", "approx_kl", "sps", "term/consonance"} <= set(history.rows[-1])


def _kl_to(prior: PolicyNet, actor: PolicyNet) -> float:
    rng = np.random.default_rng(0)
    perf = torch.from_numpy(rng.integers(0, 130, size=(512, 4)))
    agent = torch.from_numpy(rng.integers(0, 130, size=(512, 4)))
    pos = torch.from_numpy(rng.integers(0, 16, size=512))
    mask = torch.from_numpy(ENV.action_mask()).expand(512, 130)
    with torch.no_grad():
        p = masked_log_softmax(actor(perf, agent, pos), mask)
        q = masked_log_softmax(prior(perf, agent, pos), mask)
    return float(kl_categorical(p, q).mean())


@pytest.mark.timeout(120)
def test_kl_leash_keeps_policy_near_prior() -> None:
    prior = tiny_net(1)
    free, leashed = copy.deepcopy(prior), copy.deepcopy(prior)
    cfg = ppo_config(total_steps=16 * 32 * 6)
    train_ppo(cfg, tiny_env(), free, prior=prior)
    h = train_ppo(ppo_config(total_steps=16 * 32 * 6, kl_coef=5.0), tiny_env(), leashed, prior=prior)
    assert np.isfinite(h.rows[-1]["kl_prior"])
    kl_free, kl_leashed = _kl_to(prior, free), _kl_to(prior, leashed)
    assert kl_leashed < 0.5 * kl_free, (kl_leashed, kl_free)


def toy_recipe(tmp: Path, extra: str = "") -> dict:
    import tomllib

    text = """
name = "toy"
seed = 3
threads = 1
[net]
window = 4
hidden = 32
embed_dim = 4
position_dim = 4
[data]
corpus = "toy"
toy_pieces = 6
[mle]
steps = 30
eval_every = 30
batch_size = 64
warmup = 5
[env]
phrase_steps = 32
[ppo]
total_steps = 1024
num_envs = 16
num_steps = 32
critic_hidden = 32
[dqn]
total_steps = 1024
num_envs = 16
learning_starts = 128
batch_size = 32
[adversarial]
steps = 1
batch_size = 64
hidden = 32
[ensemble]
policies = 2
reward_models = 2
"""
    return tomllib.loads(text + extra)


@pytest.mark.timeout(180)
def test_train_entry_point_writes_checkpoint_and_logs(tmp_path: Path) -> None:
    path = train(toy_recipe(tmp_path), tmp_path / "run")
    ck = load_checkpoint(path)  # weights_only=True inside
    assert ck.algo == "ppo"
    assert ck.step == 1024
    assert "critic" in ck.extra
    assert (tmp_path / "run" / "mle" / "best.pt").exists()  # the prior was trained first (chained recipe)
    assert (tmp_path / "run" / "curves.png").exists()
    rows = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert len(rows) == 2 and all("reward" in r and "kl_prior" in r for r in rows)
    # The actor started as the prior: after two small updates it is still close to it.
    prior = load_checkpoint(tmp_path / "run" / "mle" / "best.pt").build_net()
    assert _kl_to(prior, ck.build_net()) < 0.5
