"""MLE prior: the data is what the online accompanist sees, and training lowers the validation loss."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from liveagent.music.features import ObservationBuffers, build_observation
from liveagent.music.tokens import ONSET_BASE, pitch_range
from liveagent.train import mle
from liveagent.train.checkpoint import load_checkpoint
from liveagent.train.data import (
    DataConfig,
    accompaniment_range,
    allowed_shifts,
    build_windows,
    load_pieces,
    sample_batch,
    toy_pieces,
    transpose_windows,
)
from liveagent.train.networks import NetConfig, PolicyNet

torch.set_num_threads(1)


def test_windows_are_the_shared_builders_observations_without_the_future() -> None:
    piece = toy_pieces(1, seed=4)[0]
    ws = build_windows([piece], window=8, mode="anticipate", pitch_min=0, pitch_max=127)
    obs = ObservationBuffers.allocate(1, 8)
    for t in (0, 5, 17, piece.n_steps - 1):
        build_observation(piece.performer, piece.accompaniment, t, window=8, steps_per_bar=16, out=obs)
        assert np.array_equal(ws.performer[t], obs.performer[0])
        assert np.array_equal(ws.agent[t], obs.agent[0])
        assert ws.target[t] == piece.accompaniment[t]
        # Anticipate mode: the performer's token at t (and later) is not in the window of step t.
        assert np.array_equal(ws.performer[t], np.r_[np.zeros(8), piece.performer][t : t + 8])


def test_transposing_windows_equals_windowing_the_transposed_piece() -> None:
    piece = toy_pieces(1, seed=5)[0]
    for k in (-5, 3):
        a = build_windows([piece], window=8, mode="anticipate", pitch_min=0, pitch_max=127)
        b = build_windows([piece.transposed(k)], window=8, mode="anticipate", pitch_min=0, pitch_max=127)
        shift = torch.full((len(a),), k)
        assert torch.equal(transpose_windows(torch.from_numpy(a.performer.astype(np.int64)), shift),
                           torch.from_numpy(b.performer.astype(np.int64)))  # fmt: skip
        assert torch.equal(transpose_windows(torch.from_numpy(a.target.astype(np.int64)), shift),
                           torch.from_numpy(b.target.astype(np.int64)))  # fmt: skip


def test_random_keys_keep_the_accompaniment_in_range() -> None:
    pieces = toy_pieces(6, seed=7)
    lo, hi = accompaniment_range(pieces)
    lo, hi = lo - 4, hi + 4
    ws = build_windows(pieces, window=8, mode="anticipate", pitch_min=lo, pitch_max=hi, max_shift=6)
    for p in pieces:
        s_lo, s_hi = allowed_shifts(p, lo, hi, 6)
        assert s_lo < 0 < s_hi
        r = pitch_range(p.accompaniment)
        assert r is not None and r[0] + s_lo >= lo and r[1] + s_hi <= hi
    rng = np.random.default_rng(0)
    *_, target = sample_batch(ws, np.arange(len(ws)), transpose=True, rng=rng)
    pitches = target[target >= ONSET_BASE] - ONSET_BASE
    assert int(pitches.min()) >= lo and int(pitches.max()) <= hi
    assert len(set(pitches.tolist())) > len(set((ws.target[ws.target >= ONSET_BASE] - ONSET_BASE).tolist()))


def test_agent_noise_corrupts_about_the_asked_fraction() -> None:
    ws = build_windows(toy_pieces(4), window=16, mode="anticipate", pitch_min=0, pitch_max=127)
    idx = np.arange(len(ws))
    clean = sample_batch(ws, idx, transpose=False, rng=np.random.default_rng(1))[1]
    noisy = sample_batch(ws, idx, transpose=False, rng=np.random.default_rng(1), agent_noise=0.2)[1]
    frac = float((clean != noisy).float().mean())
    assert 0.15 < frac < 0.25
    assert int(noisy.min()) >= 0 and int(noisy.max()) < 130


def _recipe(steps: int) -> dict[str, Any]:
    return {
        "seed": 2,
        "threads": 1,
        "net": {"window": 8, "hidden": 64, "embed_dim": 8},
        "data": {"corpus": "toy", "toy_pieces": 12, "pitch_margin": 3},
        "mle": {"steps": steps, "batch_size": 64, "eval_every": 50, "warmup": 10, "lr": 0.003},
    }


def test_mle_lowers_validation_loss_on_a_toy_corpus(tmp_path: Path) -> None:
    recipe = _recipe(200)
    data_cfg = DataConfig(**recipe["data"])
    valid = build_windows(
        load_pieces(data_cfg, "valid"), window=8, mode="anticipate", pitch_min=0, pitch_max=127
    )
    before = mle.evaluate(PolicyNet(NetConfig(**recipe["net"])), valid)
    assert abs(before["loss"] - math.log(130)) < 0.2  # an untrained net is near uniform

    best = load_checkpoint(mle.train(recipe, tmp_path))
    after = mle.evaluate(best.build_net(), valid)
    assert after["loss"] < 0.5 * before["loss"]
    assert after["acc"] > 0.7
    assert best.net_config.part == "bass" and best.net_config.pitch_min < 48 <= best.net_config.pitch_max
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    valid_losses = [r["loss"] for r in rows if r["tag"] == "valid"]
    assert len(valid_losses) == 4 and valid_losses[-1] < valid_losses[0]
    assert (tmp_path / "curves.png").stat().st_size > 1000
