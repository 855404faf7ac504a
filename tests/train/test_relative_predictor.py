"""The key-free next-note predictor: its classes by hand, transposition invariance (a key change is followed
at once), its place in the exported graph (parity through onnxruntime), and its fitting and freezing
before PPO."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from liveagent.music.tokens import HOLD, ONSET_BASE, REST, onset
from liveagent.train.checkpoint import load_checkpoint
from liveagent.train.data import build_windows, toy_pieces
from liveagent.train.musical_features import MusicalFeatures
from liveagent.train.networks import NetConfig, PolicyNet
from liveagent.train.relative_predictor import (
    REL_CLASSES,
    REL_CLIP,
    RelativePredictor,
    fit_relative_predictor,
    relative_classes,
)
from tests.train.test_ppo import toy_recipe

torch.set_num_threads(1)
REL_HOLD, REL_REST = 2 * REL_CLIP + 1, 2 * REL_CLIP + 2


def test_classes_are_intervals_to_the_sounding_pitch() -> None:
    tokens = torch.tensor([[REST, HOLD, onset(60), onset(72), onset(40), onset(62)]])
    got = relative_classes(tokens, torch.tensor([61]))  # pitch 60 sounds
    assert got.tolist() == [[REL_REST, REL_HOLD, REL_CLIP, REL_CLIP + 12, 0, REL_CLIP + 2]]
    silent = relative_classes(tokens, torch.tensor([0]))  # nothing sounds: no interval to read
    assert silent.tolist() == [[REL_REST, REL_HOLD, REL_REST, REL_REST, REL_REST, REL_REST]]


def _windows(n: int, w: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    perf = rng.choice(np.array([REST, HOLD, HOLD, *range(ONSET_BASE + 55, ONSET_BASE + 80)]), size=(n, w))
    perf[:, -1] = ONSET_BASE + rng.integers(55, 80, n)  # something sounds at the window's end
    return torch.from_numpy(perf), torch.from_numpy(rng.integers(0, 16, n))


def test_transposing_the_performer_moves_the_prediction_with_it() -> None:
    torch.manual_seed(0)
    model = RelativePredictor(steps=16, steps_per_bar=16).eval()
    sounding = MusicalFeatures(window=32, hears_current=False).sounding1
    perf, pos = _windows(64, 32, seed=1)
    up = torch.where(perf >= ONSET_BASE, perf + 6, perf)  # a tritone higher
    with torch.no_grad():
        a, b = model(perf, pos, sounding(perf)), model(up, pos, sounding(up))
        pa, pb = model.pc_probs(a, sounding(perf)), model.pc_probs(b, sounding(up))
    assert torch.equal(a, b)  # the same relative picture
    assert torch.allclose(torch.roll(pa, 6, dims=1), pb)  # the same answer, a tritone higher
    assert bool((pa.sum(1) <= 1.0 + 1e-6).all()) and float(pa.sum(1).min()) > 0.0
    silent = torch.full((1, 32), REST)
    with torch.no_grad():
        s1 = sounding(silent)
        assert float(model.pc_probs(model(silent, pos[:1], s1), s1).abs().sum()) == 0.0


def test_fitting_learns_the_toy_melodies() -> None:
    torch.manual_seed(0)
    cfg = NetConfig(window=32, mode="anticipate")
    ws = build_windows(toy_pieces(8, seed=0), window=32, mode="anticipate", pitch_min=0, pitch_max=127)
    model = RelativePredictor(steps=16, steps_per_bar=16)
    sounding = MusicalFeatures(window=cfg.window, hears_current=False).sounding1
    res = fit_relative_predictor(model, sounding, ws.performer, ws.position, ws.perf_next, steps=150,
                                 batch_size=128, key_change_prob=0.2)  # fmt: skip
    assert res["loss_last"] < 0.5 * res["loss_first"]
    assert res["loss_first"] == pytest.approx(np.log(REL_CLASSES), rel=0.2)  # it starts near uniform


def _anticipate_config(**kw: object) -> NetConfig:
    return NetConfig(window=32, recent=8, mode="anticipate", musical_features=True, aux_head=True,
                     ec_weight=3.0, parallel_weight=2.0, relative_predictor=16, **kw)  # type: ignore[arg-type]  # fmt: skip


def test_config_refuses_a_relative_predictor_it_cannot_use() -> None:
    with pytest.raises(ValueError, match="anticipate"):
        NetConfig(window=32, mode="follow", musical_features=True, aux_head=True, relative_predictor=16)
    with pytest.raises(ValueError, match="anticipate"):
        NetConfig(window=32, mode="anticipate", musical_features=True, relative_predictor=16)
    with pytest.raises(ValueError, match="window"):
        NetConfig(window=32, mode="anticipate", musical_features=True, aux_head=True, relative_predictor=64)


def test_the_predictor_steers_the_exported_logits_with_parity(tmp_path: Path) -> None:
    from liveagent.train.export import OUTPUT_NAME, export_onnx, onnx_session

    torch.manual_seed(0)
    net = PolicyNet(_anticipate_config()).eval()
    perf, pos = _windows(64, 32, seed=2)
    agent, _ = _windows(64, 32, seed=3)
    with torch.no_grad():
        before = net(perf, agent, pos)
        assert net.relative is not None
        last = net.relative.mlp[-1]
        assert isinstance(last, torch.nn.Linear)
        last.bias.add_(torch.linspace(-3, 3, REL_CLASSES))
        after = net(perf, agent, pos)
    assert float((before - after).abs().max()) > 0.01  # its prediction reaches the logits
    path = export_onnx(net, net.config, tmp_path / "p.onnx", {"k": "v"}, (OUTPUT_NAME,))
    (got,) = onnx_session(path).run(None, {"performer": perf.numpy(), "agent": agent.numpy(),
                                           "position": pos.numpy()})  # fmt: skip
    assert np.abs(got - after.numpy()).max() < 1e-4 and (got.argmax(1) == after.numpy().argmax(1)).all()


@pytest.mark.timeout(180)
def test_ppo_fits_the_predictor_first_and_keeps_it_frozen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from liveagent.train import ppo

    fitted: dict[str, torch.Tensor] = {}
    fit = ppo._fit_relative

    def spy(actor: PolicyNet, setup: object, steps: int) -> None:
        fit(actor, setup, steps)  # type: ignore[arg-type]
        assert actor.relative is not None
        fitted.update({k: v.detach().clone() for k, v in actor.relative.state_dict().items()})

    monkeypatch.setattr(ppo, "_fit_relative", spy)
    recipe = toy_recipe(tmp_path)
    recipe["net"].update(window=32, recent=8, mode="anticipate", musical_features=True, aux_head=True)
    recipe["ppo"].update(ec_weight=2.0, relative_predictor=16, relative_fit_steps=60)
    ck = load_checkpoint(ppo.train(recipe, tmp_path / "run"))
    assert ck.net_config.relative_predictor == 16
    note = ck.net_config.extra["relative_fit"]  # how it was fitted travels with the checkpoint
    assert note["steps"] == 60 and note["loss_last"] < note["loss_first"]
    net = ck.build_net()
    assert net.relative is not None and fitted
    fresh = PolicyNet(ck.net_config).relative
    assert fresh is not None
    assert not torch.equal(fresh.state_dict()["mlp.2.weight"], fitted["mlp.2.weight"])  # it was fitted
    for k, v in net.relative.state_dict().items():  # ... and PPO's updates left it as fitted
        assert torch.equal(v, fitted[k]), k
    assert not torch.equal(
        net.policy_head.weight,
        load_checkpoint(tmp_path / "run" / "mle" / "best.pt").model["policy_head.weight"],
    )  # while the policy itself moved
