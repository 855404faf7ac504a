"""Export a band network (:mod:`liveagent.train.band_net`) to ONNX: the band addition of the contract.

Inputs ``performer``, ``agent``, ``position`` (v1), ``others`` int64 [B, V, W] and ``voice`` int64 [B];
outputs ``logits`` and ``performer_next``; metadata v1's plus ``band`` (JSON: voices top-down, decision
order, per-voice ranges) and the vertical terms' weights. Verified like every export: ``onnx.checker``,
parity with torch on random and corpus observations (<= 1e-4, same argmax), latency in the card.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from liveagent.music.band import BandBuffers, BandSpec, build_band_observation
from liveagent.music.piece import Piece
from liveagent.music.tokens import VOCAB_SIZE
from liveagent.train.band_net import BAND_TERMS, BandNet, band_spec_of
from liveagent.train.checkpoint import Checkpoint
from liveagent.train.export import AUX_OUTPUT_NAME, TERM_WEIGHTS, ExportResult, export_onnx, set_term_weights
from liveagent.train.export_check import (
    OUTPUT_NAME,
    ExportError,
    onnx_session,
    parity_row,
    time_session_runs,
)
from liveagent.train.model_card import contract_metadata, dataset_name, write_card
from liveagent.train.networks import param_count

log = logging.getLogger(__name__)

BAND_INPUTS = ("performer", "agent", "position", "others", "voice")


class BandExport(nn.Module):
    """``(logits, performer_next)`` of a band network: what goes into the graph."""

    def __init__(self, net: BandNet) -> None:
        super().__init__()
        self.net = net

    def forward(
        self, performer: torch.Tensor, agent: torch.Tensor, position: torch.Tensor, others: torch.Tensor,
        voice: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        logits, _, aux = self.net.band_forward(performer, agent, position, others, voice)
        assert aux is not None
        return logits, aux


def random_band_observations(n: int, window: int, spec: BandSpec, spbar: int, seed: int) -> BandBuffers:
    rng = np.random.default_rng(seed)
    obs = BandBuffers.allocate_band(n, window, spec.size)
    obs.performer[:] = rng.integers(0, VOCAB_SIZE, obs.performer.shape)
    obs.others[:] = rng.integers(0, VOCAB_SIZE, obs.others.shape)
    obs.voice[:] = rng.integers(0, spec.size, n)
    obs.agent[:] = obs.others[np.arange(n), obs.voice]
    obs.position[:] = rng.integers(0, spbar, n)
    return obs


def corpus_band_observations(
    n: int, pieces: Sequence[Piece], window: int, spec: BandSpec, spbar: int, seed: int
) -> BandBuffers:
    rng = np.random.default_rng(seed)
    obs = BandBuffers.allocate_band(n, window, spec.size)
    row = BandBuffers.allocate_band(1, window, spec.size)
    usable = [p for p in pieces if p.has_voices(spec.voices)]
    for i in range(n):
        p = usable[int(rng.integers(len(usable)))]
        lines = np.stack([p.voices[v] for v in spec.voices])
        v = int(rng.integers(spec.size))
        build_band_observation(p.performer, lines, v, int(rng.integers(p.n_steps)), spec=spec, window=window,
                               steps_per_bar=spbar, out=row)  # fmt: skip
        for name in BAND_INPUTS:
            getattr(obs, name)[i] = getattr(row, name)[0]
    return obs


def _parity(module: BandExport, session: Any, obs: BandBuffers) -> dict[str, Any]:
    with torch.no_grad():
        ref = module(*(torch.from_numpy(getattr(obs, k)) for k in BAND_INPUTS))[0].numpy()
    got = session.run([OUTPUT_NAME], obs.as_feed())[0]
    return parity_row(ref, got)


def _latency(session: Any, obs: BandBuffers, n: int = 2000) -> dict[str, float]:
    """One voice's decision (single sample, one thread), median and p99 in microseconds."""
    return time_session_runs(session, {k: v[:1] for k, v in obs.as_feed().items()}, n, warmup=200)


