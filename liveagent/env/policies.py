"""The policies `liveagent eval` runs: baselines (random, the Bach oracle), the rules accompanist and
exported ONNX files.

Every policy is a contract callable ``(obs: ObservationBuffers) -> float32 logits [B, 130]`` wrapped in
an :class:`EvalPolicy` that also says how to observe it (window, mode) and how to decode it (its pitch
range). The evaluator decodes all of them with the one shared sampler, so a baseline is judged exactly
as a trained policy is.

Exported policies and the rules accompanist are loaded by the live engine's own code
(:mod:`liveagent.live.engine.policy`: name lookup in ``export/``, contract checks, the onnxruntime
session), so what is evaluated is what is played.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from liveagent.live.engine.policy import (
    OnnxPolicy,
    PolicyError,
    RulesPolicy,
    available_policies,
    resolve_policy_path,
)
from liveagent.music.features import Mode, ObservationBuffers, check_mode
from liveagent.music.rules import RulesAccompanist
from liveagent.music.tokens import N_PITCHES, VOCAB_SIZE, Grid

log = logging.getLogger(__name__)

PolicyFn = Callable[[ObservationBuffers], npt.NDArray[np.float32]]
IntArray = npt.NDArray[np.int64]

BUILTIN = ("random", "rules", "bach")
"""Policy names that are not files."""
DEFAULT_EXPORT = "default"
"""Name of the shipped policy in ``export/`` that `liveagent eval` adds to its rows when present."""


class PolicyLoadError(RuntimeError):
    """A policy name or file that cannot be run; the message says why."""


@dataclass
class EpisodeBatch:
    """What the evaluator is about to play: every piece's lines, ``[B, T_max]`` REST-padded."""

    performer: IntArray
    accompaniment: IntArray
    lengths: IntArray


@dataclass
class EvalPolicy:
    """A policy as the evaluator runs it."""

    name: str
    """Row label in the table."""
    fn: PolicyFn
    """The contract callable: observation buffers -> float32 logits [B, 130]."""
    window: int
    """Observation window W (steps of history per line)."""
    mode: Mode = "anticipate"
    """``anticipate``: it sees the performer up to t-1; ``react``: up to t."""
    pitch_min: int = 0
    """Lowest onset the range mask allows."""
    pitch_max: int = N_PITCHES - 1
    """Highest onset the range mask allows."""
    grid: Grid | None = None
    """The grid it was trained on, or None if it works on any grid."""
    reset: Callable[[EpisodeBatch], None] | None = None
    """Called once before a batch of pieces is played (the Bach oracle is given the true lines here)."""
    waits_for_performer: bool = True
    """Rest before the performer's first note and after a bar of performer silence, as the live engine
    does (:func:`liveagent.music.sampling.silence_gate`); off for the Bach oracle (the real part)."""
    meta: dict[str, Any] = field(default_factory=dict)
    """The ONNX metadata (or a description) for the JSON report."""


class RandomPolicy:
    """Independent uniform logits per step: greedy decoding under a range mask is then uniform over the
    allowed tokens (REST, HOLD and the onsets in range). Seeded for reproducible tables."""

    def __init__(self, seed: int = 0) -> None:
        self._rng = np.random.default_rng(seed)

    def __call__(self, obs: ObservationBuffers) -> npt.NDArray[np.float32]:
        return self._rng.random((obs.performer.shape[0], VOCAB_SIZE), dtype=np.float32)


class BachOracle:
    """The real accompaniment played as a policy: the ceiling row.

    It is handed the true lines in :meth:`reset` and answers step ``t`` at its ``t``-th call (the
    evaluator calls every policy exactly once per step). Its logits are ``-inf`` except at the true
    token, so every temperature plays the real part.
    """

    def __init__(self) -> None:
        self._accompaniment = np.zeros((0, 0), dtype=np.int64)
        self._t = 0

    def reset(self, batch: EpisodeBatch) -> None:
        self._accompaniment = batch.accompaniment
        self._t = 0

    def __call__(self, obs: ObservationBuffers) -> npt.NDArray[np.float32]:
        b = obs.performer.shape[0]
        if self._accompaniment.shape[0] != b:
            raise RuntimeError("BachOracle was not reset with this batch")
        logits = np.full((b, VOCAB_SIZE), -np.inf, dtype=np.float32)
        t = self._t
        tokens = self._accompaniment[:, t] if t < self._accompaniment.shape[1] else np.zeros(b, np.int64)
        logits[np.arange(b), tokens] = 0.0
        self._t += 1
        return logits


def random_policy(seed: int = 0) -> EvalPolicy:
    """Uniform choices in the rules accompanist's range (the bass range the baselines share)."""
    return EvalPolicy(
        "random",
        RandomPolicy(seed),
        window=1,
        pitch_min=RulesAccompanist.pitch_min,
        pitch_max=RulesAccompanist.pitch_max,
        meta={"algo": "random", "seed": seed},
    )


