"""PPO with a KL leash to the MLE prior (RL Tuner, ReaLchords), on the batched vector env.

Reads top to bottom, CleanRL style (``ppo.py`` of CleanRL, Huang et al. 2022): the config, then one
function that allocates the rollout storage once and alternates rollouts and clipped-objective updates.

- Actor: a :class:`~liveagent.train.networks.PolicyNet` initialized from the MLE prior (fine-tuning, as
  in ReaLchords), so it starts musical and RL only corrects it.
- Critic: a separate small :class:`~liveagent.train.rl_common.TokenEncoder`. A separate critic keeps the
  value regression's gradients out of the pretrained trunk, which would otherwise drift before the
  value estimates mean anything.
- Advantages: GAE (:func:`~liveagent.train.rl_common.compute_gae`), normalized per minibatch.
- Leash: ``kl_coef * KL(pi || prior)`` in the loss, computed exactly over the 130 tokens from the
  prior's stored log-probabilities, and/or ``prior_reward_coef * log p_prior(a|s)`` added to the reward
  (RL Tuner's form). Both keep the policy from collapsing onto whatever the theory terms reward most.
- Entropy bonus; action masks respected when sampling and in every log-probability.
- Learned reward terms (a discriminator, an ensemble) score decisions through the env's learned-term hook
  and learn from the rollout's own decisions as :class:`RolloutLearner` objects.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from liveagent.music.tokens import HOLD, REST
from liveagent.train.checkpoint import load_checkpoint
from liveagent.train.networks import PolicyNet
from liveagent.train.recipes import from_table
from liveagent.train.rl_common import (
    EncoderConfig,
    ProgressFn,
    RLHistory,
    RLSetup,
    RunProgress,
    TokenEncoder,
    VectorEnv,
    action_mask_of,
    categorical_entropy,
    compute_gae,
    finish_run,
    kl_categorical,
    masked_log_softmax,
    obs_tensors,
    sample_from_logp,
    seed_everything,
    setup_run,
    theory_reward,
)

log = logging.getLogger(__name__)


@dataclass
class PPOConfig:
    """Hyperparameters of PPO + KL leash (defaults suit the chorale corpus on 2 CPU cores)."""

    seed: int = 0
    """Seeds torch, numpy and the env."""
    total_steps: int = 500_000
    """Environment steps summed over all envs."""
    num_steps: int = 64
    """Rollout length per env per iteration (T); a rollout holds ``num_envs * num_steps`` decisions."""
    learning_rate: float = 3e-4
    """Adam step size (actor and critic)."""
    anneal_lr: bool = True
    """Decay the step size linearly to 0 over training."""
    gamma: float = 0.9
    """Discount: musical credit is short-range (a few beats)."""
    gae_lambda: float = 0.95
    """GAE's lambda."""
    num_minibatches: int = 4
    """Minibatches per epoch over the rollout."""
    update_epochs: int = 4
    """Passes over each rollout."""
    clip_coef: float = 0.2
    """PPO's ratio clip epsilon."""
    clip_vloss: bool = False
    """Clip the value loss too (CleanRL's option; off: it rarely helps)."""
    ent_coef: float = 0.01
    """Entropy bonus weight."""
    vf_coef: float = 0.5
    """Value loss weight."""
    kl_coef: float = 0.1
    """Weight of the exact ``KL(pi || prior)`` penalty in the loss (0 = off)."""
    prior_reward_coef: float = 0.0
    """Weight of ``log p_prior(a|s)`` added to each step's reward (RL Tuner's form; 0 = off)."""
    kl_reward: bool = False
    """With ``prior_reward_coef = beta``: add ``beta * (log p_prior(a|s) - log pi(a|s))`` instead, the
    per-step KL-regularized reward of RL Tuner and ReaLchords (its expectation is ``-beta * KL(pi||prior)``;
    it lives in the reward, on the reward's own scale, so per-minibatch advantage normalization cannot
    make it dominate the loss as the exact KL term did with ``kl_coef = 1``)."""
    reward_scale: float = 1.0
    """Multiplies the env's reward (the theory terms) before learned terms are added."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip."""
    target_kl: float | None = None
    """Stop an update's epochs early when the approximate KL(old || new) exceeds this."""
    critic_hidden: int = 128
    """Width of the separate critic."""
    critic_embed: int = 16
    """Token embedding size of the critic."""
    num_envs: int = 32
    """Environments stepped in lockstep (the batched env costs about the same per step for 8 or 64)."""
    prior: str = ""
    """MLE checkpoint (the prior and the actor's initial weights); empty = train the recipe's [mle] first."""
    ec_weight: float = 0.0
    """Initial weight of the actor's expected-consonance term (0 = the prior's architecture as is); PPO
    then learns it with the rest of the actor. Needs a prior with musical features (and an aux head in
    anticipate mode)."""
    parallel_weight: float = 0.0
    """Initial weight of the actor's expected-parallels term (0 = none); learned like ``ec_weight``."""
    relative_predictor: int = 0
    """Give the actor a key-free predictor of the performer's next note over its last N steps, fitted on
    the training windows before PPO and then frozen, to feed the expected-consonance terms (anticipate
    mode; 0 = the aux head feeds them; :mod:`liveagent.train.relative_predictor`)."""
    relative_fit_steps: int = 3000
    """Adam steps (batches of 512 windows) that fit the relative predictor."""
    threads: int = 1
    """torch intra-op threads (the machine is shared)."""
    max_minutes: float = 0.0
    """Stop after this wall time (0 = no limit); the learning rate anneals over ``total_steps`` regardless."""


