"""Environment steps per second: BatchedAccompanimentEnv against gymnasium's SyncVectorEnv.

Both run N copies of the same task over the same pieces (random transpositions on), driven by the same
pre-drawn random valid actions (REST, HOLD or an onset in the agent's range); each is timed over the same
number of vector steps, best of ``--repeats``, in one run. The ratio is batched / sync.

    .venv/bin/python benchmarks/bench_vector_env.py [--num-envs 16] [--steps 300]
        [--corpus auto|chorales|synthetic]

``auto`` uses the chorale train split when its parse cache exists (else the first parse takes ~45 s) and
synthetic pieces otherwise.
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np
from gymnasium.vector import SyncVectorEnv

from liveagent.env.accompaniment import AccompanimentEnv, EnvConfig
from liveagent.env.vector import BatchedAccompanimentEnv
from liveagent.music.piece import Piece
from liveagent.music.theory import Key
from liveagent.music.tokens import Note, notes_to_tokens

log = logging.getLogger("bench_vector_env")


def synthetic_pieces(n: int = 32, bars: int = 12, seed: int = 0) -> list[Piece]:
    """Chorale-sized random duets: a melody in eighths/quarters over a bass in quarters/halves."""
    rng = np.random.default_rng(seed)
    steps = 16 * bars

    def part(lo: int, hi: int, lengths: tuple[int, ...]) -> np.ndarray:
        notes, t = [], 0
        while t < steps:
            d = int(rng.choice(lengths))
            notes.append(Note(t, d, int(rng.integers(lo, hi))))
            t += d
        return notes_to_tokens(notes, steps)

    return [
        Piece(
            f"syn{i}",
            part(62, 76, (2, 4, 4, 8)),
            part(43, 55, (4, 4, 8)),
            key=Key(int(rng.integers(12)), "major"),
        )
        for i in range(n)
    ]


def chorale_pieces_if_cached() -> list[Piece] | None:
    try:
        from liveagent.music import chorales
    except ImportError:
        return None
    cached = chorales.cache_dir()
    if not cached.is_dir() or not any(cached.iterdir()):
        return None
    return list(chorales.chorale_split("train"))


def time_batched(pieces: list[Piece], cfg: EnvConfig, actions: np.ndarray, seed: int) -> float:
    env = BatchedAccompanimentEnv(pieces, actions.shape[1], cfg)
    env.reset(seed=seed)
    t0 = time.perf_counter()
    for a in actions:
        env.step(a)
    return time.perf_counter() - t0


def time_sync(pieces: list[Piece], cfg: EnvConfig, actions: np.ndarray, seed: int) -> float:
    env = SyncVectorEnv([lambda: AccompanimentEnv(pieces, cfg) for _ in range(actions.shape[1])])
    env.reset(seed=seed)
    t0 = time.perf_counter()
    for a in actions:
        env.step(a)
    elapsed = time.perf_counter() - t0
    env.close()
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--num-envs", type=int, default=16)
    parser.add_argument("--steps", type=int, default=300, help="vector steps per timing")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--corpus", choices=("auto", "chorales", "synthetic"), default="auto")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    pieces = None
    if args.corpus in ("auto", "chorales"):
        pieces = chorale_pieces_if_cached() if args.corpus == "auto" else None
        if args.corpus == "chorales":
            from liveagent.music.chorales import chorale_split

            pieces = list(chorale_split("train"))
    corpus = "chorales (train split)" if pieces else "synthetic"
    if not pieces:
        pieces = synthetic_pieces(seed=args.seed)
    cfg = EnvConfig(window=args.window)
    allowed = np.flatnonzero(cfg.action_mask())
    actions = (
        np.random.default_rng(args.seed).choice(allowed, size=(args.steps, args.num_envs)).astype(np.int64)
    )

    best_b = min(time_batched(pieces, cfg, actions, args.seed) for _ in range(args.repeats))
    best_s = min(time_sync(pieces, cfg, actions, args.seed) for _ in range(args.repeats))
    env_steps = args.steps * args.num_envs
    sps_b, sps_s = env_steps / best_b, env_steps / best_s
    print(
        f"corpus={corpus} pieces={len(pieces)} N={args.num_envs} W={args.window} "
        f"vector_steps={args.steps} best_of={args.repeats}"
    )
    print(f"BatchedAccompanimentEnv: {sps_b:12,.0f} env steps/s")
    print(f"SyncVectorEnv          : {sps_s:12,.0f} env steps/s")
    print(f"ratio batched/sync     : {sps_b / sps_s:12.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