def _torch_latency(module: BandExport, obs: BandBuffers, n: int = 300) -> dict[str, float]:
    x = tuple(torch.from_numpy(getattr(obs, k)[:1]) for k in BAND_INPUTS)
    samples = []
    with torch.inference_mode():
        for _ in range(30):
            module(*x)
        for _ in range(n):
            t0 = time.perf_counter()
            module(*x)
            samples.append(time.perf_counter() - t0)
    a = np.asarray(samples) * 1e6
    return {"median_us": round(float(np.median(a)), 2), "p99_us": round(float(np.percentile(a, 99)), 2)}


def export_band(
    ck: Checkpoint,
    checkpoint: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    pieces: Sequence[Piece] | None = None,
    eval_row: dict[str, Any] | None = None,
    n_parity: int = 1000,
) -> ExportResult:
    """A band checkpoint -> verified ``NAME.onnx`` + card + recipe (raises :class:`ExportError`)."""

    net = ck.build_net()
    if not isinstance(net, BandNet):
        raise ExportError(f"{checkpoint}: not a band network")
    export_cfg = ck.recipe.get("export", {})
    set_term_weights(net, export_cfg)  # weights chosen on the valid split, as the solo's
    if "band_terms" in export_cfg:  # the vertical terms between the voices, likewise
        terms = [float(w) for w in export_cfg["band_terms"]]
        if len(terms) != len(BAND_TERMS):
            raise ExportError(
                f"[export] band_terms needs {len(BAND_TERMS)} weights {BAND_TERMS}, got {terms}"
            )
        with torch.no_grad():
            net.band_weights.copy_(torch.tensor(terms))
    cfg = ck.net_config
    spec = band_spec_of(cfg)
    module = BandExport(net).eval()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    meta = contract_metadata(
        cfg, algo=ck.algo, dataset=dataset_name(ck.recipe) + ":band", metrics=eval_row or ck.metrics
    )
    meta["band"] = spec.to_json()
    if ck.recipe.get("export", {}).get("prior"):
        meta["prior"] = str(ck.recipe["export"]["prior"])  # `liveagent eval --band` reports KL and agreement
    for name in TERM_WEIGHTS:
        weight = getattr(net, name)
        if weight is not None:
            meta[name] = f"{float(weight.detach()):.4f}"
    meta["band_terms"] = ",".join(
        f"{n}={float(w):.4f}" for n, w in zip(BAND_TERMS, net.band_weights.tolist(), strict=True)
    )
    dummy = random_band_observations(2, cfg.window, spec, cfg.steps_per_bar, seed=0)
    example = (BAND_INPUTS, tuple(torch.from_numpy(getattr(dummy, k)) for k in BAND_INPUTS))
    export_onnx(module, cfg, out_path, meta, (OUTPUT_NAME, AUX_OUTPUT_NAME), example=example)
    session = onnx_session(out_path)
    parity = {
        "random": _parity(
            module, session, random_band_observations(n_parity, cfg.window, spec, cfg.steps_per_bar, 123)
        )
    }
    if pieces:
        obs = corpus_band_observations(n_parity, pieces, cfg.window, spec, cfg.steps_per_bar, 321)
        parity["corpus"] = _parity(module, session, obs)
    bad = {k: v for k, v in parity.items() if not v["ok"]}
    if bad:
        out_path.unlink(missing_ok=True)
        raise ExportError(f"{out_path}: ONNX and torch disagree: {bad}")
    # One voice's decision (a band step is V of them, in order).
    latency = {"onnx_1thread": _latency(session, dummy), "torch_eager": _torch_latency(module, dummy)}
    verification = {"parity": parity, "latency": latency}
    training = {
        "checkpoint": str(checkpoint),
        "step": ck.step,
        "metrics": ck.metrics,
        "parameters": param_count(net),
    }
    card_path, recipe_path, card = write_card(
        out_path, config=cfg, metadata=meta, recipe=ck.recipe, training=training, verification=verification,
        eval_row=eval_row,
    )  # fmt: skip
    card["contract"]["inputs"] |= {"others": ["B", spec.size, cfg.window, "int64"], "voice": ["B", "int64"]}
    import json

    card_path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    log.info("band export: %s (parity %s)", out_path, {k: v["max_abs_diff"] for k, v in parity.items()})
    return ExportResult(out_path, card_path, recipe_path, card)
