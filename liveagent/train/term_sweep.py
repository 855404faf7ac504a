"""Sweep the graph's term weights (expected consonance and parallels) of a checkpoint on the valid split.

    python -m liveagent.train.term_sweep runs/anticipate/last.pt 2.19,2.15 2.19,10 3,5

Each ``EC,PAR`` pair sets ``ec_weight`` and ``parallel_weight`` (where the network has them) and plays the
valid split online, greedy, as `liveagent eval` does; one line of figures per pair. A weight chosen here goes
into the recipe's ``[export]`` table; the test split is never used for it.
"""

from __future__ import annotations

import argparse
import logging

import torch

from liveagent.env.evaluate import EvalConfig, evaluate_policy
from liveagent.env.policies import from_meta
from liveagent.music.chorales import chorale_split
from liveagent.train.checkpoint import load_checkpoint
from liveagent.train.networks import TorchPolicy

log = logging.getLogger(__name__)

KEYS = (
    "consonance_pct", "time_consonance_pct", "change_consonance_pct", "parallels_per_100", "not_in_key_pct",
    "density_ratio", "offbeat_pct", "repeated_pct", "tritone_bar2_pct",
)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("pairs", nargs="+", metavar="EC,PAR")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    net = load_checkpoint(args.checkpoint).build_net()
    pieces = chorale_split("valid")
    print("ec par", *KEYS)
    for pair in args.pairs:
        ec, par = (float(v) for v in pair.split(","))
        with torch.no_grad():
            if net.ec_weight is not None:
                net.ec_weight.fill_(ec)
            if net.parallel_weight is not None:
                net.parallel_weight.fill_(par)
        pol = from_meta(pair, TorchPolicy(net), net.config)
        r = evaluate_policy(pol, pieces, EvalConfig(progress=False, rewards=False, kl_to_prior=False))
        print(ec, par, *(f"{r.row[k]:.2f}" for k in KEYS), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
