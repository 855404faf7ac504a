"""Export to ONNX under the policy contract v1 (only the network: sampling and masks stay outside).

As in Stable-Baselines3's export guide, only the forward path that maps observations to action scores is
traced (value heads, optimizers and target networks stay behind). The legacy TorchScript-based exporter
(``dynamo=False``) is used: it is deterministic and needs nothing beyond torch and onnx for this graph.

Every export is checked before it is kept: ``onnx.checker``, the contract's input/output names, types and
dynamic batch, and parity with torch on random and on corpus observations (max |diff| <= 1e-4 and
identical argmax). The results and the single-sample latency go into the model card ``NAME.json``
next to ``NAME.onnx``, with the recipe ``NAME.toml`` (both written by :mod:`~liveagent.train.model_card`,
with the contract's metadata). The checks themselves (parity, latency, their observations) are
:mod:`~liveagent.train.export_check`.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from liveagent.music.piece import Piece
from liveagent.music.tokens import ONSET_BASE, VOCAB_SIZE
from liveagent.train.checkpoint import load_checkpoint
from liveagent.train.export_check import (
    OUTPUT_NAME,
    PARITY_TOL,
    ExportError,
    check_parity,
    corpus_observations,
    measure_onnx_latency,
    measure_torch_latency,
    onnx_session,
    random_observations,
    random_styles,
    verify_export,
)
from liveagent.train.model_card import (
    STYLE_INPUT_NAME,
    contract_metadata,
    dataset_name,
    style_metadata,
    write_card,
)
from liveagent.train.networks import NetConfig, PolicyNet, param_count

__all__ = [
    "AUX_OUTPUT_NAME",
    "INPUT_NAMES",
    "OPSET",
    "OUTPUT_NAME",
    "PARITY_TOL",
    "TERM_WEIGHTS",
    "EnsembleNet",
    "ExportError",
    "ExportResult",
    "OnsetBoost",
    "WithPerformerNext",
    "check_parity",
    "corpus_observations",
    "export_checkpoint",
    "export_ensemble",
    "export_onnx",
    "input_names",
    "measure_onnx_latency",
    "measure_torch_latency",
    "onnx_session",
    "random_observations",
    "random_styles",
    "set_term_weights",
    "verify_export",
]

log = logging.getLogger(__name__)

INPUT_NAMES = ("performer", "agent", "position")
AUX_OUTPUT_NAME = "performer_next"
"""Optional output (contract addition): logits [B, 130] of the performer's next unseen token."""
OPSET = 17


def input_names(config: NetConfig) -> tuple[str, ...]:
    """The graph's inputs: the three of v1, plus ``style`` for a style-conditioned network (1.2)."""
    return (*INPUT_NAMES, STYLE_INPUT_NAME) if config.style_dim else INPUT_NAMES


def _dummy_inputs(config: NetConfig, batch: int = 2) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    inputs: tuple[torch.Tensor, ...] = (
        torch.randint(0, VOCAB_SIZE, (batch, config.window), generator=g),
        torch.randint(0, VOCAB_SIZE, (batch, config.window), generator=g),
        torch.randint(0, config.steps_per_bar, (batch,), generator=g),
    )
    if config.style_dim:
        inputs += (torch.randn(batch, config.style_dim, generator=g),)
    return inputs


