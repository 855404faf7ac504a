"""Pieces shared by the RL algorithms (DQN, PPO, adversarial, ensembles), kept small and testable.

Each algorithm file reads top to bottom on its own (CleanRL style); what lives here is what would
otherwise be copied between them and is worth a unit test on its own: the replay ring buffer, GAE, the
epsilon schedule, masked distributions over the 130 tokens, observation conversion, and a compact token
encoder used for critics and discriminators.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from liveagent.music.features import ObservationBuffers
from liveagent.music.tokens import VOCAB_SIZE

log = logging.getLogger(__name__)

MASKED_LOGIT = -1e9
"""Logit given to forbidden tokens: finite (no NaN in softmax/KL), but far below any real logit."""


ObsTensors = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (fixed seeds are part of the recipe contract)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def obs_tensors(obs: ObservationBuffers) -> ObsTensors:
    """Zero-copy torch views of an observation (int64 arrays stay int64)."""
    return (torch.from_numpy(obs.performer), torch.from_numpy(obs.agent), torch.from_numpy(obs.position))


def masked_logits(logits: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Replace forbidden tokens' logits by :data:`MASKED_LOGIT` (``mask`` True = allowed)."""
    if mask is None:
        return logits
    return logits.masked_fill(~mask, MASKED_LOGIT)


