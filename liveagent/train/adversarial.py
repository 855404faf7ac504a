"""Adversarial reward: a discriminator tells real (performer, accompaniment) decisions from generated ones.

GAN-style imitation (as in GAIL, Ho & Ermon 2016; for music, the discriminator rewards of SeqGAN and of
RL-Duet's learned reward models): the rule-based terms say what is *wrong*, the discriminator says what
sounds like Bach. It is trained alongside the policy, on the policy's own rollouts (fake) against windows
of the corpus (real), and its score enters the reward through the env's learned-term hook, so
``info["reward_terms"]["discriminator"]`` reports it next to the theory terms.

A decision is ``(performer window heard, agent window including the token just played, bar position)``:
what the policy chose *given what it had heard*, exactly the online accompanist's situation. Real
decisions come from the same shared observation builder (teacher forcing on the real accompaniment), in a
random allowed key, so key is no giveaway.

Reward = ``clip(logit D(x), -c, c)`` = ``log D - log(1 - D)``: positive when the decision looks real. The
PPO leash to the MLE prior keeps the policy from chasing the discriminator into nonsense while it is
still weak.

Read :func:`train` top to bottom: config, prior + data, discriminator, env with the learned term, PPO.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from liveagent.music.features import ObservationBuffers
from liveagent.train.data import WindowSet, build_windows, sample_batch
from liveagent.train.ppo import PPOConfig, append_action, build_actor, make_critic, train_ppo
from liveagent.train.recipes import from_table
from liveagent.train.rl_common import (
    EncoderConfig,
    RunProgress,
    TokenEncoder,
    finish_run,
    obs_tensors,
    setup_run,
)

log = logging.getLogger(__name__)

ALGO = "adversarial"
TERM = "discriminator"
"""Name of the learned reward term in ``info["reward_terms"]``."""


@dataclass
class AdversarialConfig:
    """The ``[adversarial]`` table: the discriminator and its reward (PPO itself reads ``[ppo]``)."""

    reward_coef: float = 0.3
    """Weight of the discriminator term in the env's reward."""
    reward_clip: float = 3.0
    """The term is ``clip(logit D, -reward_clip, reward_clip)``."""
    hidden: int = 128
    """Width of the discriminator's two hidden layers."""
    embed: int = 16
    """Token embedding size of the discriminator."""
    lr: float = 3e-4
    """Adam step size of the discriminator."""
    steps: int = 4
    """Discriminator gradient steps after each rollout."""
    batch_size: int = 256
    """Real and fake decisions per discriminator step (each)."""
    label_smoothing: float = 0.1
    """Real targets are ``1 - label_smoothing`` (one-sided smoothing keeps D from saturating)."""
    weight_decay: float = 1e-4
    """AdamW weight decay of the discriminator (a weak D gives a smoother reward)."""


