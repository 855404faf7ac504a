"""ONNX (onnxruntime, as `serve` runs it) against torch eager on the same policy: p50/p99 and their ratio.

``python -m liveagent.train.bench_torch [--json] [--n N] [--policy NAME]``. `liveagent bench` runs this as
a subprocess and reads the JSON line it prints, because liveagent/live must never import torch or
liveagent.train (the live process stays small and starts fast).

The policy is the real one when it can be: the checkpoint named in ``export/NAME.json`` (its
``training.checkpoint``) rebuilt as a :class:`~liveagent.train.networks.PolicyNet` (with the card's onset
boost), timed against the shipped ``export/NAME.onnx`` when that file matches it (parity), else against a
fresh export of it.
Without the checkpoint, a PolicyNet of the card's architecture (or the default :class:`NetConfig`) with
seeded random weights is exported with :func:`liveagent.train.export.export_onnx` (latency does not depend
on the weights). Both sides run one observation at a time on one thread.
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from liveagent.train.checkpoint import load_checkpoint
from liveagent.train.export import OnsetBoost, export_onnx
from liveagent.train.export_check import OUTPUT_NAME, check_parity, onnx_session, random_observations
from liveagent.train.model_card import contract_metadata
from liveagent.train.networks import NetConfig, PolicyNet, param_count


def export_dir() -> Path:
    """The installed ``liveagent.export`` package folder (the repository's export/)."""
    return Path(str(importlib.resources.files("liveagent.export")))


def _find(path: str) -> Path | None:
    """A path from a model card: relative to the working directory, else to the repository."""
    for p in (Path(path), export_dir().parent / path):
        if p.is_file():
            return p
    return None


def load_net(name: str = "default") -> tuple[nn.Module, NetConfig, Path | None, str]:
    """(module in eval mode, its config, the shipped ONNX file if it is this module, where it came from).

    A checkpoint is wrapped in :class:`~liveagent.train.export.OnsetBoost` when its card says the export
    was, so the torch module computes exactly what the shipped file does.
    """
    card_path = export_dir() / f"{name}.json"
    card: dict[str, Any] = json.loads(card_path.read_text()) if card_path.is_file() else {}
    training = card.get("training", {})
    ckpt = _find(str(training.get("checkpoint", ""))) if training.get("checkpoint") else None
    if ckpt is not None:
        net = load_checkpoint(ckpt).build_net()
        boost = float(training.get("onset_boost", 0.0))
        module: nn.Module = OnsetBoost(net, boost).eval() if boost else net
        source = f"checkpoint {ckpt}" + (f" (onset boost {boost:g})" if boost else "")
        shipped = export_dir() / card.get("file", f"{name}.onnx")
        if shipped.is_file():
            obs = random_observations(200, net.config, seed=7)
            if check_parity(module, onnx_session(shipped), obs)["ok"]:
                return module, net.config, shipped, source
        return module, net.config, None, source
    torch.manual_seed(0)
    if card.get("network"):
        cfg = NetConfig.from_dict(card["network"])
        return PolicyNet(cfg).eval(), cfg, None, f"random weights, architecture of {card_path.name}"
    return PolicyNet(NetConfig()).eval(), NetConfig(), None, "random weights, default NetConfig"


def _percentiles_us(ns: np.ndarray) -> dict[str, float]:
    q = np.percentile(ns, [50, 99, 99.9]) / 1e3
    return {
        "n": int(ns.size),
        "p50": round(float(q[0]), 1),
        "p99": round(float(q[1]), 1),
        "p99.9": round(float(q[2]), 1),
        "max": round(float(ns.max()) / 1e3, 1),
    }


def _time_calls(fn: Callable[[], object], n: int, warmup: int = 200) -> np.ndarray:
    for _ in range(warmup):
        fn()
    out = np.empty(n, dtype=np.float64)
    for i in range(n):
        t0 = time.perf_counter_ns()
        fn()
        out[i] = time.perf_counter_ns() - t0
    return out


def compare(name: str = "default", n: int = 5000) -> dict[str, Any]:
    """Time ``n`` single-observation calls of the policy in onnxruntime and in torch eager."""
    import onnxruntime as ort

    torch.set_num_threads(1)
    net, cfg, onnx_path, source = load_net(name)
    with tempfile.TemporaryDirectory() as tmp:
        path = onnx_path or export_onnx(
            net, cfg, Path(tmp) / "bench.onnx", contract_metadata(cfg, algo="bench", dataset="none")
        )
        sess = onnx_session(path)
        parity = check_parity(net, sess, random_observations(500, cfg, seed=11))
    obs = random_observations(1, cfg, seed=1)
    feed = obs.as_feed()
    x = tuple(torch.from_numpy(a) for a in (obs.performer, obs.agent, obs.position))
    t_onnx = _time_calls(lambda: sess.run([OUTPUT_NAME], feed), n)
    with torch.inference_mode():
        t_torch = _time_calls(lambda: net(*x), n)
    o, t = _percentiles_us(t_onnx), _percentiles_us(t_torch)
    return {
        "policy": name,
        "weights": source,
        "onnx_file": str(onnx_path) if onnx_path else "fresh export (liveagent.train.export)",
        "model": f"PolicyNet window={cfg.window} embed={cfg.embed_dim} hidden={cfg.hidden}x{cfg.layers} "
        f"({param_count(net)} params)",
        "onnx_us": o,
        "torch_eager_us": t,
        "speedup_p50": round(t["p50"] / o["p50"], 2) if o["p50"] else None,
        "speedup_p99": round(t["p99"] / o["p99"], 2) if o["p99"] else None,
        "max_abs_diff": parity["max_abs_diff"],
        "argmax_agreement": parity["argmax_agreement"],
        "threads": 1,
        "torch": torch.__version__,
        "onnxruntime": ort.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m liveagent.train.bench_torch", description=__doc__)
    parser.add_argument("--policy", default="default", help="export name whose card and checkpoint to use")
    parser.add_argument("--n", type=int, default=5000, help="timed calls per runtime")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line")
    args = parser.parse_args(argv)
    res = compare(args.policy, n=max(1, args.n))
    if args.json:
        print(json.dumps(res))
        return 0
    o, t = res["onnx_us"], res["torch_eager_us"]
    print(f"{res['model']} from {res['weights']}; ONNX: {res['onnx_file']}")
    print(f"onnxruntime  p50 {o['p50']:.1f} us  p99 {o['p99']:.1f} us")
    print(f"torch eager  p50 {t['p50']:.1f} us  p99 {t['p99']:.1f} us")
    print(f"ratio torch/onnx: p50 {res['speedup_p50']}x, p99 {res['speedup_p99']}x")
    print(f"max |logits diff| {res['max_abs_diff']:.2e}, argmax agreement {res['argmax_agreement']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