class WithPerformerNext(nn.Module):
    """``(logits, performer_next)`` of a :class:`PolicyNet` with an aux head: the optional second output."""

    def __init__(self, net: PolicyNet) -> None:
        super().__init__()
        self.net = net

    def forward(
        self,
        performer: torch.Tensor,
        agent: torch.Tensor,
        position: torch.Tensor,
        style: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        logits, _, aux = self.net.heads(performer, agent, position, style)
        assert aux is not None
        return logits, aux


def export_onnx(
    module: nn.Module,
    config: NetConfig,
    path: str | os.PathLike[str],
    metadata: dict[str, str],
    output_names: Sequence[str] = (OUTPUT_NAME,),
    example: tuple[Sequence[str], tuple[torch.Tensor, ...]] | None = None,
) -> Path:
    """Trace ``module.forward(performer, agent, position[, style]) -> logits[, more]`` to ``path``
    (``example``: other input names and example tensors, e.g. a band's).

    The batch dimension is dynamic; the window is fixed (it is part of the contract). The file is
    verified by ``onnx.checker`` before this returns.
    """
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = module.eval()
    batch = {0: "batch"}
    inputs, tensors = example if example is not None else (input_names(config), _dummy_inputs(config))
    tmp = path.with_name(path.name + ".tmp")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter is chosen on purpose
        torch.onnx.export(
            module,
            tensors,
            str(tmp),
            input_names=list(inputs),
            output_names=list(output_names),
            dynamic_axes={name: batch for name in (*inputs, *output_names)},
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    model = onnx.load(str(tmp))
    del model.metadata_props[:]
    for k, v in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    model.producer_name = "liveagent"
    model.doc_string = "liveagent policy (contract v1): performer, agent, position -> logits"
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(tmp))
    os.replace(tmp, path)
    return path


# ---------------------------------------------------------------------------------------------------------
# Checkpoint -> NAME.onnx + NAME.json + NAME.toml


@dataclass
class ExportResult:
    """What an export wrote and measured."""

    onnx_path: Path
    card_path: Path
    recipe_path: Path | None
    card: dict[str, Any] = field(default_factory=dict)


class OnsetBoost(nn.Module):
    """Class-first greedy decoding baked into the graph (``boost`` in 0..1; 0 = the plain logits).

    Why: a token-level argmax compares HOLD (one token) with every single pitch, so when the policy is
    sure a new note starts but unsure which (the mass spread over a few pitches), greedy decoding holds
    or rests instead and the line thins out. This adds ``boost * (log P(onset) - max_p log P(p))`` to
    every onset token: the pitches keep their relative probabilities, and with ``boost = 1`` the best
    pitch scores exactly ``log P(onset)``, so greedy decoding picks the class first (REST, HOLD or a new
    note), then the most likely pitch. Sampling with a temperature then favours onsets more than the
    network did (by at most the spread of the pitch distribution); it is recorded in the model card.
    A shift (not a power) keeps float32 rounding as small as the network's own (parity stays <= 1e-4).
    """

    def __init__(self, net: nn.Module, boost: float) -> None:
        super().__init__()
        if not 0.0 <= boost <= 1.0:
            raise ValueError(f"onset boost must be in 0..1, got {boost}")
        self.net = net
        self.boost = float(boost)

    def forward(
        self,
        performer: torch.Tensor,
        agent: torch.Tensor,
        position: torch.Tensor,
        style: torch.Tensor | None = None,
    ) -> torch.Tensor:
        logits = (
            self.net(performer, agent, position)
            if style is None
            else self.net(performer, agent, position, style)
        )
        onsets = logits[:, ONSET_BASE:]
        # log P(onset) - max_p log P(p) = logsumexp(onsets) - max(onsets): the softmax normalizer cancels.
        gap = torch.logsumexp(onsets, dim=-1, keepdim=True) - onsets.amax(dim=-1, keepdim=True)
        return torch.cat([logits[:, :ONSET_BASE], onsets + self.boost * gap], dim=1)


def export_checkpoint(
    checkpoint: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    pieces: Sequence[Piece] | None = None,
    eval_row: dict[str, Any] | None = None,
    n_parity: int = 1000,
    latency: bool = True,
    onset_boost: float | None = None,
) -> ExportResult:
    """Checkpoint -> verified ``NAME.onnx`` + ``NAME.json`` + ``NAME.toml``; raises :class:`ExportError`.

    ``onset_boost`` (default: the recipe's ``[export] onset_boost``, else 0 = plain logits) wraps the
    network in :class:`OnsetBoost`; the parity checks then compare against the wrapped torch module.
    """
    ck = load_checkpoint(checkpoint)
    if ck.net_config.extra.get("band"):
        raise ExportError(f"{checkpoint}: a band network: export it with liveagent.train.band_export")
    base = ck.build_net()
    set_term_weights(base, ck.recipe.get("export", {}))
    net: nn.Module = base
    n_params = param_count(net) - _value_params(ck.build_net())
    if onset_boost is None:
        onset_boost = float(ck.recipe.get("export", {}).get("onset_boost", 0.0))
    if onset_boost != 0.0:
        net = OnsetBoost(net, onset_boost).eval()
    out_path = Path(out_path)
    metrics = eval_row if eval_row is not None else ck.metrics
    meta = contract_metadata(ck.net_config, algo=ck.algo, dataset=dataset_name(ck.recipe), metrics=metrics)
    meta["onset_boost"] = repr(onset_boost)
    export_cfg = ck.recipe.get("export", {})
    if export_cfg.get("prior"):
        meta["prior"] = str(export_cfg["prior"])  # `liveagent eval` reports KL and agreement to it
    for name in TERM_WEIGHTS:
        weight = getattr(base, name)
        if weight is not None:
            meta[name] = f"{float(weight.detach()):.4f}"
    if ck.net_config.style_dim:
        if "style" not in ck.extra:
            raise ExportError(f"{checkpoint}: a style network without its moods (extra['style'])")
        meta |= style_metadata(ck.extra["style"])
    outputs: tuple[str, ...] = (OUTPUT_NAME,)
    exported: nn.Module = net
    if isinstance(net, PolicyNet) and net.aux_head is not None:
        outputs = (OUTPUT_NAME, AUX_OUTPUT_NAME)
        exported = WithPerformerNext(net).eval()
    export_onnx(exported, ck.net_config, out_path, meta, outputs)
    try:
        verification = verify_export(net, ck.net_config, out_path, pieces=pieces, n=n_parity, latency=latency)
    except ExportError:
        out_path.unlink(missing_ok=True)
        raise
    training = {"checkpoint": str(checkpoint), "step": ck.step, "metrics": ck.metrics, "parameters": n_params,
                "onset_boost": onset_boost}  # fmt: skip
    learned = ck.build_net()
    training["learned_term_weights"] = {
        name: float(getattr(learned, name).detach())
        for name in TERM_WEIGHTS
        if getattr(learned, name) is not None
    }
    style = {"style": ck.extra["style"]} if ck.net_config.style_dim else None
    card_path, recipe_path, card = write_card(
        out_path, config=ck.net_config, metadata=meta, recipe=ck.recipe, training=training,
        verification=verification, eval_row=eval_row, extra=style,
    )  # fmt: skip
    return ExportResult(out_path, card_path, recipe_path, card)


TERM_WEIGHTS = ("ec_weight", "parallel_weight")


def set_term_weights(net: PolicyNet, export_cfg: dict[str, Any]) -> None:
    """Apply the recipe's ``[export]`` overrides of the graph's term weights (a value chosen on the valid
    split after training); the learned value is kept in the card's training metrics."""
    for name in TERM_WEIGHTS:
        if name not in export_cfg:
            continue
        weight = getattr(net, name)
        if weight is None:
            raise ExportError(f"[export] {name} given, but the network has no such term")
        learned = float(weight.detach())
        with torch.no_grad():
            weight.fill_(float(export_cfg[name]))
        log.info(
            "export: %s %.4f (learned) -> %.4f (recipe [export])", name, learned, float(export_cfg[name])
        )


def _value_params(net: PolicyNet) -> int:
    return param_count(net.value_head) if net.value_head is not None else 0


# ---------------------------------------------------------------------------------------------------------
# Ensembles of policies as one graph


class EnsembleNet(nn.Module):
    """Average the members' probabilities; output ``log(mean_i softmax(logits_i))`` as ``logits``.

    Log of the mean probability is a valid logits vector (softmax of it gives back the mean), so the
    sampler and greedy decoding work unchanged. Members must share the contract (window, grid, mode).
    """

    def __init__(self, members: Sequence[nn.Module], weights: Sequence[float] | None = None) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)
        w = torch.tensor(weights if weights is not None else [1.0] * len(members), dtype=torch.float32)
        if w.shape[0] != len(members) or bool((w < 0).any()) or float(w.sum()) <= 0:
            raise ValueError("ensemble weights must be non-negative, one per member, not all zero")
        self.log_weights: torch.Tensor
        self.register_buffer("log_weights", torch.log(w / w.sum()))

    def forward(self, performer: torch.Tensor, agent: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        logp = torch.stack([torch.log_softmax(m(performer, agent, position), dim=-1) for m in self.members])
        return torch.logsumexp(logp + self.log_weights.view(-1, 1, 1), dim=0)


def export_ensemble(
    members: Sequence[PolicyNet],
    path: str | os.PathLike[str],
    *,
    weights: Sequence[float] | None = None,
    algo: str = "ensemble",
    dataset: str = "",
    metrics: dict[str, Any] | None = None,
    recipe: dict[str, Any] | None = None,
    pieces: Sequence[Piece] | None = None,
    n_parity: int = 1000,
) -> ExportResult:
    """Export several policies as ONE verified ONNX graph averaging their probabilities (+ card, recipe)."""
    configs = [m.config for m in members]
    first = configs[0]
    for c in configs[1:]:
        diff = [
            k
            for k in ("window", "steps_per_beat", "beats_per_bar", "mode")
            if getattr(c, k) != getattr(first, k)
        ]
        if diff:
            raise ValueError(f"ensemble members disagree on {diff}")
    config = NetConfig.from_dict(
        first.to_dict()
        | {"pitch_min": min(c.pitch_min for c in configs), "pitch_max": max(c.pitch_max for c in configs)}
    )
    net = EnsembleNet([m.eval() for m in members], weights).eval()
    path = Path(path)
    meta = contract_metadata(config, algo=algo, dataset=dataset, metrics=metrics)
    export_onnx(net, config, path, meta)
    try:
        verification = verify_export(net, config, path, pieces=pieces, n=n_parity)
    except ExportError:
        path.unlink(missing_ok=True)
        raise
    training = {"members": len(members), "weights": list(weights) if weights is not None else None,
                "parameters": param_count(net)}  # fmt: skip
    card_path, recipe_path, card = write_card(
        path, config=config, metadata=meta, recipe=recipe or {}, training=training, verification=verification,
        eval_row=metrics,
    )  # fmt: skip
    return ExportResult(path, card_path, recipe_path, card)
