"""Ensembles: of reward models (as in RL-Duet) and of policies, exported as ONE ONNX graph.

Reward ensemble: ``K`` discriminators (:mod:`liveagent.train.adversarial`), each with its own seed and its
own bootstrap resample of every rollout, so they disagree where data is thin. The reward is their mean
minus ``disagreement * std``: a decision the models agree is real earns the most, one that only some of
them like earns less (a pessimistic estimate, which blunts the policy's urge to exploit one model's blind
spot; cf. RL-Duet's ensemble of reward models and model-ensemble methods in offline RL).

Policy ensemble: ``M`` PPO + KL policies trained from the same prior with different seeds, exported as a
single graph whose ``logits`` are ``log(mean_i softmax(logits_i))`` (train-core's
:func:`~liveagent.train.export.export_ensemble`): the live engine sees one contract-v1 policy.

Read :func:`train` top to bottom.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from liveagent.music.features import ObservationBuffers
from liveagent.train.adversarial import AdversarialConfig, DiscriminatorReward, real_window_set
from liveagent.train.data import WindowSet
from liveagent.train.networks import PolicyNet
from liveagent.train.ppo import PPOConfig, RolloutLearner, append_action, build_actor, make_critic, train_ppo
from liveagent.train.recipes import from_table
from liveagent.train.rl_common import RLHistory, RunProgress, finish_run, obs_tensors, setup_run

log = logging.getLogger(__name__)

ALGO = "ensemble"
TERM = "reward_ensemble"
"""Name of the learned reward term in ``info["reward_terms"]``."""


@dataclass
class EnsembleConfig:
    """The ``[ensemble]`` table (the discriminators' own settings come from ``[adversarial]``)."""

    policies: int = 3
    """Policies trained (PPO + KL, seeds ``seed + i``) and averaged in the exported graph."""
    reward_models: int = 3
    """Discriminators in each policy's reward ensemble (0 = PPO + KL with the theory terms only)."""
    disagreement: float = 0.5
    """Reward = mean - disagreement * std over the reward models (0 = plain average)."""
    bootstrap: bool = True
    """Each reward model trains on its own resample (with replacement) of every rollout."""
    export: bool = True
    """Export the policy ensemble to ``out/ensemble.onnx`` (checked for parity) at the end."""


class RewardEnsemble:
    """Several discriminators as one learned term (mean - disagreement * std) and one rollout learner."""

    def __init__(
        self,
        real: WindowSet,
        *,
        window: int,
        steps_per_bar: int,
        adversarial: AdversarialConfig,
        count: int,
        disagreement: float,
        bootstrap: bool = True,
        seed: int = 0,
    ) -> None:
        if count < 1:
            raise ValueError("a reward ensemble needs at least one model")
        self.name = TERM
        self.members = [
            DiscriminatorReward(
                real,
                window=window,
                steps_per_bar=steps_per_bar,
                config=adversarial,
                seed=seed + 7919 * i,
                name=f"d{i}",
            )
            for i in range(count)
        ]
        self.disagreement = disagreement
        self.bootstrap = bootstrap
        self.rng = np.random.default_rng(seed)

    @torch.no_grad()
    def scores(
        self, performer: torch.Tensor, agent_next: torch.Tensor, position: torch.Tensor
    ) -> torch.Tensor:
        """``[K, B]``: each model's reward for each decision."""
        return torch.stack([m.score(performer, agent_next, position) for m in self.members])

    @torch.no_grad()
    def score(
        self, performer: torch.Tensor, agent_next: torch.Tensor, position: torch.Tensor
    ) -> torch.Tensor:
        """Mean over models minus ``disagreement`` times their standard deviation."""
        s = self.scores(performer, agent_next, position)
        if s.shape[0] == 1:
            return s[0]
        return s.mean(0) - self.disagreement * s.std(0, unbiased=False)

    def env_term(self, obs: ObservationBuffers, actions: np.ndarray) -> np.ndarray:
        """The env's learned-term hook: ``fn(obs, actions) -> float[N]``."""
        perf, agent, pos = obs_tensors(obs)
        a = torch.from_numpy(np.asarray(actions, dtype=np.int64))
        return self.score(perf, append_action(agent, a), pos).numpy()

    def update(
        self, performer: torch.Tensor, agent_next: torch.Tensor, position: torch.Tensor
    ) -> dict[str, float]:
        """Train every model on (a bootstrap resample of) the rollout; report mean metrics."""
        m = performer.shape[0]
        sums: dict[str, float] = {}
        for member in self.members:
            idx = torch.from_numpy(self.rng.integers(0, m, size=m)) if self.bootstrap else torch.arange(m)
            for k, v in member.update(performer[idx], agent_next[idx], position[idx]).items():
                sums[k] = sums.get(k, 0.0) + v
        out = {k: v / len(self.members) for k, v in sums.items()}
        # Disagreement on this rollout: how unsure the ensemble is about the policy's own decisions.
        out["std"] = float(self.scores(performer, agent_next, position).std(0, unbiased=False).mean())
        return out


def train(recipe: dict[str, Any], out_dir: str | Path, resume: bool = False) -> Path:
    """`liveagent train ensemble`: M policies (PPO + KL + reward ensemble), exported as one ONNX graph.

    Returns ``out/ensemble.onnx`` when exported (``[ensemble] export = true``), else ``out/last.pt``
    (member 0, with every member's weights in ``extra["members"]``). ``--resume`` skips members whose
    checkpoint ``out/member{i}.pt`` exists.
    """
    from liveagent.env.vector import BatchedAccompanimentEnv
    from liveagent.train.checkpoint import load_checkpoint, save_checkpoint
    from liveagent.train.data import DataConfig, load_pieces
    from liveagent.train.export import export_ensemble
    from liveagent.train.model_card import dataset_name

    # 1. Config, prior, pieces.
    ppo_cfg = from_table(PPOConfig, recipe.get("ppo"), "ppo")
    adv_cfg = from_table(AdversarialConfig, recipe.get("adversarial"), "adversarial")
    cfg = from_table(EnsembleConfig, recipe.get(ALGO), ALGO)
    setup = setup_run(recipe, out_dir, ppo_cfg.prior, resume)
    net_cfg = setup.prior.config
    data_cfg = from_table(DataConfig, recipe.get("data"), "data")
    clean = load_pieces(data_cfg, "train", setup.env_config.grid)
    real = real_window_set(clean, net_cfg, data_cfg.max_shift if data_cfg.transpose else 0)

    # 2. Each member: its own seed, its own reward ensemble, PPO + KL from the prior.
    members: list[PolicyNet] = []
    history = RLHistory([])
    prog = RunProgress(setup.out, ppo_cfg.total_steps * cfg.policies, ALGO, append=resume)
    try:
        for i in range(cfg.policies):
            path = setup.out / f"member{i}.pt"
            if resume and path.exists():
                members.append(load_checkpoint(path).build_net())
                log.info("ensemble: member %d loaded from %s", i, path)
                continue
            seed = setup.seed + i
            member_cfg = dataclasses.replace(ppo_cfg, seed=seed, threads=setup.threads)
            learners: list[RolloutLearner] = []
            terms = {}
            if cfg.reward_models > 0:
                rewards = RewardEnsemble(
                    real,
                    window=net_cfg.window,
                    steps_per_bar=net_cfg.steps_per_bar,
                    adversarial=adv_cfg,
                    count=cfg.reward_models,
                    disagreement=cfg.disagreement,
                    bootstrap=cfg.bootstrap,
                    seed=seed,
                )
                learners.append(rewards)
                terms[TERM] = (adv_cfg.reward_coef, rewards.env_term)
            env = BatchedAccompanimentEnv(
                setup.pieces,
                ppo_cfg.num_envs,
                setup.env_config,
                learned_terms=terms,
                seed=seed,
                copy_obs=False,
            )
            actor = build_actor(setup)
            offset = i * ppo_cfg.total_steps

            def member_progress(step: int, row: dict[str, float], offset: int = offset, i: int = i) -> None:
                prog(offset + step, row | {"step": float(offset + step), "member": float(i)})

            h = train_ppo(
                member_cfg, env, actor, setup.prior, critic=make_critic(actor, member_cfg),
                learners=learners, progress=member_progress,
            )  # fmt: skip
            history.rows.extend(h.rows)
            save_checkpoint(path, net=actor, algo=ALGO, step=ppo_cfg.total_steps, recipe=recipe)
            members.append(actor.eval())
    finally:
        prog.close()

    # 3. One checkpoint with every member, and ONE ONNX graph averaging their probabilities.
    extra = {"members": [m.state_dict() for m in members]}
    last = finish_run(setup, members[0], ALGO, history, extra=extra)
    if not cfg.export:
        return last
    result = export_ensemble(
        members,
        setup.out / "ensemble.onnx",
        algo=ALGO,
        dataset=dataset_name(recipe),
        recipe=recipe,
        pieces=clean,
    )
    log.info("ensemble of %d policies exported to %s", len(members), result.onnx_path)
    return result.onnx_path