def bach_policy() -> EvalPolicy:
    oracle = BachOracle()
    return EvalPolicy(
        "bach",
        oracle,
        window=1,
        pitch_min=0,
        pitch_max=127,
        reset=oracle.reset,
        meta={"algo": "oracle"},
        waits_for_performer=False,
    )


def rules_policy(grid: Grid) -> EvalPolicy:
    """The live engine's rules accompanist (``liveagent serve --policy rules``), built as the engine builds
    it, so what is evaluated is what is played on stage."""
    try:
        policy = RulesPolicy(grid=grid)
    except PolicyError as exc:
        raise PolicyLoadError(str(exc)) from exc
    evaluated = from_meta("rules", policy, policy.meta)
    return evaluated


def _meta_get(meta: Any, key: str, default: Any = None) -> Any:
    if isinstance(meta, Mapping):
        return meta.get(key, default)
    return getattr(meta, key, default)


def from_meta(name: str, fn: PolicyFn, meta: Any) -> EvalPolicy:
    """An EvalPolicy from contract metadata: a mapping (ONNX ``metadata_props``) or an object with
    attributes (``liveagent.live.engine.policy.PolicyMeta``), so any live-side policy can be evaluated."""
    try:
        window = int(_meta_get(meta, "window"))
        mode = check_mode(str(_meta_get(meta, "mode", "anticipate")))
        pitch_min = int(_meta_get(meta, "pitch_min", 0))
        pitch_max = int(_meta_get(meta, "pitch_max", 127))
        grid = Grid(int(_meta_get(meta, "steps_per_beat", 4)), int(_meta_get(meta, "beats_per_bar", 4)))
    except (TypeError, ValueError) as exc:
        raise PolicyLoadError(f"{name}: bad contract metadata: {exc}") from exc
    if isinstance(meta, Mapping):
        as_dict = dict(meta)
    elif dataclasses.is_dataclass(meta) and not isinstance(meta, type):
        as_dict = dataclasses.asdict(meta)
    else:
        as_dict = dict(getattr(meta, "__dict__", {}))
    return EvalPolicy(name, fn, window, mode, pitch_min, pitch_max, grid, meta=as_dict)


def has_shipped_default() -> bool:
    """Whether ``export/default.onnx`` (the shipped policy) is installed."""
    return DEFAULT_EXPORT in available_policies()


def onnx_policy(name_or_path: str) -> EvalPolicy:
    """An exported policy by name (``export/NAME.onnx``) or path, run by the live engine's runner."""
    try:
        path = resolve_policy_path(name_or_path)
    except PolicyError as exc:
        extra = [name for name in BUILTIN if name not in available_policies()]
        raise PolicyLoadError(f"{exc}; eval also knows {', '.join(extra)}") from exc
    try:
        policy = OnnxPolicy.load(path)
    except PolicyError as exc:
        raise PolicyLoadError(str(exc)) from exc
    evaluated = from_meta(policy.name, policy, policy.meta)
    evaluated.meta["path"] = str(path)
    return evaluated


def split_label(spec: str) -> tuple[str | None, str]:
    """``LABEL=NAME_OR_PATH`` -> (label, name_or_path); a plain spec -> (None, spec).

    Lets a table row be named (``--policy ppo+kl=export/ppo_kl.onnx``). Only a label without ``/`` counts,
    so a path that happens to contain ``=`` in a directory name is not split.
    """
    label, sep, rest = spec.partition("=")
    if sep and label and rest and "/" not in label and not Path(spec).exists():
        return label, rest
    return None, spec


def load_policy(name_or_path: str, *, grid: Grid | None = None, seed: int = 0) -> EvalPolicy:
    """``random``, ``rules``, ``bach``, an exported name, or a path to a contract-v1 ``.onnx`` file,
    optionally as ``LABEL=...`` to name the row.

    Raises :class:`PolicyLoadError` with a message that says what is wrong.
    """
    label, spec = split_label(name_or_path)
    if spec == "random":
        policy = random_policy(seed)
    elif spec == "bach":
        policy = bach_policy()
    elif spec == "rules":
        policy = rules_policy(grid or Grid())
    else:
        policy = onnx_policy(spec)
    if label is not None:
        policy.name = label
    return policy


def check_logits(name: str, logits: Any, batch: int) -> npt.NDArray[np.float32]:
    """The policy's output as float32 [B, 130], or a clear error."""
    arr = np.asarray(logits)
    if arr.shape != (batch, VOCAB_SIZE):
        raise PolicyLoadError(
            f"policy {name} returned logits of shape {arr.shape}, expected ({batch}, {VOCAB_SIZE})"
        )
    return arr.astype(np.float32, copy=False)


__all__ = [
    "BUILTIN",
    "BachOracle",
    "EpisodeBatch",
    "EvalPolicy",
    "PolicyFn",
    "PolicyLoadError",
    "RandomPolicy",
    "bach_policy",
    "check_logits",
    "from_meta",
    "has_shipped_default",
    "load_policy",
    "onnx_policy",
    "random_policy",
    "rules_policy",
    "split_label",
]
