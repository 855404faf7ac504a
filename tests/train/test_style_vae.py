"""The style space: the bar VAE learns, moods are found and stored, a style policy exports with its `style`
input (contract 1.2) in parity with torch, and the live runner feeds it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from liveagent.live.engine.policy import OnnxPolicy, PolicyError
from liveagent.music.bar_features import FEATURES, bar_feature_matrix, bar_features, line_style_stats
from liveagent.music.features import ObservationBuffers
from liveagent.music.tokens import HOLD, ONSET_BASE, REST, VOCAB_SIZE, Grid
from liveagent.train.checkpoint import load_checkpoint, save_checkpoint
from liveagent.train.data import toy_pieces
from liveagent.train.export import export_checkpoint, random_observations
from liveagent.train.model_card import STYLE_INPUT_NAME
from liveagent.train.networks import NetConfig, PolicyNet
from liveagent.train.style_vae import (
    MOODS,
    MoodConfig,
    StyleVAE,
    VAEConfig,
    build_bars,
    find_axes,
    find_moods,
    kl_per_bar,
    load_vae,
)

torch.set_num_threads(1)

ON = ONSET_BASE


def test_bar_features_measure_what_they_say() -> None:
    # bar 0: C3 half note, E3 quarter, G3 eighth on the off-beat; bar 1: one leap down to C2, held.
    line = [ON + 48] + [HOLD] * 7 + [ON + 52] + [HOLD] * 3 + [REST, REST, ON + 55, HOLD]
    line += [ON + 36] + [HOLD] * 15
    f = bar_features(line, steps_per_bar=16, steps_per_beat=4, major=False)
    assert f["density"].tolist() == [3, 1]
    assert f["register"][1] == 36 and f["register"][0] == pytest.approx((48 * 8 + 52 * 4 + 55 * 2) / 14)
    assert f["leap"][0] == pytest.approx((4 + 3) / 2) and f["leap"][1] == 19
    assert f["syncopation"].tolist() == pytest.approx([1 / 3, 0.0])
    assert f["mode"].tolist() == [0.0, 0.0]
    assert bar_feature_matrix(f).shape == (2, len(FEATURES))
    stats = line_style_stats([np.array(line)], 16)
    assert stats["notes_per_bar"] == 2.0 and stats["mean_pitch"] == pytest.approx((48 + 52 + 55 + 36) / 4)
    assert stats["leap"] == pytest.approx((4 + 3 + 19) / 3)


def _bars() -> tuple[torch.Tensor, torch.Tensor]:
    pieces = toy_pieces(4)
    bars = build_bars(pieces, 36, 64, 0)
    return torch.from_numpy(bars.acc[:32]), torch.from_numpy(bars.mel[:32])


def test_vae_loss_falls_on_a_tiny_batch() -> None:
    torch.manual_seed(0)
    acc, mel = _bars()
    vae = StyleVAE(VAEConfig(latent_dim=3, hidden=64, embed_dim=8), steps_per_bar=16)
    opt = torch.optim.Adam(vae.parameters(), lr=3e-3)

    @torch.no_grad()
    def loss_now() -> float:
        logits, mu, logvar = vae(acc, mel)
        ce = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB_SIZE), acc.reshape(-1))
        return float(ce + kl_per_bar(mu, logvar).mean() / acc.numel())

    first = loss_now()
    for _ in range(60):
        logits, mu, logvar = vae(acc, mel)
        ce = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB_SIZE), acc.reshape(-1))
        loss = ce + kl_per_bar(mu, logvar).mean() / acc.numel()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss_now() < 0.5 * first


def test_moods_gather_bars_by_their_features() -> None:
    rng = np.random.default_rng(0)
    n = 400
    feats = np.stack(
        [
            rng.integers(1, 9, n),
            rng.normal(50, 5, n),
            rng.integers(0, 2, n),
            rng.random(n) * 6,
            rng.random(n),
        ],
        axis=1,
    ).astype(float)
    # A latent that is the (scaled) density and register, plus noise.
    mu = np.stack([feats[:, 0] / 4, (feats[:, 1] - 50) / 5, rng.normal(0, 0.01, n)], axis=1)
    moods = find_moods(mu, feats, MoodConfig(quantile=0.2))
    assert set(moods) == {"neutral", *MOODS}
    assert moods["busy"]["features"]["density"] > 1.3 * moods["calm"]["features"]["density"]
    assert moods["busy"]["z"][0] > moods["calm"]["z"][0]
    assert moods["bright"]["z"][1] > moods["dark"]["z"][1]
    assert moods["bright"]["features"]["mode"] == 1.0 and moods["dark"]["features"]["mode"] == 0.0
    assert moods["calm"]["defined_by"][0]["side"] == "low"
    axes = {a["name"]: a for a in find_axes(mu, feats, moods)}
    assert {"pc1", "pc2", "density", "register"} <= set(axes)
    assert axes["density"]["direction"][0] > 0


def _style_spec(dim: int) -> dict[str, object]:
    moods = {name: {"z": [0.5 * (i - 3)] * dim, "bars": 10, "defined_by": [{"feature": name}], "features": {}}
             for i, name in enumerate(["neutral", *MOODS])}  # fmt: skip
    axes = [
        {"name": "density", "origin": [0.0] * dim, "direction": [1.0] * dim, "feature": "density", "sign": 1}
    ]
    return {"dim": dim, "default": "neutral", "moods": moods, "axes": axes, "features": {}}


def _style_checkpoint(tmp_path: Path, dim: int = 3) -> Path:
    cfg = NetConfig(
        window=8, hidden=48, embed_dim=6, pitch_min=40, pitch_max=62, mode="follow", style_dim=dim
    )
    torch.manual_seed(0)
    net = PolicyNet(cfg)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.3)
    recipe = {"name": "s", "seed": 1, "data": {"corpus": "toy"}, "net": {"window": 8}}
    return save_checkpoint(tmp_path / "s.pt", net=net.eval(), algo="style", recipe=recipe,
                           extra={"style": _style_spec(dim)})  # fmt: skip


def test_style_policy_exports_the_style_input_with_parity_and_moods(tmp_path: Path) -> None:
    ck = _style_checkpoint(tmp_path)
    out = tmp_path / "style.onnx"
    res = export_checkpoint(ck, out, pieces=toy_pieces(3), n_parity=300, latency=False)
    assert all(p["ok"] and p["argmax_agreement"] == 1.0 for p in res.card["parity"].values())
    model = onnx.load(str(out))
    style = next(i for i in model.graph.input if i.name == STYLE_INPUT_NAME)
    assert style.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert style.type.tensor_type.shape.dim[1].dim_value == 3
    props = {p.key: p.value for p in model.metadata_props}
    assert (
        props["liveagent.contract"] == "1"
        and props["style_dim"] == "3"
        and props["style_default"] == "neutral"
    )
    moods = json.loads(props["moods"])
    assert {"neutral", "calm", "busy", "bright", "dark"} <= set(moods)
    assert moods["busy"]["defined_by"] and json.loads(props["style_axes"])[0]["name"] == "density"
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["contract"]["inputs"]["style"] == ["B", 3, "float32"]
    assert set(card["style"]["moods"]) == set(moods)

    # The live runner feeds the neutral mood by default, a mood or any z on request, as torch computes it.
    policy = OnnxPolicy.load(out)
    net = load_checkpoint(ck).build_net()
    obs = random_observations(5, net.config, seed=3)
    feed = ObservationBuffers(obs.performer.copy(), obs.agent.copy(), obs.position.copy())

    def torch_logits(z: list[float]) -> np.ndarray:
        with torch.no_grad():
            x = (torch.from_numpy(a) for a in (obs.performer, obs.agent, obs.position))
            return net(*x, torch.tensor([z] * 5, dtype=torch.float32)).numpy()

    np.testing.assert_allclose(policy(feed), torch_logits(moods["neutral"]["z"]), atol=1e-4)
    policy.set_mood("busy")
    np.testing.assert_allclose(policy(feed), torch_logits(moods["busy"]["z"]), atol=1e-4)
    policy.set_style([2.0, -1.0, 0.5])
    np.testing.assert_allclose(policy(feed), torch_logits([2.0, -1.0, 0.5]), atol=1e-4)
    with pytest.raises(ValueError, match="style needs 3"):
        policy.set_style([1.0])
    with pytest.raises(KeyError, match="no mood 'sleepy'"):
        policy.set_mood("sleepy")


def test_a_style_input_without_its_metadata_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "style.onnx"
    export_checkpoint(_style_checkpoint(tmp_path), out, n_parity=50, latency=False)
    model = onnx.load(str(out))
    kept = [p for p in model.metadata_props if p.key not in ("style_dim", "moods", "style_default")]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    with pytest.raises(PolicyError, match=r"unexpected input.*style"):
        OnnxPolicy.from_bytes(model.SerializeToString(), name="broken")


def test_v1_policies_still_load_and_feed_no_style() -> None:
    for name in ("react", "follow_mle"):
        policy = OnnxPolicy.load(name)
        assert policy.meta.style_dim == 0 and policy.style.shape == (0,)
        out = policy(ObservationBuffers.allocate(2, policy.meta.window))
        assert out.shape == (2, VOCAB_SIZE)


def test_vae_and_style_policy_train_end_to_end_on_toy(tmp_path: Path) -> None:
    from liveagent.train import style_mle, style_vae

    recipe = {"seed": 1, "data": {"corpus": "toy", "toy_pieces": 6},
              "vae": {"latent_dim": 2, "hidden": 32, "embed_dim": 4, "steps": 30, "kl_warmup": 10,
                      "eval_every": 15, "batch_size": 32}}  # fmt: skip
    vae_path = style_vae.train(recipe, tmp_path / "vae")
    vae, payload = load_vae(vae_path)
    assert vae.config.latent_dim == 2 and {"neutral", "calm", "busy", "bright", "dark"} <= set(
        payload["moods"]
    )
    assert {"nll", "acc", "kl"} <= set(payload["valid"])
    spec = json.loads((tmp_path / "vae" / "moods.json").read_text())
    assert spec["dim"] == 2 and spec["moods"]["busy"]["defined_by"][0]["feature"] == "density"
    policy_recipe = {"seed": 1, "data": {"corpus": "toy", "toy_pieces": 6},
                     "net": {"window": 16, "hidden": 32, "embed_dim": 4, "mode": "follow"},
                     "mle": {"steps": 20, "batch_size": 32, "eval_every": 10, "warmup": 2},
                     "style": {"vae": str(vae_path)}}  # fmt: skip
    best = style_mle.train(policy_recipe, tmp_path / "policy")
    ck = load_checkpoint(best)
    assert ck.net_config.style_dim == 2 and ck.extra["style"]["moods"]["neutral"]["z"]
    assert "valid_loss_neutral" in ck.metrics
    bars = build_bars(toy_pieces(2, Grid()), 36, 64, 0)
    assert bars.acc.shape[1] == 16 and len(bars) == bars.features.shape[0]


def test_eval_moods_plays_every_mood_and_every_axis(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    from liveagent.env import eval_cli

    out = tmp_path / "style.onnx"
    export_checkpoint(_style_checkpoint(tmp_path), out, n_parity=50, latency=False)
    parser = argparse.ArgumentParser()
    eval_cli.configure(parser)
    md, js = tmp_path / "moods.md", tmp_path / "moods.json"
    argv = [
        "--moods",
        "--policy",
        str(out),
        "rules",
        "--no-progress",
        "--markdown",
        str(md),
        "--json",
        str(js),
    ]
    args = parser.parse_args(argv)
    assert eval_cli.run(args, pieces=toy_pieces(3)) == 0
    printed = capsys.readouterr().out
    assert "greedy + silence gate" in printed and "| busy |" in printed and "| rules |" in printed
    report = json.loads(js.read_text())
    assert report["moods"][0]["name"] == "neutral" and len(report["moods"]) == 1 + len(MOODS)
    assert set(report["targets"]) == {
        "busy_over_calm_notes", "bright_minus_dark_pitch", "max_consonance_gap_vs_neutral",
    }  # fmt: skip
    assert len(report["sweeps"]["density"]) == 5 and "density" in report["checks"]
    assert md.read_text().startswith("`liveagent eval")
    # A plain policy first is a clear error, not a crash.
    args = parser.parse_args(["--moods", "--policy", "rules", "--no-progress"])
    assert eval_cli.run(args, pieces=toy_pieces(2)) == 2
