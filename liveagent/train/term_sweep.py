"""Sweep the graph's term weights (expected consonance and parallels) of a checkpoint on the valid split.

    python -m liveagent.train.term_sweep runs/anticipate/last.pt 2.19,2.15 2.19,10 3,5
    python -m liveagent.train.term_sweep runs/band_anticipate/best.pt 4,25,8   # a band: EC,PAR,BAND_PAR

Each ``EC,PAR`` pair sets ``ec_weight`` and ``parallel_weight`` (where the network has them) and plays the
valid split online, greedy, as `liveagent eval` does (a band checkpoint: as `liveagent eval --band`); one
line of figures per pair. A weight chosen here goes
into the recipe's ``[export]`` table; the test split is never used for it.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import torch

from liveagent.env.evaluate import EvalConfig, evaluate_policy
from liveagent.env.policies import from_meta
from liveagent.music.chorales import chorale_split
from liveagent.train.band_net import is_band
from liveagent.train.checkpoint import Checkpoint, load_checkpoint
from liveagent.train.networks import TorchPolicy

log = logging.getLogger(__name__)

KEYS = (
    "consonance_pct", "time_consonance_pct", "change_consonance_pct", "parallels_per_100", "not_in_key_pct",
    "density_ratio", "offbeat_pct", "off_eighth_pct", "repeated_pct", "tritone_bar2_pct",
    "tritone_bar2_base_pct",
)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("pairs", nargs="+", metavar="EC,PAR")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    ck = load_checkpoint(args.checkpoint)
    if is_band(ck.net_config):
        return _sweep_band(ck, args.checkpoint, args.pairs)
    net = ck.build_net()
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


BAND_KEYS = (
    "alto_consonance_pct", "tenor_consonance_pct", "bass_consonance_pct", "pair_consonance_pct",
    "pair_parallels_per_100", "crossing_pct", "spacing_pct", "alto_notes_per_bar", "bass_notes_per_bar",
    "tritone_bar1_pct", "tritone_bar2_pct",
)  # fmt: skip


def _sweep_band(ck: Checkpoint, checkpoint: str, pairs: list[str]) -> int:
    """A band checkpoint: each pair exported (the band's rows are played by onnxruntime, as `liveagent eval
    --band` plays them) into a scratch folder and played over the valid split's four-part chorales."""
    from liveagent.env.band_eval import band_pieces, band_row
    from liveagent.train.band_export import export_band

    pieces = band_pieces(chorale_split("valid"))
    print("ec par band_par", *BAND_KEYS)
    with tempfile.TemporaryDirectory() as tmp:
        for pair in pairs:
            ec, par, *band_par = (float(v) for v in pair.split(","))
            terms = [float(w) for w in ck.net_config.extra.get("band_terms", (1.0, 4.0, 2.0, 1.0))]
            if band_par:  # a third value: the parallels weight between the voices
                terms[1] = band_par[0]
            weights = {"ec_weight": ec, "parallel_weight": par, "band_terms": terms}
            ck.recipe = ck.recipe | {"export": dict(ck.recipe.get("export", {})) | weights}
            path = export_band(ck, checkpoint, Path(tmp) / "sweep.onnx", n_parity=50).onnx_path
            row = band_row(str(path), pieces)
            print(ec, par, terms[1], *(f"{row.get(k, float('nan')):.2f}" for k in BAND_KEYS), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