class Discriminator(TokenEncoder):
    """``(performer [B,W], agent_next [B,W], position [B]) -> logit [B]`` that the decision is real."""

    def __init__(self, window: int, steps_per_bar: int, hidden: int = 128, embed: int = 16) -> None:
        super().__init__(
            EncoderConfig(window=window, steps_per_bar=steps_per_bar, embed=embed, hidden=hidden)
        )

    def forward(self, performer: torch.Tensor, agent: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        return super().forward(performer, agent, position).squeeze(-1)


def real_decisions(
    ws: WindowSet, n: int, rng: np.random.Generator, transpose: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` real decisions: corpus windows with the real accompaniment token appended, in random keys."""
    idx = rng.integers(0, len(ws), size=n)
    perf, agent, pos, target = sample_batch(ws, idx, transpose=transpose, rng=rng)
    return perf, append_action(agent, target), pos


class DiscriminatorReward:
    """A discriminator with its optimizer and real data: an env learned term and a PPO rollout learner."""

    def __init__(
        self,
        real: WindowSet,
        *,
        window: int,
        steps_per_bar: int,
        config: AdversarialConfig,
        seed: int = 0,
        name: str = TERM,
        transpose: bool = True,
    ) -> None:
        torch.manual_seed(seed)
        self.name = name
        self.config = config
        self.real = real
        self.transpose = transpose
        self.rng = np.random.default_rng(seed)
        self.net = Discriminator(window, steps_per_bar, config.hidden, config.embed)
        self.optimizer = torch.optim.AdamW(
            self.net.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        self.updates = 0

    @torch.no_grad()
    def score(
        self, performer: torch.Tensor, agent_next: torch.Tensor, position: torch.Tensor
    ) -> torch.Tensor:
        """The reward of each decision: the clipped logit that it is real."""
        self.net.eval()
        c = self.config.reward_clip
        return self.net(performer, agent_next, position).clamp(-c, c)

    def env_term(self, obs: ObservationBuffers, actions: np.ndarray) -> np.ndarray:
        """The env's learned-term hook: ``fn(obs, actions) -> float[N]``."""
        perf, agent, pos = obs_tensors(obs)
        a = torch.from_numpy(np.asarray(actions, dtype=np.int64))
        return self.score(perf, append_action(agent, a), pos).numpy()

    def update(
        self, performer: torch.Tensor, agent_next: torch.Tensor, position: torch.Tensor
    ) -> dict[str, float]:
        """A few BCE steps on fresh real decisions against this rollout's (fake) decisions."""
        cfg = self.config
        self.net.train()
        loss_sum = acc_real = acc_fake = 0.0
        m = performer.shape[0]
        for _ in range(cfg.steps):
            f = torch.from_numpy(self.rng.integers(0, m, size=cfg.batch_size))
            rp, ra, rpos = real_decisions(self.real, cfg.batch_size, self.rng, self.transpose)
            logit_real = self.net(rp, ra, rpos)
            logit_fake = self.net(performer[f], agent_next[f], position[f])
            bce = nn.functional.binary_cross_entropy_with_logits
            loss = bce(logit_real, torch.full_like(logit_real, 1.0 - cfg.label_smoothing)) + bce(
                logit_fake, torch.zeros_like(logit_fake)
            )
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            loss_sum += float(loss.detach())
            acc_real += float((logit_real.detach() > 0).float().mean())
            acc_fake += float((logit_fake.detach() < 0).float().mean())
            self.updates += 1
        self.net.eval()
        k = max(cfg.steps, 1)
        return {"loss": loss_sum / k, "acc_real": acc_real / k, "acc_fake": acc_fake / k}


def real_window_set(pieces: list[Any], net_config: Any, max_shift: int = 6) -> WindowSet:
    """Every teacher-forced window of ``pieces`` (their written keys; keys are drawn per batch)."""
    return build_windows(
        pieces,
        window=net_config.window,
        mode=net_config.mode,
        pitch_min=net_config.pitch_min,
        pitch_max=net_config.pitch_max,
        max_shift=max_shift,
    )


def train(recipe: dict[str, Any], out_dir: str | Path, resume: bool = False) -> Path:
    """`liveagent train adversarial`: PPO + KL leash + discriminator reward; returns the checkpoint."""
    from liveagent.env.vector import BatchedAccompanimentEnv
    from liveagent.train.checkpoint import load_checkpoint
    from liveagent.train.data import DataConfig, load_pieces

    # 1. Config, prior, pieces (the real decisions come from the clean corpus, never the perturbed copies).
    ppo_cfg = from_table(PPOConfig, recipe.get("ppo"), "ppo")
    cfg = from_table(AdversarialConfig, recipe.get(ALGO), ALGO)
    setup = setup_run(recipe, out_dir, ppo_cfg.prior, resume)
    ppo_cfg = dataclasses.replace(ppo_cfg, seed=setup.seed, threads=setup.threads)
    net_cfg = setup.prior.config
    data_cfg = from_table(DataConfig, recipe.get("data"), "data")
    clean = load_pieces(data_cfg, "train", setup.env_config.grid)
    real = real_window_set(clean, net_cfg, data_cfg.max_shift if data_cfg.transpose else 0)

    # 2. The discriminator, plugged into the env as a learned reward term.
    disc = DiscriminatorReward(
        real, window=net_cfg.window, steps_per_bar=net_cfg.steps_per_bar, config=cfg, seed=setup.seed
    )
    last = setup.out / "last.pt"
    if resume and last.exists() and "discriminator" in load_checkpoint(last).extra:
        disc.net.load_state_dict(load_checkpoint(last).extra["discriminator"])
    env = BatchedAccompanimentEnv(
        setup.pieces,
        ppo_cfg.num_envs,
        setup.env_config,
        learned_terms={TERM: (cfg.reward_coef, disc.env_term)},
        seed=setup.seed,
        copy_obs=False,
    )

    # 3. PPO from the prior, the discriminator learning from each rollout.
    actor = build_actor(setup, last if resume else None)
    critic = make_critic(actor, ppo_cfg)
    prog = RunProgress(setup.out, ppo_cfg.total_steps, ALGO, append=resume)
    try:
        history = train_ppo(ppo_cfg, env, actor, setup.prior, critic=critic, learners=[disc], progress=prog)
    finally:
        prog.close()
    extra = {"critic": critic.state_dict(), "discriminator": disc.net.state_dict()}
    return finish_run(setup, actor, ALGO, history, extra=extra)
