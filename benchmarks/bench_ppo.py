"""PPO throughput (environment steps per second): liveagent's built-in PPO against Stable-Baselines3 PPO.

Same task (``liveagent/Accompany-v0``: the same pieces, env config and reward), same number of envs, same
rollout size (``num_envs * num_steps``), same epochs and minibatch size, same total steps, one process,
one torch thread, measured back to back in one run; the ratio is built-in / SB3. Each side first runs one
untimed iteration (imports, allocations).

- built-in: :func:`liveagent.train.ppo.train_ppo` on :class:`BatchedAccompanimentEnv` (numpy, no Python
  loop over envs), with the policy network that ships (``PolicyNet``, embeddings + MLP), a separate critic,
  the action mask and the exact KL leash to a (here random) prior: the full price of what we train with.
- SB3: ``PPO("MultiInputPolicy")`` on a ``DummyVecEnv`` of ``gym.make("liveagent/Accompany-v0")`` copies
  (SB3 one-hot encodes the MultiDiscrete windows and uses its default 64-64 MLP; no action mask, no KL).

Also reported: the rollout-only rate (collection without the update), where the vector env matters most.

    .venv/bin/python benchmarks/bench_ppo.py [--num-envs 16] [--num-steps 64] [--iterations 3]
        [--window 32] [--pieces 24]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from typing import Any

import gymnasium as gym
import torch

import liveagent.env.registration  # noqa: F401 - registers liveagent/Accompany-v0
from liveagent.env.config import EnvConfig
from liveagent.env.vector import BatchedAccompanimentEnv
from liveagent.train.data import toy_pieces
from liveagent.train.networks import NetConfig, PolicyNet, param_count
from liveagent.train.ppo import PPOConfig, train_ppo

log = logging.getLogger("bench_ppo")


def bench_builtin(pieces: list, env_cfg: EnvConfig, args: argparse.Namespace) -> dict[str, Any]:
    net_cfg = NetConfig(window=args.window, pitch_min=env_cfg.pitch_min, pitch_max=env_cfg.pitch_max)
    actor, prior = PolicyNet(net_cfg), PolicyNet(net_cfg)
    batch = args.num_envs * args.num_steps

    def cfg(iterations: int) -> PPOConfig:
        return PPOConfig(
            total_steps=batch * iterations, num_steps=args.num_steps, num_minibatches=args.minibatches,
            update_epochs=args.epochs, kl_coef=0.1, threads=1,
        )  # fmt: skip

    env = BatchedAccompanimentEnv(pieces, args.num_envs, env_cfg, seed=0, copy_obs=False)
    train_ppo(cfg(1), env, actor, prior)  # warm-up
    t0 = time.perf_counter()
    h = train_ppo(cfg(args.iterations), env, actor, prior)
    wall = time.perf_counter() - t0
    steps = batch * args.iterations
    rollout = sum(r["rollout_s"] for r in h.rows)
    return {
        "steps": steps,
        "wall_s": wall,
        "sps": steps / wall,
        "rollout_sps": steps / rollout,
        "params": param_count(actor),
    }


def bench_sb3(pieces: list, env_cfg: EnvConfig, args: argparse.Namespace) -> dict[str, Any]:
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.vec_env import DummyVecEnv

    class RolloutTimer(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.rollout_s = 0.0
            self._t = 0.0

        def _on_rollout_start(self) -> None:
            self._t = time.perf_counter()

        def _on_rollout_end(self) -> None:
            self.rollout_s += time.perf_counter() - self._t

        def _on_step(self) -> bool:
            return True

    venv = DummyVecEnv(
        [
            lambda: gym.make("liveagent/Accompany-v0", pieces=pieces, config=env_cfg)
            for _ in range(args.num_envs)
        ]
    )
    batch = args.num_envs * args.num_steps
    model = PPO(
        "MultiInputPolicy", venv, n_steps=args.num_steps, batch_size=batch // args.minibatches,
        n_epochs=args.epochs, gamma=0.9, device="cpu", seed=0, verbose=0,
    )  # fmt: skip
    model.learn(total_timesteps=batch)  # warm-up
    timer = RolloutTimer()
    t0 = time.perf_counter()
    model.learn(total_timesteps=batch * args.iterations, callback=timer, reset_num_timesteps=True)
    wall = time.perf_counter() - t0
    steps = batch * args.iterations
    return {
        "steps": steps,
        "wall_s": wall,
        "sps": steps / wall,
        "rollout_sps": steps / timer.rollout_s,
        "params": sum(p.numel() for p in model.policy.parameters()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-envs", type=int, default=16)
    parser.add_argument("--num-steps", type=int, default=64, help="rollout length per env")
    parser.add_argument("--iterations", type=int, default=3, help="timed PPO iterations (rollout + update)")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--minibatches", type=int, default=4)
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--pieces", type=int, default=24, help="toy duets, 8 bars each")
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    pieces = toy_pieces(args.pieces, seed=0)
    env_cfg = EnvConfig(window=args.window, phrase_steps=64)
    ours = bench_builtin(pieces, env_cfg, args)
    sb3 = bench_sb3(pieces, env_cfg, args)
    result = {
        "num_envs": args.num_envs,
        "num_steps": args.num_steps,
        "iterations": args.iterations,
        "builtin": ours,
        "sb3": sb3,
        "ratio_sps": ours["sps"] / sb3["sps"],
        "ratio_rollout_sps": ours["rollout_sps"] / sb3["rollout_sps"],
    }
    print(
        f"PPO, {args.num_envs} envs x {args.num_steps} steps x {args.iterations} iterations "
        f"({args.epochs} epochs, {args.minibatches} minibatches), 1 torch thread"
    )
    for name, r in (("built-in", ours), ("SB3", sb3)):
        print(
            f"  {name:9s} {r['sps']:8.0f} env steps/s overall  {r['rollout_sps']:8.0f} steps/s rollout only  "
            f"({r['params']:,} policy params, {r['wall_s']:.1f} s)"
        )
    print(
        f"  ratio built-in / SB3: {result['ratio_sps']:.2f}x overall, "
        f"{result['ratio_rollout_sps']:.2f}x rollout"
    )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
