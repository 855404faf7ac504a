"""The policy contract: the metadata a policy declares (:class:`PolicyMeta`, validated from ONNX
``metadata_props``) and the inputs and outputs its graph must have (:func:`check_io`).

Split out of :mod:`liveagent.live.engine.policy` (which re-exports these names and runs the files): what a
policy file must say and look like is checked here, before onnxruntime runs anything of it, and a file that
breaks it is refused with a :class:`PolicyError` that says what is wrong. Nothing here imports onnxruntime.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from liveagent.music.band import BandSpec
from liveagent.music.features import MODES, Mode
from liveagent.music.tokens import VOCAB_SIZE

log = logging.getLogger(__name__)

CONTRACT_VERSION = 1
INPUTS = {"performer": 2, "agent": 2, "position": 1}
"""Contract-v1 input names and ranks (all int64)."""
STYLE_INPUT = "style"
"""Optional input (contract 1.2): float32 [B, style_dim], a style latent. The runner feeds it when the model
has it: the metadata's ``style_default`` mood until
:meth:`~liveagent.live.engine.policy.OnnxPolicy.set_style` says otherwise."""
BAND_INPUTS = {"others": 3, "voice": 1}
"""Optional inputs of a band policy (metadata ``band``), int64: ``others`` [B, V, W], ``voice`` [B]
(:mod:`liveagent.music.band`)."""
REQUIRED_META = (
    "liveagent.contract",
    "steps_per_beat",
    "beats_per_bar",
    "window",
    "mode",
    "part",
    "pitch_min",
    "pitch_max",
    "algo",
    "dataset",
    "metrics",
)


class PolicyError(Exception):
    """A policy that cannot be loaded or breaks the contract; the message says what is wrong."""


@dataclass(frozen=True)
class PolicyMeta:
    """What a policy declares about itself (ONNX ``metadata_props``, mirrored in NAME.json)."""

    contract: int = CONTRACT_VERSION
    """Policy contract version (1)."""
    steps_per_beat: int = 4
    """Grid steps per quarter-note beat the policy was trained on."""
    beats_per_bar: int = 4
    """Beats per bar of that grid."""
    window: int = 32
    """W: steps of history in the ``performer`` and ``agent`` inputs."""
    mode: Mode = "anticipate"
    """``anticipate`` (decide before hearing step t), ``follow`` or v1's ``react`` (both hear step t)."""
    part: str = "bass"
    """Which voice it plays (free text: bass, alto, ...)."""
    pitch_min: int = 0
    """Lowest pitch it was trained to play (the engine's default range mask)."""
    pitch_max: int = 127
    """Highest pitch it was trained to play."""
    algo: str = ""
    """Training algorithm (mle, dqn, ppo, rules, ...)."""
    dataset: str = ""
    """Training corpus."""
    metrics: dict[str, Any] = field(default_factory=dict)
    """The eval table row (JSON)."""
    prior: str = ""
    """Optional (1.1): the policy it was fine-tuned from (`liveagent eval` reports KL and agreement to it)."""
    style_dim: int = 0
    """Optional (1.2): D of the ``style`` input (0 = none)."""
    moods: dict[str, tuple[float, ...]] = field(default_factory=dict)
    """Optional (1.2): named points of the style latent (metadata ``moods``: name -> {"z": [...], ...})."""
    style_default: str = ""
    """Optional (1.2): the mood fed until told otherwise (``neutral``)."""
    style_axes: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = field(default_factory=dict)
    """Optional (1.2): named lines of the latent, ``z = origin + a * direction`` (metadata ``style_axes``):
    name -> (origin, direction); ``pc1`` and ``pc2`` span the 2-D pad."""
    band: BandSpec | None = None
    """Optional (band addition): the voices one band policy plays (metadata ``band``); it then takes the
    inputs ``others`` and ``voice`` and is played with ``--band``."""

    @property
    def steps_per_bar(self) -> int:
        return self.steps_per_beat * self.beats_per_bar

    @classmethod
    def from_props(cls, props: Mapping[str, str], source: str = "policy") -> PolicyMeta:
        """Parse and validate ``metadata_props``; raises :class:`PolicyError` naming the bad field."""
        missing = [k for k in REQUIRED_META if k not in props]
        if missing:
            raise PolicyError(
                f"{source}: metadata missing {', '.join(missing)} (contract v1 needs all of them)"
            )

        def as_int(key: str, lo: int, hi: int) -> int:
            raw = props[key]
            try:
                v = int(str(raw).strip())
            except ValueError:
                raise PolicyError(f"{source}: metadata {key}={raw!r} is not an integer") from None
            if not lo <= v <= hi:
                raise PolicyError(f"{source}: metadata {key}={v} outside {lo}..{hi}")
            return v

        contract = as_int("liveagent.contract", 0, 1_000_000)
        if contract != CONTRACT_VERSION:
            raise PolicyError(
                f"{source}: contract version {contract}, this runtime speaks {CONTRACT_VERSION}"
            )
        mode = props["mode"].strip()
        if mode not in MODES:
            raise PolicyError(f"{source}: metadata mode={mode!r}, expected one of {MODES}")
        pmin, pmax = as_int("pitch_min", 0, 127), as_int("pitch_max", 0, 127)
        if pmin > pmax:
            raise PolicyError(f"{source}: pitch_min {pmin} > pitch_max {pmax}")
        try:
            metrics = json.loads(props["metrics"]) if props["metrics"].strip() else {}
        except json.JSONDecodeError as e:
            raise PolicyError(f"{source}: metadata metrics is not JSON ({e})") from None
        if not isinstance(metrics, dict):
            raise PolicyError(f"{source}: metadata metrics must be a JSON object")
        return cls(
            contract=contract,
            steps_per_beat=as_int("steps_per_beat", 1, 96),
            beats_per_bar=as_int("beats_per_bar", 1, 32),
            window=as_int("window", 1, 4096),
            mode=mode,  # type: ignore[arg-type]
            part=props["part"],
            pitch_min=pmin,
            pitch_max=pmax,
            algo=props["algo"],
            dataset=props["dataset"],
            metrics=metrics,
            prior=props.get("prior", ""),
            **_style_props(props, source, as_int("style_dim", 1, 4096) if "style_dim" in props else 0),
            band=_band_prop(props, source),
        )


