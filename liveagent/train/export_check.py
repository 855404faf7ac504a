"""The checks every export passes before it is kept: parity of the ONNX graph with the torch module on
random and on corpus observations (max |diff| <= :data:`PARITY_TOL` and identical argmax), and the
single-sample latency, onnxruntime against torch eager, for the model card.

Apart from :mod:`~liveagent.train.export`, which builds and traces the graphs, because checking is a job of
its own with callers of its own: the band export and the benchmarks run the same parity check and build the
same observations, and none of this needs the tracer.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from liveagent.music.features import ObservationBuffers, build_observation
from liveagent.music.piece import Piece
from liveagent.music.tokens import VOCAB_SIZE
from liveagent.train.model_card import STYLE_INPUT_NAME
from liveagent.train.networks import NetConfig

__all__ = [
    "OUTPUT_NAME",
    "PARITY_RTOL",
    "PARITY_TOL",
    "ExportError",
    "check_parity",
    "corpus_observations",
    "measure_onnx_latency",
    "measure_torch_latency",
    "onnx_session",
    "parity_row",
    "random_observations",
    "random_styles",
    "verify_export",
]

OUTPUT_NAME = "logits"
"""The contract's output (action scores [B, 130]): the one the parity checks compare."""
PARITY_TOL = 1e-4
"""Absolute part of the parity tolerance (logits near zero)."""
PARITY_RTOL = 1e-5
"""Relative part: float32 rounding grows with the logits' size. A graph term with a large weight (an
expected-parallels weight of 50) gives logits up to ~50, where 1e-4 absolute is ~26 ulps."""


class ExportError(RuntimeError):
    """An export failed a check (parity, contract): nothing is kept."""


def onnx_session(path: str | os.PathLike[str], threads: int = 1) -> Any:
    """A single-threaded onnxruntime session (as the live engine creates it)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def random_styles(n: int, config: NetConfig, seed: int = 0) -> np.ndarray | None:
    """Standard normal ``style`` rows [n, D] (float32) for a style network, else None."""
    if not config.style_dim:
        return None
    return np.random.default_rng(seed).standard_normal((n, config.style_dim)).astype(np.float32)


# ---------------------------------------------------------------------------------------------------------
# Observations for the parity checks


def random_observations(n: int, config: NetConfig, seed: int = 0) -> ObservationBuffers:
    """Uniformly random contract arrays (every token, every position)."""
    rng = np.random.default_rng(seed)
    obs = ObservationBuffers.allocate(n, config.window)
    obs.performer[:] = rng.integers(0, VOCAB_SIZE, obs.performer.shape)
    obs.agent[:] = rng.integers(0, VOCAB_SIZE, obs.agent.shape)
    obs.position[:] = rng.integers(0, config.steps_per_bar, n)
    return obs


def corpus_observations(
    n: int, pieces: Sequence[Piece], config: NetConfig, seed: int = 0
) -> ObservationBuffers:
    """``n`` observations at random steps of random pieces (shared builder, real accompaniment as past)."""
    rng = np.random.default_rng(seed)
    obs = ObservationBuffers.allocate(n, config.window)
    row = ObservationBuffers.allocate(1, config.window)
    for i in range(n):
        p = pieces[int(rng.integers(len(pieces)))]
        t = int(rng.integers(p.n_steps))
        build_observation(
            p.performer, p.accompaniment, t, window=config.window, steps_per_bar=config.steps_per_bar,
            mode=config.mode, out=row,
        )  # fmt: skip
        obs.performer[i], obs.agent[i], obs.position[i] = row.performer[0], row.agent[0], row.position[0]
    return obs


def _feed(obs: ObservationBuffers, style: np.ndarray | None) -> dict[str, np.ndarray]:
    feed = obs.as_feed()
    if style is not None:
        feed[STYLE_INPUT_NAME] = style
    return feed


def _torch_inputs(obs: ObservationBuffers, style: np.ndarray | None) -> tuple[torch.Tensor, ...]:
    arrays = (obs.performer, obs.agent, obs.position) + ((style,) if style is not None else ())
    return tuple(torch.from_numpy(a) for a in arrays)


def check_parity(
    module: nn.Module, session: Any, obs: ObservationBuffers, style: np.ndarray | None = None
) -> dict[str, Any]:
    """Compare torch and onnxruntime logits on ``obs`` (and ``style`` rows, for a style network)."""
    module = module.eval()
    with torch.no_grad():
        ref = module(*_torch_inputs(obs, style)).numpy()
    got = session.run([OUTPUT_NAME], _feed(obs, style))[0]
    return parity_row(ref, got)


def parity_row(ref: np.ndarray, got: np.ndarray) -> dict[str, Any]:
    """The parity figures of torch logits ``ref`` against onnxruntime's ``got`` (same shape ``[B, A]``): ok
    when every logit is within ``PARITY_TOL + PARITY_RTOL * max|row|`` of its row and every argmax agrees.
    The scale is the row's largest logit, not each logit's own size (a small logit that is the sum of large
    terms carries their rounding), nor the batch's (one extreme row must not widen every other row's)."""
    if not ref.size:
        return {"n": len(ref), "max_abs_diff": 0.0, "argmax_agreement": 1.0, "ok": True}
    row_diff = np.max(np.abs(ref - got), axis=1)
    diff = float(np.max(row_diff))
    agree = float(np.mean(ref.argmax(axis=1) == got.argmax(axis=1)))
    tol = PARITY_TOL + PARITY_RTOL * np.max(np.abs(ref), axis=1)
    ok = bool(np.all(row_diff <= tol)) and agree == 1.0
    return {"n": len(ref), "max_abs_diff": diff, "argmax_agreement": agree, "ok": ok}


# ---------------------------------------------------------------------------------------------------------
# Latency


def _percentiles(samples: list[float]) -> dict[str, float]:
    a = np.asarray(samples) * 1e6
    return {"median_us": round(float(np.median(a)), 2), "p99_us": round(float(np.percentile(a, 99)), 2)}


def time_session_runs(session: Any, feed: dict[str, Any], n: int, warmup: int) -> dict[str, float]:
    """``session.run`` on ``feed``, ``warmup`` times untimed then ``n`` timed: median and p99 in us."""
    for _ in range(warmup):
        session.run([OUTPUT_NAME], feed)
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        session.run([OUTPUT_NAME], feed)
        samples.append(time.perf_counter() - t0)
    return _percentiles(samples)


def measure_onnx_latency(
    session: Any, config: NetConfig, n: int = 2000, warmup: int = 200
) -> dict[str, float]:
    """Single-sample ``session.run`` wall time on the session's threads (median, p99, in microseconds)."""
    feed = _feed(random_observations(1, config, seed=1), random_styles(1, config, seed=1))
    return time_session_runs(session, feed, n, warmup)