def masked_log_softmax(logits: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return torch.log_softmax(masked_logits(logits, mask), dim=-1)


def categorical_entropy(logp: torch.Tensor) -> torch.Tensor:
    """Entropy of categorical rows given their log-probabilities (masked entries contribute 0)."""
    return -(logp.exp() * logp).sum(-1)


def kl_categorical(logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    """Exact ``KL(p || q)`` per row over the vocabulary, from log-probabilities."""
    return (logp.exp() * (logp - logq)).sum(-1)


def sample_from_logp(logp: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One token per row from log-probabilities (Gumbel-max: one vectorized call, no Python loop)."""
    u = torch.rand(logp.shape, generator=generator).clamp_(1e-10, 1.0)
    return torch.argmax(logp - torch.log(-torch.log(u)), dim=-1)


def linear_schedule(start: float, end: float, duration: int, t: int) -> float:
    """Linear interpolation from ``start`` to ``end`` over ``duration`` steps, then flat at ``end``."""
    if duration <= 0:
        return end
    frac = min(max(t / duration, 0.0), 1.0)
    return start + frac * (end - start)


def compute_gae(
    rewards: npt.NDArray[np.float32],
    values: npt.NDArray[np.float32],
    dones: npt.NDArray[np.float32],
    last_values: npt.NDArray[np.float32],
    gamma: float,
    lam: float,
    out_advantages: npt.NDArray[np.float32] | None = None,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Generalized advantage estimation (Schulman et al. 2016) over a ``[T, N]`` rollout.

    ``dones[t]`` is 1 where transition ``t`` ended its episode (the env reset after it), so neither the
    value nor the advantage of the next state is bootstrapped through it. ``last_values`` are the
    critic's values of the observation after the last step. Returns ``(advantages, returns)`` with
    ``returns = advantages + values`` (the critic's regression target).
    """
    n_steps = rewards.shape[0]
    adv = np.empty_like(rewards) if out_advantages is None else out_advantages
    last = np.zeros_like(last_values)
    for t in range(n_steps - 1, -1, -1):
        next_values = last_values if t == n_steps - 1 else values[t + 1]
        nonterminal = 1.0 - dones[t]
        delta = rewards[t] + gamma * next_values * nonterminal - values[t]
        last = delta + gamma * lam * nonterminal * last
        adv[t] = last
    return adv, adv + values


class ReplayBuffer:
    """A preallocated numpy ring buffer of transitions for off-policy learning (DQN).

    Tokens are stored as ``uint8`` (the vocabulary has 130 entries), which cuts memory 8x against int64
    so a large capacity fits; :meth:`sample` returns int64 torch tensors ready for the network. Nothing
    is allocated after construction except the sampled batch.
    """

    def __init__(self, capacity: int, window: int, n_actions: int = VOCAB_SIZE) -> None:
        if capacity < 1:
            raise ValueError("replay capacity must be positive")
        self.capacity = capacity
        self.performer = np.zeros((capacity, window), dtype=np.uint8)
        self.agent = np.zeros((capacity, window), dtype=np.uint8)
        self.position = np.zeros(capacity, dtype=np.int16)
        self.action = np.zeros(capacity, dtype=np.int64)
        self.reward = np.zeros(capacity, dtype=np.float32)
        self.next_performer = np.zeros((capacity, window), dtype=np.uint8)
        self.next_agent = np.zeros((capacity, window), dtype=np.uint8)
        self.next_position = np.zeros(capacity, dtype=np.int16)
        self.done = np.zeros(capacity, dtype=np.float32)
        self.next_mask = np.ones((capacity, n_actions), dtype=bool)
        self.pos = 0
        """Index the next transition is written at."""
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(
        self,
        obs: ObservationBuffers,
        actions: npt.ArrayLike,
        rewards: npt.ArrayLike,
        next_obs: ObservationBuffers,
        dones: npt.ArrayLike,
        next_mask: npt.NDArray[np.bool_] | None = None,
        keep: npt.NDArray[np.bool_] | None = None,
    ) -> None:
        """Append a batch of ``B`` transitions (one per environment), wrapping around when full.

        ``keep`` (bool[B]) drops rows that are not real transitions (e.g. the step a vector env spends
        resetting).
        """
        rows = np.arange(len(np.atleast_1d(np.asarray(dones))))
        if keep is not None:
            rows = rows[keep]
        n = rows.size
        if n == 0:
            return
        if n > self.capacity:
            rows = rows[-self.capacity :]
            n = self.capacity
        idx = (self.pos + np.arange(n)) % self.capacity
        self.performer[idx] = obs.performer[rows]
        self.agent[idx] = obs.agent[rows]
        self.position[idx] = obs.position[rows]
        self.action[idx] = np.asarray(actions)[rows]
        self.reward[idx] = np.asarray(rewards)[rows]
        self.next_performer[idx] = next_obs.performer[rows]
        self.next_agent[idx] = next_obs.agent[rows]
        self.next_position[idx] = next_obs.position[rows]
        self.done[idx] = np.asarray(dones, dtype=np.float32)[rows]
        self.next_mask[idx] = True if next_mask is None else next_mask[rows]
        self.pos = int((self.pos + n) % self.capacity)
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """A uniform random batch (with replacement) as torch tensors."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        i = rng.integers(0, self.size, size=batch_size)

        def long(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(a[i].astype(np.int64))

        return {
            "performer": long(self.performer),
            "agent": long(self.agent),
            "position": long(self.position),
            "action": torch.from_numpy(self.action[i]),
            "reward": torch.from_numpy(self.reward[i]),
            "next_performer": long(self.next_performer),
            "next_agent": long(self.next_agent),
            "next_position": long(self.next_position),
            "done": torch.from_numpy(self.done[i]),
            "next_mask": torch.from_numpy(self.next_mask[i]),
        }


@dataclass(frozen=True)
class EncoderConfig:
    """A compact encoder of the contract arrays for critics, discriminators and test-sized policies."""

    window: int = 32
    """Steps of history per line (must match the observation window)."""
    steps_per_bar: int = 16
    """Number of distinct ``position`` values."""
    embed: int = 16
    """Token embedding size (shared table for performer and agent lines)."""
    hidden: int = 128
    """Width of the two hidden layers."""
    out: int = 1
    """Output size (1 for a value or a discriminator logit, 130 for logits/Q values)."""


class TokenEncoder(nn.Module):
    """Embed both windows and the bar position, flatten, two ReLU layers, a linear head.

    Deliberately the same shape of model as a small policy MLP: cheap on CPU, and it sees exactly what
    the policy sees, so a critic or discriminator built on it cannot use information the policy lacks.
    """

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.tokens = nn.Embedding(VOCAB_SIZE, config.embed)
        self.position = nn.Embedding(config.steps_per_bar, config.embed)
        self.body = nn.Sequential(
            nn.Linear((2 * config.window + 1) * config.embed, config.hidden),
            nn.ReLU(),
            nn.Linear(config.hidden, config.hidden),
            nn.ReLU(),
        )
        self.head = nn.Linear(config.hidden, config.out)

    def forward(self, performer: torch.Tensor, agent: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        """Scores ``[B, out]``; longer windows than ``config.window`` are cut to their last steps."""
        b = performer.shape[0]
        w = self.config.window
        x = torch.cat(
            (
                self.tokens(performer[:, -w:]).reshape(b, -1),
                self.tokens(agent[:, -w:]).reshape(b, -1),
                self.position(position.remainder(self.config.steps_per_bar)),
            ),
            dim=1,
        )
        return self.head(self.body(x))


def freeze(module: nn.Module) -> nn.Module:
    """Eval mode and no gradients: the frozen MLE prior of the KL leash."""
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


ProgressFn = Callable[[int, dict[str, float]], None]
"""Called by the training loops as ``progress(global_step, metrics)`` once per iteration."""


class VectorEnv(Protocol):
    """What the algorithms need of the batched environment (``liveagent.env.vector``).

    ``reset`` and ``step`` may return the same (in place updated) :class:`ObservationBuffers` every call:
    the algorithms copy what they keep. ``info["action_mask"]`` (bool ``[N, 130]``) is the mask for the
    *next* decision; ``info["reward_terms"]`` maps term names to ``[N]`` arrays. Episodes reset by
    themselves (autoreset) and the returned observation is then the new episode's first one.
    """

    num_envs: int

    def reset(self, *, seed: int | None = None) -> tuple[ObservationBuffers, dict]: ...

    def step(
        self, actions: npt.NDArray[np.int64]
    ) -> tuple[ObservationBuffers, np.ndarray, np.ndarray, np.ndarray, dict]: ...


def copy_obs(src: ObservationBuffers, dst: ObservationBuffers) -> ObservationBuffers:
    """Copy ``src`` into the preallocated ``dst`` (an env may overwrite its buffers on the next step)."""
    np.copyto(dst.performer, src.performer)
    np.copyto(dst.agent, src.agent)
    np.copyto(dst.position, src.position)
    return dst


def action_mask_of(info: dict, num_envs: int, n_actions: int = VOCAB_SIZE) -> npt.NDArray[np.bool_]:
    """The env's ``info["action_mask"]`` or all-True when it gives none."""
    mask = info.get("action_mask")
    if mask is None:
        return np.ones((num_envs, n_actions), dtype=bool)
    return np.asarray(mask, dtype=bool)


@dataclass
class RLHistory:
    """What a training loop reports back: one metrics row per iteration (also written as JSONL by the CLI)."""

    rows: list[dict[str, float]]
    """Per-iteration metrics; every row has ``step`` and ``reward`` (mean env reward per step)."""

    def rewards(self) -> npt.NDArray[np.float64]:
        return np.array([r["reward"] for r in self.rows], dtype=np.float64)

    def first_last(self, frac: float = 0.2) -> tuple[float, float]:
        """Mean reward of the first and the last ``frac`` of iterations ("does reward rise?")."""
        r = self.rewards()
        k = max(1, int(len(r) * frac))
        return float(r[:k].mean()), float(r[-k:].mean())


def theory_reward(
    rewards: npt.ArrayLike, reward_terms: dict[str, np.ndarray], learned_names: set[str]
) -> npt.NDArray[np.float32]:
    """The env's reward without its learned terms: the music-theory part, comparable across algorithms."""
    out = np.asarray(rewards, dtype=np.float32).copy()
    for name in learned_names:
        if name in reward_terms:
            out -= reward_terms[name]
    return out


class LearnedEnv(VectorEnv, Protocol):
    """A vector env with the learned-term hook: ``learned_terms[name] = (weight, fn(obs, actions))``."""

    learned_terms: dict[str, tuple[float, Callable[[ObservationBuffers, np.ndarray], np.ndarray]]]


def prior_log_prob_term(
    prior: nn.Module, mask: npt.NDArray[np.bool_] | None = None
) -> Callable[[ObservationBuffers, np.ndarray], np.ndarray]:
    """The learned term ``log p_prior(a|s)`` (RL Tuner's reward, the KL leash's per-step form) for the env.

    ``mask`` (bool[130]) renormalizes the prior over the tokens the agent may play.
    """
    mask_t = None if mask is None else torch.from_numpy(np.asarray(mask, dtype=bool))

    def term(obs: ObservationBuffers, actions: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            logp = masked_log_softmax(prior(*obs_tensors(obs)), mask_t)
            a = torch.from_numpy(np.asarray(actions, dtype=np.int64))[:, None]
            return logp.gather(1, a).squeeze(1).numpy()

    return term


# ---------------------------------------------------------------------------------------------------------
# Recipe glue shared by the RL entry points: `liveagent train dqn|ppo|adversarial|ensemble --config R.toml`


@dataclass
class EnvTable:
    """The ``[env]`` table of an RL recipe (the window, mode and pitch range come from the prior's net)."""

    phrase_steps: int = 64
    """Episode length in steps (bar-aligned phrases; 0 = whole pieces). Short phrases = more resets = more
    varied openings per rollout, and truncation is bootstrapped."""
    transpose: bool = True
    """Draw each episode in a random key that keeps the real part in range."""
    phrase_history: bool = True
    """A phrase starts with the piece's real history in the window (issue 8: an empty history made half
    the decisions look like a piece's opening, and a melody note tied over the cut read as silence)."""
    late_onset_prob: float = 0.0
    """Follow/react policies: share of the performer's onsets at t hidden from the decision (timing noise)."""
    key_change_prob: float = 0.0
    """Share of episodes whose performer jumps to a new key at a bar line inside them (adaptation)."""


@dataclass
class RLSetup:
    """Everything an RL entry point needs, built once from the recipe."""

    out: Path
    recipe: dict[str, Any]
    seed: int
    threads: int
    prior_path: Path
    prior: Any
    """The frozen MLE prior (a PolicyNet in eval mode, no gradients)."""
    pieces: list[Any]
    """Training pieces (clean, plus perturbed copies when the recipe has a ``[robustness]`` table)."""
    env_config: Any
    """The liveagent.env.config.EnvConfig matching the prior's contract."""


def setup_run(recipe: dict[str, Any], out_dir: str | Path, prior: str, resume: bool) -> RLSetup:
    """Seed, threads, prior (a checkpoint path, or the recipe's ``[mle]`` trained first into ``out/mle``),
    training pieces (+ robustness perturbations) and the env config."""
    from liveagent.env.config import EnvConfig
    from liveagent.env.rewards import RewardConfig
    from liveagent.music.tokens import Grid
    from liveagent.train import mle
    from liveagent.train.checkpoint import load_checkpoint
    from liveagent.train.data import DataConfig, load_pieces
    from liveagent.train.logging_utils import set_threads
    from liveagent.train.recipes import from_table, write_toml
    from liveagent.train.robustness import PerturbConfig, perturb_pieces

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seed = int(recipe.get("seed", 1))
    threads = int(recipe.get("threads", 1))
    set_threads(threads)
    seed_everything(seed)
    write_toml(recipe, out / "recipe.toml")
    if prior:
        prior_path = Path(prior)
    else:
        done = out / "mle" / "best.pt"
        prior_path = done if (resume and done.exists()) else mle.train(recipe, out / "mle", resume)
        log.info("prior: trained by the recipe's [mle] table into %s", prior_path)
    ck = load_checkpoint(prior_path)
    prior_net = freeze(ck.build_net())
    net_cfg = ck.net_config
    grid = Grid(net_cfg.steps_per_beat, net_cfg.beats_per_bar)
    data_cfg = from_table(DataConfig, recipe.get("data"), "data")
    pieces = load_pieces(data_cfg, "train", grid)
    if "robustness" in recipe:
        pieces = perturb_pieces(pieces, from_table(PerturbConfig, recipe["robustness"], "robustness"), seed)
    env_tab = from_table(EnvTable, recipe.get("env"), "env")
    env_config = EnvConfig(
        window=net_cfg.window,
        mode=net_cfg.mode,  # type: ignore[arg-type]
        grid=grid,
        pitch_min=net_cfg.pitch_min,
        pitch_max=net_cfg.pitch_max,
        transpose=env_tab.transpose,
        phrase_steps=env_tab.phrase_steps or None,
        phrase_history=env_tab.phrase_history,
        late_onset_prob=env_tab.late_onset_prob,
        key_change_prob=env_tab.key_change_prob,
        reward=from_table(RewardConfig, recipe.get("reward"), "reward"),
    )
    return RLSetup(out, recipe, seed, threads, prior_path, prior_net, pieces, env_config)


class RunProgress:
    """``progress(step, row)`` for the training loops: a JSONL row per iteration and a tqdm bar."""

    def __init__(self, out: Path, total: int, desc: str, append: bool = False) -> None:
        from liveagent.train.logging_utils import RunLogger, progress

        self.runlog = RunLogger(out, append=append)
        self.bar = progress(total, desc=desc)
        self.last_step = 0
        self.last_row: dict[str, float] = {}

    def __call__(self, step: int, row: dict[str, float]) -> None:
        self.runlog.log(step, "train", **{k: v for k, v in row.items() if k != "step"})
        self.bar.update(step - self.last_step)
        self.bar.set_postfix(reward=f"{row.get('reward', float('nan')):.3f}")
        self.last_step = step
        self.last_row = row

    def close(self) -> None:
        self.bar.close()
        self.runlog.close()


def finish_run(
    setup: RLSetup,
    net: nn.Module,
    algo: str,
    history: RLHistory,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Save ``last.pt`` (the policy + algorithm state in ``extra``), draw ``curves.png``; return the path."""
    from liveagent.train.checkpoint import save_checkpoint
    from liveagent.train.logging_utils import PLOT_FILE
    from liveagent.train.plot import plot_curves

    first, last = history.first_last() if history.rows else (float("nan"), float("nan"))
    metrics = {"reward_first": round(first, 5), "reward_last": round(last, 5), "prior": str(setup.prior_path)}
    path = save_checkpoint(
        setup.out / "last.pt",
        net=net,  # type: ignore[arg-type]
        algo=algo,
        step=int(history.rows[-1]["step"]) if history.rows else 0,
        recipe=setup.recipe,
        metrics=metrics,
        extra=extra or {},
    )
    metrics_file = setup.out / "metrics.jsonl"
    if metrics_file.exists():
        plot_curves(
            metrics_file, setup.out / PLOT_FILE, title=f"{algo}: {setup.recipe.get('name', setup.out.name)}"
        )
    log.info("%s done: reward %.4f -> %.4f, checkpoint %s", algo, first, last, path)
    return path