def _band_prop(props: Mapping[str, str], source: str) -> BandSpec | None:
    """The metadata ``band`` (a :class:`BandSpec` JSON), None for a solo policy."""
    if "band" not in props:
        return None
    try:
        spec = BandSpec.from_json(props["band"])
    except ValueError as e:
        raise PolicyError(f"{source}: {e}") from None
    return spec


def _style_props(props: Mapping[str, str], source: str, dim: int) -> dict[str, Any]:
    """``style_dim``, ``moods`` and ``style_default`` of contract 1.2 (all empty without ``style_dim``)."""
    if not dim:
        return {}
    try:
        raw = json.loads(props.get("moods", "") or "{}")
    except json.JSONDecodeError as e:
        raise PolicyError(f"{source}: metadata moods is not JSON ({e})") from None
    moods: dict[str, tuple[float, ...]] = {}
    for name, mood in raw.items() if isinstance(raw, dict) else ():
        z = mood.get("z") if isinstance(mood, dict) else mood
        if not isinstance(z, list) or len(z) != dim or not all(isinstance(x, int | float) for x in z):
            raise PolicyError(f"{source}: mood {name!r} needs z = {dim} numbers (style_dim), got {z!r}")
        moods[str(name)] = tuple(float(x) for x in z)
    default = props.get("style_default", "neutral" if "neutral" in moods else "")
    if default and default not in moods:
        raise PolicyError(f"{source}: style_default {default!r} is not one of the moods {sorted(moods)}")
    return {"style_dim": dim, "moods": moods, "style_default": default, "style_axes": _style_axes(props, dim)}


