"""Reward ensembles combine their models as specified; a policy ensemble exports as ONE ONNX graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from liveagent.train.adversarial import AdversarialConfig
from liveagent.train.checkpoint import load_checkpoint
from liveagent.train.data import build_windows, toy_pieces
from liveagent.train.ensemble import RewardEnsemble, train
from tests.train.test_ppo import toy_recipe


def ensemble(disagreement: float, biases: list[float]) -> RewardEnsemble:
    real = build_windows(
        toy_pieces(2, seed=0, bars=2), window=4, mode="anticipate", pitch_min=36, pitch_max=64
    )
    ens = RewardEnsemble(
        real,
        window=4,
        steps_per_bar=16,
        adversarial=AdversarialConfig(hidden=8, steps=1, batch_size=16, reward_clip=10.0),
        count=len(biases),
        disagreement=disagreement,
        seed=0,
    )
    for member, b in zip(ens.members, biases, strict=True):  # constant discriminators: logit = b
        with torch.no_grad():
            member.net.head.weight.zero_()
            member.net.head.bias.fill_(b)
    return ens


def test_reward_ensemble_is_mean_minus_disagreement() -> None:
    x = (
        torch.zeros(3, 4, dtype=torch.int64),
        torch.zeros(3, 4, dtype=torch.int64),
        torch.zeros(3, dtype=torch.int64),
    )
    np.testing.assert_allclose(ensemble(0.0, [1.0, 3.0]).score(*x).numpy(), [2.0] * 3, rtol=1e-6)
    np.testing.assert_allclose(ensemble(0.5, [1.0, 3.0]).score(*x).numpy(), [1.5] * 3, rtol=1e-6)
    np.testing.assert_allclose(ensemble(0.5, [2.0]).score(*x).numpy(), [2.0] * 3, rtol=1e-6)
    assert ensemble(0.5, [1.0, 3.0]).scores(*x).shape == (2, 3)


def test_reward_ensemble_update_trains_every_member() -> None:
    ens = ensemble(0.5, [0.0, 0.0, 0.0])
    x = (torch.full((32, 4), 40), torch.full((32, 4), 40), torch.zeros(32, dtype=torch.int64))
    metrics = ens.update(*x)
    assert [m.updates for m in ens.members] == [1, 1, 1]
    assert {"loss", "acc_real", "acc_fake", "std"} <= set(metrics)


@pytest.mark.timeout(240)
def test_ensemble_entry_point_exports_one_graph_averaging_probabilities(tmp_path: Path) -> None:
    import onnxruntime as ort

    out = train(toy_recipe(tmp_path), tmp_path / "run")
    assert out.suffix == ".onnx" and out.with_suffix(".json").exists()
    members = [load_checkpoint(tmp_path / "run" / f"member{i}.pt").build_net() for i in range(2)]
    rng = np.random.default_rng(0)
    feed = {
        "performer": rng.integers(0, 130, size=(16, 4)).astype(np.int64),
        "agent": rng.integers(0, 130, size=(16, 4)).astype(np.int64),
        "position": rng.integers(0, 16, size=16).astype(np.int64),
    }
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["performer", "agent", "position"]
    (logits,) = sess.run(["logits"], feed)
    with torch.no_grad():
        t = [torch.from_numpy(feed[k]) for k in ("performer", "agent", "position")]
        mean_p = torch.stack([torch.softmax(m(*t), -1) for m in members]).mean(0)
    np.testing.assert_allclose(np.exp(logits), mean_p.numpy(), atol=1e-5)
    assert load_checkpoint(tmp_path / "run" / "last.pt").extra["members"].__len__() == 2
