"""The band network's vertical terms, its MLE run end to end on a few chorales, and the verified export
that the live runtime loads (real torch, real onnxruntime)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from liveagent.music.band import BandSpec
from liveagent.music.tokens import HOLD, REST, onset
from liveagent.train.band_net import BandNet
from liveagent.train.networks import NetConfig

SPEC = BandSpec.named("satb", ((55, 74), (48, 69), (36, 62)))
W = 16


def net(terms: tuple[float, ...] = (0.0, 1.0, 1.0, 1.0)) -> BandNet:
    extra = {"band": SPEC.to_json(), "band_terms": list(terms), "others_recent": 4}
    cfg = NetConfig(window=W, mode="follow", musical_features=True, hidden=32, extra=extra)
    return BandNet(cfg).eval()


def tokens(*toks: int) -> list[int]:
    return [REST] * (W - len(toks)) + list(toks)


def vertical(
    n: BandNet, voice: int, others: list[list[int]], agent: list[int], perf: list[int]
) -> np.ndarray:
    """The vertical terms alone: logits with the terms minus logits with zero weights."""
    x = (
        torch.tensor([perf]), torch.tensor([agent]), torch.tensor([0]), torch.tensor([others]),
        torch.tensor([voice]),
    )  # fmt: skip
    with torch.no_grad():
        full = n(*x)
        n.band_weights.zero_()
        plain = n(*x)
    return (full - plain)[0].numpy()


def test_a_tenor_fifth_over_a_bass_that_moves_is_penalized_as_a_parallel() -> None:
    # Tenor G3 over bass C3 (a fifth) at t-1; the bass (decided first) moves to D3 at t.
    bass = tokens(onset(48), HOLD, onset(50))  # row ends at t: decided before the tenor
    tenor = tokens(onset(55), HOLD)  # its own past, ends at t-1
    alto = tokens(onset(64), HOLD)
    soprano = tokens(onset(72), HOLD, HOLD)
    v = vertical(net((0.0, 1.0, 0.0, 0.0)), 1, [alto, tenor, bass], tenor, soprano)
    assert v[onset(57)] == pytest.approx(-1.0)  # A3: a fifth over D3 again, both moved up: parallel
    assert v[onset(45)] == pytest.approx(-1.0)  # the same pitch class an octave down: still a fifth class
    assert v[onset(53)] == 0.0 and v[HOLD] == 0.0  # F3 (a third) and holding G3 are fine


def test_crossing_and_spacing_are_penalized_for_onsets_only() -> None:
    # The alto decides last: tenor at C4 (60), bass C3 (48) decided; the soprano sings E5 (76).
    bass, tenor = tokens(onset(48), HOLD), tokens(onset(60), HOLD)
    alto = tokens(onset(67))
    soprano = tokens(onset(76))
    v = vertical(net((0.0, 0.0, 1.0, 0.0)), 0, [alto, tenor, bass], alto, soprano)
    assert v[onset(59)] == pytest.approx(-1.0)  # below the tenor: crossing
    assert v[onset(77)] == pytest.approx(-1.0)  # above the soprano: crossing
    assert v[onset(67)] == 0.0 and v[HOLD] == 0.0 and v[REST] == 0.0
    s = vertical(net((0.0, 0.0, 0.0, 1.0)), 0, [alto, tenor, bass], alto, soprano)
    assert s[onset(63)] == pytest.approx(-1.0) and s[onset(64)] == 0.0  # more than an octave under E5


@pytest.mark.parametrize("mode", ["follow", "anticipate"])
def test_band_mle_trains_exports_and_the_runtime_plays_it(tmp_path: Path, mode: str) -> None:
    from liveagent.env.band_play import play_band
    from liveagent.live.engine.policy import OnnxPolicy
    from liveagent.music.chorales import load_chorales
    from liveagent.train import band_mle, band_ppo
    from liveagent.train.band_export import export_band
    from liveagent.train.checkpoint import load_checkpoint

    band = {"steps": 40, "batch_size": 32, "eval_every": 20, "others_recent": 4}
    if mode == "anticipate":
        band["late_onset_prob"] = 0.0  # nothing at t to hide: the step is never heard
        band["key_change_prob"] = 0.5  # the past of half the samples in another key
    recipe = {
        "name": "band-test", "seed": 1, "threads": 1,
        "net": {"window": W, "recent": 8, "mode": mode, "hidden": 32, "musical_features": True,
                "aux_head": True, "ec_weight": 1.0, "parallel_weight": 2.0},
        "data": {"corpus": "chorales", "limit_pieces": 4},
        "band": band,
    }  # fmt: skip
    ckpt = band_mle.train(recipe, tmp_path / "run")
    ck = load_checkpoint(ckpt)
    assert ck.net_config.mode == mode
    assert ck.net_config.extra["band"] and ck.metrics["step"] >= 20
    pieces = load_chorales(only=["bwv256"], workers=1).pieces
    result = export_band(ck, ckpt, tmp_path / "band.onnx", pieces=pieces, n_parity=50)
    assert all(p["ok"] for p in result.card["parity"].values())
    assert result.card["contract"]["inputs"]["others"] == ["B", 3, W, "int64"]
    policy = OnnxPolicy.load(tmp_path / "band.onnx")
    assert policy.meta.band is not None and policy.meta.band.voices == ("alto", "tenor", "bass")
    assert policy.meta.mode == mode
    lines = play_band(policy, pieces)
    assert set(lines[0]) == {"alto", "tenor", "bass"}
    assert all(len(t) == pieces[0].n_steps for t in lines[0].values())
    if mode == "anticipate":
        with pytest.raises(ValueError, match="late_onset_prob"):  # timing noise it could never meet
            band_mle.train(recipe | {"band": band | {"late_onset_prob": 0.15}}, tmp_path / "noisy")
        with pytest.raises(ValueError, match="fine-tunes a follow band"):  # band PPO's rollouts follow
            band_ppo.train({"band_ppo": {"prior": str(ckpt)}, "data": recipe["data"]}, tmp_path / "ppo")


def test_band_rewards_count_parallels_crossing_and_never_pay_per_onset() -> None:
    from liveagent.train.band_ppo import BandPPOConfig, step_rewards

    cfg = BandPPOConfig()
    spec = BandSpec.named("satb")
    # Lines: alto, tenor, bass, soprano. Tenor G3 -> A3 over bass C3 -> D3: parallel fifths (both moved up).
    before = np.array([[64, 55, 48, 72]])
    now = np.array([[64, 57, 50, 72]])
    onsets = np.array([[False, True, True, False]])
    r = step_rewards(cfg, spec, now, before, onsets)
    assert r["parallels"][0].tolist() == [0.0, -cfg.parallels, -cfg.parallels]
    assert r["crossing"][0].tolist() == [0.0, 0.0, 0.0]
    # The alto under the tenor: both out of order.
    crossed = step_rewards(cfg, spec, np.array([[56, 57, 50, 72]]), before, onsets)
    assert crossed["crossing"][0, 0] == -cfg.crossing and crossed["crossing"][0, 1] == -cfg.crossing
    # Re-striking a consonant note pays no more than holding it; a melody onset doubles the term.
    held = step_rewards(cfg, spec, now, before, np.array([[False, False, False, False]]))["melody"]
    struck = step_rewards(cfg, spec, now, before, np.array([[True, True, True, False]]))["melody"]
    assert np.array_equal(held, struck)
    melody_moves = step_rewards(cfg, spec, now, before, np.array([[False, False, False, True]]))["melody"]
    assert np.array_equal(melody_moves, 2 * held)


def test_band_ppo_runs_and_its_checkpoint_exports(tmp_path: Path) -> None:
    from liveagent.train import band_mle, band_ppo
    from liveagent.train.band_export import export_band
    from liveagent.train.checkpoint import load_checkpoint

    data = {"corpus": "chorales", "limit_pieces": 4}
    net = {
        "window": W,
        "recent": 8,
        "mode": "follow",
        "hidden": 32,
        "musical_features": True,
        "aux_head": True,
    }
    prior = band_mle.train(
        {"seed": 1, "net": net, "data": data, "band": {"steps": 10, "batch_size": 16, "eval_every": 10}},
        tmp_path / "mle",
    )
    ppo = {"prior": str(prior), "total_steps": 256, "num_envs": 8, "phrase_steps": 16}
    recipe = {"seed": 1, "data": data, "band_ppo": ppo, "export": {"prior": "band"}}
    last = band_ppo.train(recipe, tmp_path / "ppo")
    rows = [line for line in (tmp_path / "ppo" / "metrics.jsonl").read_text().splitlines() if line]
    assert len(rows) == 2 and '"r_parallels"' in rows[0] and '"r_prior"' in rows[0]
    ck = load_checkpoint(last)
    result = export_band(ck, last, tmp_path / "ppo.onnx", n_parity=20)
    assert result.card["contract"]["metadata"]["prior"] == "band"


def test_a_key_change_moves_the_whole_band_past_together() -> None:
    """``shift_rows_past`` on the band's rows: one cut and one interval per sample, the soprano's row and
    every voice's row alike; the decided step, HOLD and REST untouched; a sample not drawn left alone."""
    from liveagent.train.data import shift_rows_past

    rng = np.random.default_rng(0)
    w, n = 12, 64
    perf = np.array([[onset(60 + (j % 5)) if j % 2 == 0 else HOLD for j in range(w)]] * n, dtype=np.int64)
    others = np.stack([perf - 7, perf - 12, perf - 19], axis=1)
    others[others < onset(0)] = HOLD
    p0, o0 = perf.copy(), others.copy()
    shift_rows_past((perf, others), rng, 1.0, 8)
    for i in range(n):
        moved = np.flatnonzero(perf[i] != p0[i])
        assert moved.size and moved.max() < w - 1  # the past only, the decided step never
        by = int(perf[i, moved[0]] - p0[i, moved[0]])
        assert 1 <= abs(by) <= 6
        cut = moved.max() + 1
        assert cut >= w - 8 - 1  # the cut is among the last 8 steps (onsets every other step)
        onsets = p0[i, :cut] >= onset(0)
        assert (perf[i, :cut][onsets] - p0[i, :cut][onsets] == by).all()
        assert (perf[i, :cut][~onsets] == p0[i, :cut][~onsets]).all()
        assert (perf[i, cut:] == p0[i, cut:]).all()
        for v in range(3):
            on_v = o0[i, v, :cut] >= onset(0)
            assert (others[i, v, :cut][on_v] - o0[i, v, :cut][on_v] == by).all()
            assert (others[i, v, cut:] == o0[i, v, cut:]).all()
    p1, o1 = perf.copy(), others.copy()
    shift_rows_past((perf, others), rng, 0.0, 8)
    assert (perf == p1).all() and (others == o1).all()