def _style_axes(props: Mapping[str, str], dim: int) -> dict[str, tuple[tuple[float, ...], tuple[float, ...]]]:
    """The metadata ``style_axes`` (a JSON list of {name, origin, direction}); an axis that does not fit
    ``style_dim`` is left out with a warning (the policy still plays; only the pad needs pc1 and pc2)."""
    try:
        raw = json.loads(props.get("style_axes", "") or "[]")
    except json.JSONDecodeError as e:
        log.warning("metadata style_axes is not JSON (%s): no style pad", e)
        return {}
    axes: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {}
    for axis in raw if isinstance(raw, list) else ():
        if not isinstance(axis, dict):
            continue
        origin, direction = axis.get("origin"), axis.get("direction")
        ok = all(
            isinstance(v, list) and len(v) == dim and all(isinstance(x, int | float) for x in v)
            for v in (origin, direction)
        )
        if not ok:
            log.warning("style axis %r does not fit style_dim %d: left out", axis.get("name"), dim)
            continue
        assert isinstance(origin, list) and isinstance(direction, list)
        axes[str(axis.get("name"))] = (tuple(map(float, origin)), tuple(map(float, direction)))
    return axes


def _dims(shape: list[Any]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def check_io(session: Any, meta: PolicyMeta, src: str) -> None:
    """The session's inputs and outputs against the contract and the metadata (names, types, ranks, the
    window, style D, band V, the logits' vocab); :class:`PolicyError` names the first mismatch."""
    inputs = {i.name: i for i in session.get_inputs()}
    missing = [n for n in INPUTS if n not in inputs]
    if missing:
        raise PolicyError(f"{src}: missing input(s) {', '.join(missing)}; has {', '.join(inputs) or 'none'}")
    extra = [
        n
        for n in inputs
        if n not in INPUTS
        and not (n == STYLE_INPUT and meta.style_dim)
        and not (n in BAND_INPUTS and meta.band is not None)
    ]
    if extra:
        raise PolicyError(
            f"{src}: unexpected input(s) {', '.join(extra)} (contract v1: performer, agent, position; "
            "1.2 adds style with the metadata style_dim; a band adds others and voice with the metadata band)"
        )
    if meta.band is not None:
        missing = [n for n in BAND_INPUTS if n not in inputs]
        if missing:
            raise PolicyError(f"{src}: metadata band, but no input(s) {', '.join(missing)}")
        for name, rank in BAND_INPUTS.items():
            arg = inputs[name]
            if arg.type != "tensor(int64)" or len(arg.shape) != rank:
                raise PolicyError(
                    f"{src}: input {name} is {arg.type} {_dims(list(arg.shape))}, needs int64 rank {rank}"
                )
            dims = list(arg.shape)
            if name == "others" and isinstance(dims[1], int) and dims[1] != meta.band.size:
                raise PolicyError(
                    f"{src}: input others has V = {dims[1]}, metadata band has {meta.band.size} voices"
                )
    for name, rank in INPUTS.items():
        arg = inputs[name]
        if arg.type != "tensor(int64)":
            raise PolicyError(f"{src}: input {name} is {arg.type}, contract v1 needs tensor(int64)")
        shape = list(arg.shape)
        if len(shape) != rank:
            raise PolicyError(f"{src}: input {name} has shape {_dims(shape)}, needs rank {rank}")
        if rank == 2 and isinstance(shape[1], int) and shape[1] != meta.window:
            raise PolicyError(
                f"{src}: input {name} has window {shape[1]} but metadata says window={meta.window}"
            )
    if STYLE_INPUT in inputs:
        arg = inputs[STYLE_INPUT]
        shape = list(arg.shape)
        if arg.type != "tensor(float)" or len(shape) != 2:
            raise PolicyError(
                f"{src}: input style is {arg.type} {_dims(shape)}, contract 1.2 needs float32 [B, D]"
            )
        if isinstance(shape[1], int) and shape[1] != meta.style_dim:
            raise PolicyError(
                f"{src}: input style has D = {shape[1]} but metadata says style_dim={meta.style_dim}"
            )
    outputs = session.get_outputs()
    names = [o.name for o in outputs]
    if "logits" not in names:
        raise PolicyError(f"{src}: no output named 'logits' (has {', '.join(names) or 'none'})")
    lo = outputs[names.index("logits")]
    if lo.type != "tensor(float)":
        raise PolicyError(f"{src}: output logits is {lo.type}, contract v1 needs tensor(float)")
    shape = list(lo.shape)
    if len(shape) != 2 or (isinstance(shape[1], int) and shape[1] != VOCAB_SIZE):
        raise PolicyError(
            f"{src}: output logits has shape {_dims(shape)}, needs [B, {VOCAB_SIZE}] (wrong vocab?)"
        )