class RolloutLearner(Protocol):
    """A learned reward model trained on the policy's rollouts (e.g. a discriminator or an ensemble of them).

    It *scores* decisions through the env's learned-term hook (``env.learned_terms``); here it only
    *learns*: after each rollout it sees that rollout's decisions as ``(performer, agent_next, position)``:
    the performer's window the agent heard, the agent's own window *including the token it just played*
    (see :func:`append_action`), and the bar position of that token.
    """

    name: str

    def update(
        self, performer: torch.Tensor, agent_next: torch.Tensor, position: torch.Tensor
    ) -> dict[str, float]:
        """Train on generated decisions ``[M, ...]`` from the last rollout; return metrics."""
        ...


def make_critic(actor: PolicyNet, config: PPOConfig) -> TokenEncoder:
    c = actor.config
    return TokenEncoder(
        EncoderConfig(
            window=c.embedded_steps,  # the recent steps; a long window's past adds little to a value
            steps_per_bar=c.steps_per_bar,
            embed=config.critic_embed,
            hidden=config.critic_hidden,
            out=1,
        )
    )


def append_action(agent: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """The agent's window after playing ``actions``: drop the oldest step, append the new token.

    HOLD after a REST is resolved to REST, as the env does (the windows the env builds hold resolved
    tokens), so a discriminator cannot tell generated windows by an unresolved HOLD.
    """
    last = agent[:, -1]
    resolved = torch.where((actions == HOLD) & (last == REST), torch.zeros_like(actions), actions)
    return torch.cat((agent[:, 1:], resolved[:, None]), dim=1)


def train_ppo(
    config: PPOConfig,
    env: VectorEnv,
    actor: PolicyNet,
    prior: PolicyNet | None = None,
    critic: nn.Module | None = None,
    learners: Sequence[RolloutLearner] = (),
    progress: ProgressFn | None = None,
) -> RLHistory:
    """Train ``actor`` in place on ``env`` (PPO + KL leash to ``prior``) and return the metrics history."""
    seed_everything(config.seed)
    torch.set_num_threads(config.threads)
    gen = torch.Generator().manual_seed(config.seed)
    n_envs, T = env.num_envs, config.num_steps
    window = actor.config.window
    batch_size = n_envs * T
    minibatch_size = max(1, batch_size // config.num_minibatches)
    use_prior = prior is not None and (config.kl_coef > 0 or config.prior_reward_coef > 0)
    if prior is not None:
        prior.eval()
    critic = critic if critic is not None else make_critic(actor, config)
    actor.eval()  # dropout off: the PPO ratio must compare the same function before and after
    critic.train()
    params = [*actor.parameters(), *critic.parameters()]
    optimizer = torch.optim.Adam(params, lr=config.learning_rate, eps=1e-5)

    # --- rollout storage, allocated once ------------------------------------------------------------
    perf_buf = torch.zeros((T, n_envs, window), dtype=torch.int64)
    agent_buf = torch.zeros((T, n_envs, window), dtype=torch.int64)
    pos_buf = torch.zeros((T, n_envs), dtype=torch.int64)
    mask_buf = torch.ones((T, n_envs, 130), dtype=torch.bool)
    actions_buf = torch.zeros((T, n_envs), dtype=torch.int64)
    logprob_buf = torch.zeros((T, n_envs))
    prior_logp_buf = torch.zeros((T, n_envs, 130)) if use_prior else torch.zeros(0)
    rewards = np.zeros((T, n_envs), dtype=np.float32)
    dones = np.zeros((T, n_envs), dtype=np.float32)
    values = np.zeros((T, n_envs), dtype=np.float32)
    advantages = np.zeros((T, n_envs), dtype=np.float32)
    env_reward_sum = np.zeros(T, dtype=np.float64)
    term_sums: dict[str, float] = {}

    learned_names = set(getattr(env, "learned_terms", {}))
    obs, info = env.reset(seed=config.seed)
    mask = torch.from_numpy(action_mask_of(info, n_envs))
    n_iterations = max(1, config.total_steps // batch_size)
    rows: list[dict[str, float]] = []
    global_step = 0
    t0 = time.perf_counter()
    for iteration in range(n_iterations):
        if config.max_minutes > 0 and time.perf_counter() - t0 > 60.0 * config.max_minutes:
            log.warning("ppo: %.1f min budget reached after %d env steps", config.max_minutes, global_step)
            break
        if config.anneal_lr:
            optimizer.param_groups[0]["lr"] = config.learning_rate * (1.0 - iteration / n_iterations)
        term_sums.clear()

        # --- rollout ----------------------------------------------------------------------------------
        t_rollout = time.perf_counter()
        for step in range(T):
            perf_t, agent_t, pos_t = obs_tensors(obs)
            perf_buf[step].copy_(perf_t)
            agent_buf[step].copy_(agent_t)
            pos_buf[step].copy_(pos_t)
            mask_buf[step].copy_(mask)
            with torch.no_grad():
                logp = masked_log_softmax(actor(perf_t, agent_t, pos_t), mask)
                action = sample_from_logp(logp, gen)
                logprob_buf[step] = logp.gather(1, action[:, None]).squeeze(1)
                values[step] = critic(perf_t, agent_t, pos_t).squeeze(-1).numpy()
                extra = np.zeros(n_envs, dtype=np.float32)
                if use_prior:
                    assert prior is not None
                    prior_logp = masked_log_softmax(prior(perf_t, agent_t, pos_t), mask)
                    prior_logp_buf[step] = prior_logp
                    if config.prior_reward_coef > 0:
                        taken = prior_logp.gather(1, action[:, None]).squeeze(1).numpy()
                        if config.kl_reward:
                            taken = taken - logprob_buf[step].numpy()
                        extra += np.float32(config.prior_reward_coef) * taken
            actions_buf[step] = action
            obs, env_reward, terminated, truncated, info = env.step(action.numpy())
            mask = torch.from_numpy(action_mask_of(info, n_envs))
            rewards[step] = np.asarray(env_reward, dtype=np.float32) * np.float32(config.reward_scale) + extra
            dones[step] = np.logical_or(terminated, truncated)
            if np.any(truncated) and info.get("final_obs") is not None:
                # A phrase cut short is not an ending: bootstrap from the state it was cut in.
                with torch.no_grad():
                    v_final = critic(*obs_tensors(info["final_obs"])).squeeze(-1).numpy()
                rewards[step] += np.where(truncated, np.float32(config.gamma) * v_final, 0.0).astype(
                    np.float32
                )
            terms = info.get("reward_terms", {})
            env_reward_sum[step] = float(np.mean(theory_reward(env_reward, terms, learned_names)))
            for k, v in terms.items():
                term_sums[k] = term_sums.get(k, 0.0) + float(np.mean(v))
        global_step += batch_size

        t_update = time.perf_counter()
        # --- advantages ------------------------------------------------------------------------------
        with torch.no_grad():
            last_values = critic(*obs_tensors(obs)).squeeze(-1).numpy()
        compute_gae(rewards, values, dones, last_values, config.gamma, config.gae_lambda, advantages)
        returns = advantages + values

        # --- learned reward models learn from this rollout's decisions (before the policy moves) -------
        learner_metrics: dict[str, float] = {}
        if learners:
            flat_agent = append_action(agent_buf.reshape(-1, window), actions_buf.reshape(-1))
            for learner in learners:
                got = learner.update(perf_buf.reshape(-1, window), flat_agent, pos_buf.reshape(-1))
                learner_metrics.update({f"{learner.name}/{k}": v for k, v in got.items()})

        # --- PPO update ------------------------------------------------------------------------------
        b_perf = perf_buf.reshape(batch_size, window)
        b_agent = agent_buf.reshape(batch_size, window)
        b_pos = pos_buf.reshape(batch_size)
        b_mask = mask_buf.reshape(batch_size, 130)
        b_actions = actions_buf.reshape(batch_size)
        b_logprobs = logprob_buf.reshape(batch_size)
        b_prior = prior_logp_buf.reshape(batch_size, 130) if use_prior else None
        b_adv = torch.from_numpy(advantages.reshape(batch_size))
        b_returns = torch.from_numpy(returns.reshape(batch_size))
        b_values = torch.from_numpy(values.reshape(batch_size))
        stats = {
            "pg_loss": 0.0,
            "v_loss": 0.0,
            "entropy": 0.0,
            "kl_prior": 0.0,
            "prior_agree": 0.0,
            "approx_kl": 0.0,
            "clip": 0.0,
        }
        n_mb = 0
        stop = False
        for _epoch in range(config.update_epochs):
            perm = torch.randperm(batch_size, generator=gen)
            for start in range(0, batch_size, minibatch_size):
                mb = perm[start : start + minibatch_size]
                logp_all = masked_log_softmax(actor(b_perf[mb], b_agent[mb], b_pos[mb]), b_mask[mb])
                new_logprob = logp_all.gather(1, b_actions[mb][:, None]).squeeze(1)
                log_ratio = new_logprob - b_logprobs[mb]
                ratio = log_ratio.exp()
                with torch.no_grad():
                    approx_kl = ((ratio - 1) - log_ratio).mean()
                    clip_frac = ((ratio - 1.0).abs() > config.clip_coef).float().mean()
                adv = b_adv[mb]
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                pg_loss = torch.max(
                    -adv * ratio, -adv * ratio.clamp(1 - config.clip_coef, 1 + config.clip_coef)
                ).mean()
                new_value = critic(b_perf[mb], b_agent[mb], b_pos[mb]).squeeze(-1)
                if config.clip_vloss:
                    v_clipped = b_values[mb] + (new_value - b_values[mb]).clamp(
                        -config.clip_coef, config.clip_coef
                    )
                    v_loss = (
                        0.5
                        * torch.max((new_value - b_returns[mb]) ** 2, (v_clipped - b_returns[mb]) ** 2).mean()
                    )
                else:
                    v_loss = 0.5 * ((new_value - b_returns[mb]) ** 2).mean()
                entropy = categorical_entropy(logp_all).mean()
                loss = pg_loss - config.ent_coef * entropy + config.vf_coef * v_loss
                if b_prior is not None:
                    kl_prior = kl_categorical(logp_all, b_prior[mb]).mean()
                    if config.kl_coef > 0:
                        loss = loss + config.kl_coef * kl_prior
                    stats["kl_prior"] += float(kl_prior.detach())
                    agree = logp_all.detach().argmax(dim=1) == b_prior[mb].argmax(dim=1)
                    stats["prior_agree"] += float(agree.float().mean())
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(params, config.max_grad_norm)
                optimizer.step()
                stats["pg_loss"] += float(pg_loss.detach())
                stats["v_loss"] += float(v_loss.detach())
                stats["entropy"] += float(entropy.detach())
                stats["approx_kl"] += float(approx_kl)
                stats["clip"] += float(clip_frac)
                n_mb += 1
                if config.target_kl is not None and float(approx_kl) > config.target_kl:
                    stop = True
                    break
            if stop:
                break

        row: dict[str, float] = {
            "step": float(global_step),
            "reward": float(env_reward_sum.mean()),
            "total_reward": float(rewards.mean()),
            "sps": global_step / max(time.perf_counter() - t0, 1e-9),
            "lr": float(optimizer.param_groups[0]["lr"]),
            "rollout_s": t_update - t_rollout,
            "update_s": time.perf_counter() - t_update,
        }
        row.update({k: v / max(n_mb, 1) for k, v in stats.items()})
        row.update({f"term/{k}": v / T for k, v in term_sums.items()})
        row.update(learner_metrics)
        rows.append(row)
        if progress is not None:
            progress(global_step, row)
    log.info("ppo: %d env steps, %.0f steps/s", global_step, rows[-1]["sps"] if rows else 0.0)
    return RLHistory(rows)


ALGO = "ppo"


def build_actor(
    setup: RLSetup,
    resume_from: Path | None = None,
    ec_weight: float = 0.0,
    parallel_weight: float = 0.0,
    relative_predictor: int = 0,
    relative_fit_steps: int = 3000,
) -> PolicyNet:
    """The actor: a trainable copy of the prior (fine-tuning), or the weights of a run being resumed.

    ``ec_weight`` / ``parallel_weight`` != 0 give the actor expected-consonance / expected-parallels terms
    the prior lacks (their weights are its only new parameters). ``relative_predictor`` > 0 gives it the
    key-free next-note predictor the prior lacks, fitted here on the training windows and frozen.
    """
    config = setup.prior.config
    if ec_weight != 0.0 or parallel_weight != 0.0:
        config = dataclasses.replace(config, ec_weight=ec_weight, parallel_weight=parallel_weight)
    if relative_predictor:
        config = dataclasses.replace(config, relative_predictor=relative_predictor)
    actor = PolicyNet(config)
    missing, unexpected = actor.load_state_dict(setup.prior.state_dict(), strict=False)
    new_params = {"ec_weight", "parallel_weight"} | {k for k in missing if k.startswith("relative.")}
    if unexpected or set(missing) - new_params:
        raise ValueError(f"prior and actor differ: missing {missing}, unexpected {unexpected}")
    if resume_from is not None and resume_from.exists():
        actor.load_state_dict(load_checkpoint(resume_from).model)
        log.info("resuming the policy from %s (rollouts and optimizer restart)", resume_from)
    elif actor.relative is not None and any(k.startswith("relative.") for k in missing):
        _fit_relative(actor, setup, relative_fit_steps)  # only a predictor the prior lacks: never refit one
    if actor.relative is not None:
        actor.relative.requires_grad_(False)  # PPO's gradient through the term is not a prediction loss
    return actor


def _fit_relative(actor: PolicyNet, setup: RLSetup, steps: int) -> None:
    """Fit the actor's relative predictor on every window of the training pieces (see its module)."""
    from liveagent.train.data import build_windows
    from liveagent.train.relative_predictor import fit_relative_predictor

    c = actor.config
    assert actor.relative is not None and actor.musical is not None
    ws = build_windows(
        setup.pieces, window=c.window, mode=c.mode, pitch_min=c.pitch_min, pitch_max=c.pitch_max
    )
    # The same share of key changes the policy trains with (the env's), so a jump in its context reads as one.
    fit = fit_relative_predictor(
        actor.relative, actor.musical.sounding1, ws.performer, ws.position, ws.perf_next,
        steps=steps, seed=setup.seed, key_change_prob=setup.env_config.key_change_prob,
    )  # fmt: skip
    # Kept with the architecture (a new dict: the prior's config must not change): the checkpoint and the
    # exported model card say how the predictor was fitted.
    note = {"steps": steps, **{k: round(v, 4) for k, v in fit.items()}}
    actor.config = dataclasses.replace(c, extra={**c.extra, "relative_fit": note})


def train(recipe: dict[str, Any], out_dir: str | Path, resume: bool = False) -> Path:
    """`liveagent train ppo`: PPO + KL leash from the recipe's ``[ppo]`` table; returns the checkpoint.

    Top-level ``seed`` and ``threads`` win over the table's; ``[env]``, ``[reward]`` and an optional
    ``[robustness]`` table shape the environment (see :func:`~liveagent.train.rl_common.setup_run`).
    """
    from liveagent.env.vector import BatchedAccompanimentEnv

    cfg = from_table(PPOConfig, recipe.get(ALGO), ALGO)
    setup = setup_run(recipe, out_dir, cfg.prior, resume)
    cfg = dataclasses.replace(cfg, seed=setup.seed, threads=setup.threads)
    actor = build_actor(
        setup,
        setup.out / "last.pt" if resume else None,
        cfg.ec_weight,
        cfg.parallel_weight,
        cfg.relative_predictor,
        cfg.relative_fit_steps,
    )
    env = BatchedAccompanimentEnv(
        setup.pieces, cfg.num_envs, setup.env_config, seed=setup.seed, copy_obs=False
    )
    critic = make_critic(actor, cfg)
    prog = RunProgress(setup.out, cfg.total_steps, ALGO, append=resume)
    try:
        history = train_ppo(cfg, env, actor, setup.prior, critic=critic, progress=prog)
    finally:
        prog.close()
    return finish_run(setup, actor, ALGO, history, extra={"critic": critic.state_dict()})
