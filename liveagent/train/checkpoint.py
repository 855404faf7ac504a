"""Checkpoints: plain state dicts plus config, saved with ``torch.save``, loaded with ``weights_only=True``.

Why this format: a checkpoint must never be able to run code when opened (``weights_only=True`` refuses
arbitrary pickles), so it holds only tensors and JSON-like data (dicts, lists, str, int, float, bool,
None). The network is rebuilt from its :class:`NetConfig` dict, never unpickled.

Layout (``FORMAT = "liveagent.checkpoint/1"``)::

    {
      "format": str, "algo": str, "step": int,
      "net_config": dict,             # NetConfig.to_dict()
      "model": state_dict,            # the PolicyNet (including a value head if any)
      "optimizer": state_dict | None, # for resume
      "rng": dict | None,             # torch / numpy / python RNG states, for resume
      "recipe": dict,                 # the TOML recipe that produced it (copied into the model card)
      "metrics": dict,                # e.g. {"valid_loss": ..., "valid_acc": ...}
      "extra": dict,                  # algorithm-owned state dicts / data (target net, discriminator, ...)
    }

Writes are atomic (temporary file then rename) so a killed run never leaves a torn checkpoint.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from liveagent.train.networks import NetConfig, PolicyNet

FORMAT = "liveagent.checkpoint/1"


@dataclass
class Checkpoint:
    """A loaded checkpoint (see the module docstring for the on-disk layout)."""

    algo: str
    """Algorithm that wrote it: mle, dqn, ppo, adversarial, ensemble, ..."""
    step: int
    """Training progress counter (optimizer steps or env steps: the algorithm decides)."""
    net_config: NetConfig
    """The policy network's architecture and contract identity."""
    model: dict[str, torch.Tensor]
    """The PolicyNet state dict."""
    optimizer: dict[str, Any] | None = None
    """Optimizer state dict, for resume."""
    rng: dict[str, Any] | None = None
    """RNG states from :func:`capture_rng`, for resume."""
    recipe: dict[str, Any] = field(default_factory=dict)
    """The recipe (parsed TOML) that produced it."""
    metrics: dict[str, Any] = field(default_factory=dict)
    """Latest metrics (validation loss, accuracy, reward...)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Algorithm-owned extra state (other networks' state dicts, counters)."""

    def build_net(self, *, eval_mode: bool = True) -> PolicyNet:
        """The PolicyNet with its weights loaded (in eval mode unless told otherwise)."""
        if self.net_config.extra.get("band"):
            from liveagent.train.band_net import BandNet  # lazy: band_net imports networks, as we do

            net: PolicyNet = BandNet(self.net_config)
        else:
            net = PolicyNet(self.net_config)
        net.load_state_dict(self.model)
        return net.eval() if eval_mode else net.train()


def capture_rng() -> dict[str, Any]:
    """Every global RNG state a training loop touches (torch CPU, numpy legacy, python ``random``)."""
    np_state: tuple[Any, ...] = np.random.get_state(legacy=True)  # type: ignore[assignment]
    return {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": np_state[0],
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": _to_lists(random.getstate()),
    }


def restore_rng(state: dict[str, Any]) -> None:
    """Undo :func:`capture_rng` (for an exact resume)."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        (n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    random.setstate(_to_tuples(state["python"]))


def _to_lists(x: Any) -> Any:
    return [_to_lists(v) for v in x] if isinstance(x, tuple | list) else x


def _to_tuples(x: Any) -> Any:
    return tuple(_to_tuples(v) for v in x) if isinstance(x, list) else x


def seed_everything(seed: int) -> None:
    """Fix torch, numpy and python seeds (runs are reproducible on one machine and thread count)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def save_checkpoint(
    path: str | os.PathLike[str],
    *,
    net: PolicyNet,
    algo: str,
    step: int = 0,
    optimizer: torch.optim.Optimizer | None = None,
    recipe: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    with_rng: bool = True,
) -> Path:
    """Write a checkpoint atomically and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "algo": algo,
        "step": int(step),
        "net_config": net.config.to_dict(),
        "model": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "rng": capture_rng() if with_rng else None,
        "recipe": recipe or {},
        "metrics": metrics or {},
        "extra": extra or {},
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read a checkpoint safely (``weights_only=True``: no code runs) and check its format."""
    data = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{path}: not a liveagent checkpoint (format {found!r}, expected {FORMAT!r})")
    return Checkpoint(
        algo=str(data["algo"]),
        step=int(data["step"]),
        net_config=NetConfig.from_dict(data["net_config"]),
        model=data["model"],
        optimizer=data.get("optimizer"),
        rng=data.get("rng"),
        recipe=data.get("recipe") or {},
        metrics=data.get("metrics") or {},
        extra=data.get("extra") or {},
    )


def load_policy_net(path: str | os.PathLike[str]) -> PolicyNet:
    """The network of a checkpoint, ready for inference."""
    return load_checkpoint(path).build_net()
