"""Checkpoints: safe loading, round trips, RNG capture, and an exact resume of an interrupted MLE run."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from liveagent.train import mle
from liveagent.train.checkpoint import (
    FORMAT,
    capture_rng,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
)
from liveagent.train.networks import NetConfig, PolicyNet

torch.set_num_threads(1)


class Evil:
    """A pickled object that would run code on unpickle if loading were unsafe."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (print, ("pwned",))


def test_round_trip(tmp_path: Path) -> None:
    net = PolicyNet(NetConfig(window=8, hidden=16, embed_dim=4, value_head=True))
    opt = torch.optim.Adam(net.parameters())
    x = (torch.zeros(2, 8, dtype=torch.long), torch.ones(2, 8, dtype=torch.long), torch.tensor([0, 5]))
    net.forward_with_value(*x)[0].sum().backward()
    opt.step()
    path = save_checkpoint(tmp_path / "c.pt", net=net, algo="ppo", step=7, optimizer=opt,
                           recipe={"seed": 3, "net": {"window": 8}}, metrics={"r": 1.5},
                           extra={"target": net.state_dict(), "counter": 4})  # fmt: skip
    ck = load_checkpoint(path)
    got = (ck.algo, ck.step, ck.recipe["net"], ck.metrics, ck.extra["counter"])
    assert got == ("ppo", 7, {"window": 8}, {"r": 1.5}, 4)
    assert ck.net_config == net.config
    again = ck.build_net()
    net.eval()
    assert torch.equal(again(*x), net(*x))
    opt2 = torch.optim.Adam(again.parameters())
    assert ck.optimizer is not None
    opt2.load_state_dict(ck.optimizer)
    assert not list(tmp_path.glob("*.tmp"))


def test_refuses_pickles_and_foreign_files(tmp_path: Path) -> None:
    evil = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "payload": Evil()}, evil)
    with pytest.raises(Exception, match=r"(?i)weights"):
        load_checkpoint(evil)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(ValueError, match="not a liveagent checkpoint"):
        load_checkpoint(foreign)


def test_rng_capture_restores_every_generator() -> None:
    state = capture_rng()
    first = (torch.rand(3).tolist(), np.random.rand(3).tolist(), random.random())
    restore_rng(state)
    assert (torch.rand(3).tolist(), np.random.rand(3).tolist(), random.random()) == first


def _recipe() -> dict[str, Any]:
    return {
        "seed": 5,
        "threads": 1,
        "net": {"window": 8, "hidden": 32, "embed_dim": 4},
        "data": {"corpus": "toy", "toy_pieces": 6},
        "mle": {"steps": 40, "batch_size": 32, "eval_every": 20, "warmup": 5},
    }


def test_resume_after_a_crash_matches_an_uninterrupted_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = load_checkpoint(mle.train(_recipe(), tmp_path / "full"))

    real_save = mle.save_checkpoint

    def crash_after_first_last(path: Any, **kw: Any) -> Path:
        out = real_save(path, **kw)
        if Path(path).name == "last.pt":
            raise KeyboardInterrupt  # the run dies right after its step-20 checkpoint
        return out

    monkeypatch.setattr(mle, "save_checkpoint", crash_after_first_last)
    with pytest.raises(KeyboardInterrupt):
        mle.train(_recipe(), tmp_path / "resumed")
    assert load_checkpoint(tmp_path / "resumed" / "last.pt").step == 20
    monkeypatch.setattr(mle, "save_checkpoint", real_save)
    resumed = load_checkpoint(mle.train(_recipe(), tmp_path / "resumed", resume=True))

    assert resumed.step == full.step
    for k, v in full.model.items():
        assert torch.equal(v, resumed.model[k]), k
    rows = (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == len((tmp_path / "full" / "metrics.jsonl").read_text().splitlines())
