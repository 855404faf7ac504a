"""DQN as in RL Tuner (Jaques et al. 2017): music-theory reward + c * log p_prior(a|s), Double DQN.

Reads top to bottom, CleanRL style: the config, then one function that builds storage once and runs the
loop. The Q network is a :class:`~liveagent.train.networks.PolicyNet` whose 130 outputs are Q values
(the contract exports them as ``logits``; greedy decoding = argmax Q). As in RL Tuner it starts from the
MLE prior's weights, and the frozen prior supplies ``log p_prior(a|s)`` in the reward so the policy keeps
what it learned from Bach while the theory terms correct it.

- Experience replay: a preallocated numpy ring buffer (:class:`~liveagent.train.rl_common.ReplayBuffer`).
- Target network, refreshed by Polyak averaging (``tau``) every ``target_every`` updates.
- Double DQN (van Hasselt et al. 2016): the online network picks the next action, the target values it.
- Epsilon-greedy with a linear schedule; exploration draws uniformly among *allowed* tokens, and the
  max over next actions respects the env's action mask.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional

from liveagent.music.features import ObservationBuffers
from liveagent.train.checkpoint import load_checkpoint
from liveagent.train.networks import PolicyNet
from liveagent.train.recipes import from_table
from liveagent.train.rl_common import (
    MASKED_LOGIT,
    LearnedEnv,
    ProgressFn,
    ReplayBuffer,
    RLHistory,
    RunProgress,
    action_mask_of,
    copy_obs,
    finish_run,
    linear_schedule,
    obs_tensors,
    prior_log_prob_term,
    seed_everything,
    setup_run,
    theory_reward,
)

log = logging.getLogger(__name__)


@dataclass
class DQNConfig:
    """Hyperparameters of DQN (defaults suit the chorale corpus on 2 CPU cores)."""

    seed: int = 0
    """Seeds torch, numpy and the env."""
    total_steps: int = 200_000
    """Environment steps summed over all envs (one vector step of N envs counts N)."""
    buffer_size: int = 100_000
    """Replay capacity in transitions (tokens are stored as uint8, so 100k is ~15 MB at W=32)."""
    batch_size: int = 128
    """Transitions per gradient step."""
    learning_rate: float = 2.5e-4
    """Adam step size."""
    gamma: float = 0.9
    """Discount; musical credit is short-range, and RL Tuner used 0.5-0.9."""
    tau: float = 0.01
    """Polyak factor of the target update (1.0 = hard copy)."""
    target_every: int = 1
    """Gradient steps between target updates."""
    start_epsilon: float = 0.3
    """Initial exploration rate (low: the Q net starts from the prior, already musical)."""
    end_epsilon: float = 0.01
    """Final exploration rate."""
    exploration_fraction: float = 0.5
    """Fraction of ``total_steps`` over which epsilon decays linearly."""
    learning_starts: int = 2_000
    """Transitions collected before the first gradient step."""
    train_every: int = 1
    """Vector steps between gradient steps."""
    gradient_steps: int = 1
    """Gradient steps each time training happens."""
    double_dqn: bool = True
    """Online net selects, target net evaluates the next action (Double DQN)."""
    prior_coef: float = 0.5
    """c in ``r = r_theory + c * log p_prior(a|s)`` (RL Tuner's 1/c weighting, expressed on the prior)."""
    num_envs: int = 16
    """Environments stepped in lockstep (each vector step adds ``num_envs`` transitions)."""
    prior: str = ""
    """MLE checkpoint of the prior (and the Q net's initial weights); empty = train the recipe's [mle]."""
    init_from_prior: bool = True
    """Start the Q network from the prior's weights (RL Tuner); False = from scratch."""
    max_grad_norm: float = 10.0
    """Gradient clipping."""
    huber: bool = True
    """Huber (smooth L1) TD loss instead of squared error (robust to the prior term's large negatives)."""
    threads: int = 1
    """torch intra-op threads (the machine is shared)."""
    log_every: int = 10
    """Vector steps per metrics row."""
    max_minutes: float = 0.0
    """Stop after this wall time (0 = no limit)."""


PRIOR_TERM = "log_prior"
"""Name of the learned reward term ``c * log p_prior(a|s)`` in ``info["reward_terms"]``."""


def dqn_learned_terms(
    config: DQNConfig, prior: PolicyNet | None, mask: np.ndarray | None = None
) -> dict[str, tuple[float, Callable[[ObservationBuffers, np.ndarray], np.ndarray]]]:
    """The env's learned terms for DQN: ``c * log p_prior(a|s)`` (pass to the env's constructor).

    ``mask`` (the env's action mask, bool[130]) renormalizes the prior over the tokens the agent may
    play, as PPO's leash does: without it the prior's mass outside the range lowers every log-probability
    by a state-dependent amount, a reward the Q network cannot act on.
    """
    if prior is None or config.prior_coef <= 0:
        return {}
    return {PRIOR_TERM: (config.prior_coef, prior_log_prob_term(prior.eval(), mask))}


def scale_q_head(q_net: PolicyNet, scale: float) -> None:
    """Multiply the Q head's output by ``scale`` (weights and bias), keeping its argmax.

    A Q network started from the prior outputs logits (a few nats apart), while its targets are
    discounted sums of rewards: about ``c * log p / (1 - gamma)`` for the prior term alone. Scaling the
    initial head by ``c / (1 - gamma)`` starts the Q values on the reward's scale, so the first TD updates
    correct the policy instead of rescaling it.
    """
    with torch.no_grad():
        q_net.policy_head.weight.mul_(scale)
        q_net.policy_head.bias.mul_(scale)


def train_dqn(
    config: DQNConfig,
    env: LearnedEnv,
    q_net: PolicyNet,
    prior: PolicyNet | None = None,
    progress: ProgressFn | None = None,
) -> RLHistory:
    """Train ``q_net`` in place on ``env`` and return the metrics history.

    ``prior`` (frozen, eval mode) supplies ``log p_prior(a|s)``, added by the env as the learned term
    ``log_prior`` with weight ``prior_coef``; without it the reward is the theory terms alone.
    """
    seed_everything(config.seed)
    torch.set_num_threads(config.threads)
    rng = np.random.default_rng(config.seed)
    n_envs = env.num_envs
    window = q_net.config.window

    # --- storage, allocated once ----------------------------------------------------------------------
    rb = ReplayBuffer(config.buffer_size, window)
    cur = ObservationBuffers.allocate(n_envs, window)
    q_net.eval()  # no dropout in RL: the TD target must not chase noise
    target = copy.deepcopy(q_net).eval()
    for p in target.parameters():
        p.requires_grad_(False)
    if prior is not None:
        prior.eval()
    optimizer = torch.optim.Adam(q_net.parameters(), lr=config.learning_rate)
    rows: list[dict[str, float]] = []
    window_reward = window_total = window_prior = 0.0
    window_count = 0
    last_loss = float("nan")
    updates = 0

    if prior is not None and config.prior_coef > 0 and PRIOR_TERM not in env.learned_terms:
        raise ValueError(
            f"build the env with learned_terms=dqn_learned_terms(config, prior) (no {PRIOR_TERM!r})"
        )
    learned_names = set(env.learned_terms)
    obs, info = env.reset(seed=config.seed)
    mask = action_mask_of(info, n_envs)
    n_iterations = max(1, config.total_steps // n_envs)
    t0 = time.perf_counter()
    for it in range(n_iterations):
        if config.max_minutes > 0 and time.perf_counter() - t0 > 60.0 * config.max_minutes:
            log.warning("dqn: %.1f min budget reached after %d env steps", config.max_minutes, it * n_envs)
            break
        global_step = it * n_envs
        eps = linear_schedule(
            config.start_epsilon,
            config.end_epsilon,
            int(config.exploration_fraction * config.total_steps),
            global_step,
        )
        # --- act: epsilon-greedy among allowed tokens -------------------------------------------------
        with torch.no_grad():
            q = q_net(*obs_tensors(obs)).masked_fill(~torch.from_numpy(mask), MASKED_LOGIT)
            greedy = q.argmax(dim=1).numpy()
        explore = rng.random(n_envs) < eps
        if explore.any():
            noise = np.where(mask, rng.random(mask.shape), -1.0)
            actions = np.where(explore, noise.argmax(axis=1), greedy).astype(np.int64)
        else:
            actions = greedy.astype(np.int64)
        copy_obs(obs, cur)

        # The env adds c * log p_prior(a|s) itself, through its learned-term hook (see below).
        obs, reward, terminated, _truncated, info = env.step(actions)
        mask = action_mask_of(info, n_envs)
        terms = info.get("reward_terms", {})
        # Bootstrap through a cut phrase (truncated) from the state it was cut in; stop at a piece's end.
        final = info.get("final_obs")
        rb.add(cur, actions, reward, final if final is not None else obs, terminated, next_mask=mask)
        window_reward += float(np.mean(theory_reward(reward, terms, learned_names)))
        window_total += float(np.mean(reward))
        if PRIOR_TERM in terms:
            window_prior += float(np.mean(terms[PRIOR_TERM])) / max(config.prior_coef, 1e-12)
        window_count += 1

        # --- learn ------------------------------------------------------------------------------------
        if len(rb) >= config.learning_starts and it % config.train_every == 0:
            for _ in range(config.gradient_steps):
                b = rb.sample(config.batch_size, rng)
                with torch.no_grad():
                    nxt = (b["next_performer"], b["next_agent"], b["next_position"])
                    q_next_target = target(*nxt).masked_fill(~b["next_mask"], MASKED_LOGIT)
                    if config.double_dqn:
                        a_star = (
                            q_net(*nxt).masked_fill(~b["next_mask"], MASKED_LOGIT).argmax(1, keepdim=True)
                        )
                        q_next = q_next_target.gather(1, a_star).squeeze(1)
                    else:
                        q_next = q_next_target.max(1).values
                    td_target = b["reward"] + config.gamma * q_next * (1.0 - b["done"])
                q_taken = q_net(b["performer"], b["agent"], b["position"]).gather(1, b["action"][:, None])
                q_taken = q_taken.squeeze(1)
                if config.huber:
                    loss = functional.smooth_l1_loss(q_taken, td_target)
                else:
                    loss = functional.mse_loss(q_taken, td_target)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(q_net.parameters(), config.max_grad_norm)
                optimizer.step()
                last_loss = float(loss.item())
                updates += 1
                if updates % config.target_every == 0:
                    with torch.no_grad():
                        for tp, p in zip(target.parameters(), q_net.parameters(), strict=True):
                            tp.lerp_(p, config.tau)

        if window_count == config.log_every or it == n_iterations - 1:
            row = {
                "step": float(global_step + n_envs),
                "reward": window_reward / window_count,
                "total_reward": window_total / window_count,
                "prior_logp": window_prior / window_count if prior is not None else float("nan"),
                "epsilon": eps,
                "loss": last_loss,
                "sps": (global_step + n_envs) / max(time.perf_counter() - t0, 1e-9),
            }
            rows.append(row)
            if progress is not None:
                progress(global_step + n_envs, row)
            window_reward = window_total = window_prior = 0.0
            window_count = 0
    log.info("dqn: %d updates, %.0f steps/s", updates, rows[-1]["sps"] if rows else 0.0)
    return RLHistory(rows)


ALGO = "dqn"


def train(recipe: dict[str, Any], out_dir: str | Path, resume: bool = False) -> Path:
    """`liveagent train dqn`: DQN from the recipe's ``[dqn]`` table; returns the checkpoint.

    Top-level ``seed`` and ``threads`` win over the table's; ``[env]``, ``[reward]`` and an optional
    ``[robustness]`` table shape the environment (see :func:`~liveagent.train.rl_common.setup_run`).
    """
    from liveagent.env.vector import BatchedAccompanimentEnv

    cfg = from_table(DQNConfig, recipe.get(ALGO), ALGO)
    setup = setup_run(recipe, out_dir, cfg.prior, resume)
    cfg = dataclasses.replace(cfg, seed=setup.seed, threads=setup.threads)
    q_net = PolicyNet(setup.prior.config)
    if cfg.init_from_prior:
        q_net.load_state_dict(setup.prior.state_dict())
        scale_q_head(q_net, max(cfg.prior_coef, 1e-3) / (1.0 - cfg.gamma))
    last = setup.out / "last.pt"
    if resume and last.exists():
        q_net.load_state_dict(load_checkpoint(last).model)
        log.info("resuming the Q network from %s (replay and optimizer restart)", last)
    env = BatchedAccompanimentEnv(
        setup.pieces,
        cfg.num_envs,
        setup.env_config,
        learned_terms=dqn_learned_terms(cfg, setup.prior, setup.env_config.action_mask()),
        seed=setup.seed,
        copy_obs=False,
    )
    prog = RunProgress(setup.out, cfg.total_steps, ALGO, append=resume)
    try:
        history = train_dqn(cfg, env, q_net, setup.prior, progress=prog)
    finally:
        prog.close()
    return finish_run(setup, q_net, ALGO, history)