def measure_torch_latency(
    module: nn.Module, config: NetConfig, n: int = 1000, warmup: int = 100
) -> dict[str, float]:
    """The same in torch eager (inference mode, current thread count), for comparison."""
    x = _torch_inputs(random_observations(1, config, seed=1), random_styles(1, config, seed=1))
    module = module.eval()
    samples = []
    with torch.inference_mode():
        for _ in range(warmup):
            module(*x)
        for _ in range(n):
            t0 = time.perf_counter()
            module(*x)
            samples.append(time.perf_counter() - t0)
    return _percentiles(samples)


# ---------------------------------------------------------------------------------------------------------
# Parity and latency of one exported file


def verify_export(
    module: nn.Module,
    config: NetConfig,
    onnx_path: Path,
    *,
    pieces: Sequence[Piece] | None,
    n: int = 1000,
    latency: bool = True,
) -> dict[str, Any]:
    """Parity on ``n`` random (and ``n`` corpus, if ``pieces``) observations plus latency; raises if bad."""
    session = onnx_session(onnx_path)
    parity = {
        "random": check_parity(
            module, session, random_observations(n, config, seed=123), random_styles(n, config, seed=123)
        )
    }
    if pieces:
        parity["corpus"] = check_parity(
            module,
            session,
            corpus_observations(n, pieces, config, seed=321),
            random_styles(n, config, seed=321),
        )
    bad = {k: v for k, v in parity.items() if not v["ok"]}
    if bad:
        raise ExportError(f"{onnx_path}: ONNX and torch disagree: {bad}")
    report: dict[str, Any] = {"parity": parity}
    if latency:
        report["latency"] = {
            "onnx_1thread": measure_onnx_latency(session, config),
            "torch_eager": measure_torch_latency(module, config),
        }
    return report
