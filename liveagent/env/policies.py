"""The policies `liveagent eval` runs: baselines (random, rules, the Bach oracle) and exported ONNX files.

Every policy is a contract callable ``(obs: ObservationBuffers) -> float32 logits [B, 130]`` wrapped in
an :class:`EvalPolicy` that also says how to observe it (window, mode) and how to decode it (its pitch
range). The evaluator decodes all of them with the one shared sampler, so a baseline is judged exactly
as a trained policy is.

The ONNX runner lives in ``liveagent.live.policy`` (the live engine's); it is imported lazily so eval
works without it, and a plain ``.onnx`` file is then run with onnxruntime directly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import importlib.resources
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from liveagent.music.features import Mode, ObservationBuffers, check_mode
from liveagent.music.tokens import VOCAB_SIZE, Grid

log = logging.getLogger(__name__)

PolicyFn = Callable[[ObservationBuffers], npt.NDArray[np.float32]]
IntArray = npt.NDArray[np.int64]

BUILTIN = ("random", "rules", "bach")
"""Policy names that are not files."""
DEFAULT_PITCH_MIN = 36
"""Lowest onset of the baselines' bass range (C2)."""
DEFAULT_PITCH_MAX = 62
"""Highest onset of the baselines' bass range (D4)."""
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
    pitch_min: int = DEFAULT_PITCH_MIN
    """Lowest onset the range mask allows."""
    pitch_max: int = DEFAULT_PITCH_MAX
    """Highest onset the range mask allows."""
    grid: Grid | None = None
    """The grid it was trained on, or None if it works on any grid."""
    reset: Callable[[EpisodeBatch], None] | None = None
    """Called once before a batch of pieces is played (the Bach oracle is given the true lines here)."""
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
    return EvalPolicy("random", RandomPolicy(seed), window=1, meta={"algo": "random", "seed": seed})


def bach_policy() -> EvalPolicy:
    oracle = BachOracle()
    return EvalPolicy(
        "bach", oracle, window=1, pitch_min=0, pitch_max=127, reset=oracle.reset, meta={"algo": "oracle"}
    )


def rules_policy(grid: Grid) -> EvalPolicy:
    """The rule-based accompanist of ``liveagent.music.rules`` (chord tones under the melody)."""
    try:
        rules = importlib.import_module("liveagent.music.rules")
    except ImportError as exc:
        raise PolicyLoadError(f"the rules policy needs liveagent.music.rules: {exc}") from exc
    kwargs: dict[str, Any] = {
        "steps_per_bar": grid.steps_per_bar,
        "pitch_min": DEFAULT_PITCH_MIN,
        "pitch_max": DEFAULT_PITCH_MAX,
        "mode": "anticipate",
    }
    try:
        acc = rules.RulesAccompanist(**kwargs, steps_per_beat=grid.steps_per_beat)
    except TypeError:  # an accompanist without the optional steps_per_beat field
        acc = rules.RulesAccompanist(**kwargs)
    window = int(getattr(acc, "window", 0) or 32)  # the live engine's RulesPolicy default
    reset = getattr(acc, "reset", None)
    return EvalPolicy(
        "rules",
        acc,
        window=window,
        mode=check_mode(str(getattr(acc, "mode", "anticipate"))),
        pitch_min=int(getattr(acc, "pitch_min", DEFAULT_PITCH_MIN)),
        pitch_max=int(getattr(acc, "pitch_max", DEFAULT_PITCH_MAX)),
        reset=(lambda _batch: reset()) if callable(reset) else None,
        meta={"algo": "rules"},
    )


def _meta_get(meta: Any, key: str, default: Any = None) -> Any:
    if isinstance(meta, Mapping):
        return meta.get(key, default)
    return getattr(meta, key, default)


def from_meta(name: str, fn: PolicyFn, meta: Any) -> EvalPolicy:
    """An EvalPolicy from contract metadata: a mapping (ONNX ``metadata_props``) or an object with
    attributes (``liveagent.live.policy.PolicyMeta``), so any live-side policy can be evaluated."""
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


def export_dirs() -> list[Path]:
    """Where exported policies are looked up by name: the installed ``liveagent.export`` package."""
    dirs: list[Path] = []
    with contextlib.suppress(ModuleNotFoundError, TypeError):
        dirs.append(Path(str(importlib.resources.files("liveagent.export"))))
    return dirs


def default_export_path() -> Path | None:
    """``export/default.onnx`` if it exists."""
    for d in export_dirs():
        p = d / f"{DEFAULT_EXPORT}.onnx"
        if p.is_file():
            return p
    return None


def _resolve_onnx(name_or_path: str) -> Path:
    p = Path(name_or_path)
    if p.suffix == ".onnx" or p.exists():
        if not p.is_file():
            raise PolicyLoadError(f"no such policy file: {p}")
        return p
    for d in export_dirs():
        cand = d / f"{name_or_path}.onnx"
        if cand.is_file():
            return cand
    known = sorted(q.stem for d in export_dirs() for q in d.glob("*.onnx"))
    raise PolicyLoadError(
        f"unknown policy {name_or_path!r}: not one of {', '.join(BUILTIN)}, not a file, and not an exported "
        f"policy (known: {', '.join(known) or 'none'})"
    )


def onnx_policy(name_or_path: str) -> EvalPolicy:
    """An exported policy by name (``export/NAME.onnx``) or path, run by the live engine's runner."""
    label = Path(name_or_path).stem if name_or_path.endswith(".onnx") else name_or_path
    try:
        live = importlib.import_module("liveagent.live.policy")
    except ImportError:
        live = None
    if live is not None and hasattr(live, "OnnxPolicy"):
        error_type = getattr(live, "PolicyError", RuntimeError)
        try:
            pol = live.OnnxPolicy.load(name_or_path)
        except error_type as exc:
            raise PolicyLoadError(str(exc)) from exc
        return from_meta(label, pol, pol.meta)
    log.info("liveagent.live.policy not available: running %s with onnxruntime directly", name_or_path)
    return _direct_onnx(label, _resolve_onnx(name_or_path))


def _direct_onnx(label: str, path: Path) -> EvalPolicy:
    """Fallback runner: onnxruntime on one thread, the contract checked from the metadata."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    try:
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors for corrupt files
        raise PolicyLoadError(f"{path}: cannot load ONNX model: {exc}") from exc
    meta = dict(session.get_modelmeta().custom_metadata_map)
    if meta.get("liveagent.contract") != "1":
        raise PolicyLoadError(
            f"{path}: not a liveagent contract-v1 policy (metadata liveagent.contract missing)"
        )
    inputs = {i.name for i in session.get_inputs()}
    if inputs != {"performer", "agent", "position"}:
        raise PolicyLoadError(f"{path}: inputs must be performer, agent, position; got {sorted(inputs)}")

    def run(obs: ObservationBuffers) -> npt.NDArray[np.float32]:
        out = session.run(["logits"], obs.as_feed())[0]
        return np.asarray(out, dtype=np.float32)

    meta["path"] = str(path)
    return from_meta(label, run, meta)


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
    "default_export_path",
    "from_meta",
    "load_policy",
    "onnx_policy",
    "random_policy",
    "rules_policy",
    "split_label",
]
