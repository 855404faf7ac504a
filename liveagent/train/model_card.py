"""The model card and the metadata of an exported policy: what is written down about a graph.

``NAME.json`` (the card: contract, metadata, training, verification, eval, recipe), ``NAME.toml`` (the
recipe) and the ONNX ``metadata_props`` of contract v1 (and 1.2's style fields). Kept apart from
:mod:`~liveagent.train.export`, which builds, traces and verifies the graph, because writing these down
needs no torch and has callers of its own (the band export, the ensemble export, ``liveagent export
--eval`` updating a card once its eval row is known).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from liveagent.music.tokens import VOCAB_SIZE
from liveagent.train.networks import NetConfig
from liveagent.train.recipes import load_recipe, write_toml

__all__ = [
    "CONTRACT_FIELDS",
    "CONTRACT_VERSION",
    "STYLE_INPUT_NAME",
    "contract_metadata",
    "dataset_name",
    "set_metadata",
    "style_metadata",
    "update_eval",
    "write_card",
]

CONTRACT_VERSION = 1
CONTRACT_FIELDS = ("steps_per_beat", "beats_per_bar", "window", "mode", "part", "pitch_min", "pitch_max")
STYLE_INPUT_NAME = "style"
"""Optional input (contract 1.2): float32 [B, D], the style latent of a network with ``style_dim = D``."""


def contract_metadata(
    config: NetConfig, *, algo: str, dataset: str, metrics: dict[str, Any] | None = None
) -> dict[str, str]:
    """The ONNX ``metadata_props`` of contract v1 (all values are strings)."""
    meta = {"liveagent.contract": str(CONTRACT_VERSION)}
    meta |= {k: str(getattr(config, k)) for k in CONTRACT_FIELDS}
    meta |= {"algo": algo, "dataset": dataset, "metrics": json.dumps(metrics or {}, sort_keys=True)}
    return meta


def style_metadata(spec: dict[str, Any]) -> dict[str, str]:
    """The contract-1.2 metadata of a style policy (from :func:`liveagent.train.style_vae.style_spec`):
    ``style_dim`` (D), ``style_default`` (the mood the runtime feeds until told otherwise), ``moods`` (JSON:
    name -> ``z``, the features that define it, its bars' mean features), ``style_axes`` (JSON: the pad's
    principal axes and the mood axes, each ``z = origin + a * direction``) and ``style_features`` (JSON: what
    each feature measures)."""
    return {
        "style_dim": str(int(spec["dim"])),
        "style_default": str(spec.get("default", "neutral")),
        "moods": json.dumps(spec["moods"], sort_keys=True),
        "style_axes": json.dumps(spec["axes"]),
        "style_features": json.dumps(spec.get("features", {}), sort_keys=True),
    }


def set_metadata(path: str | os.PathLike[str], updates: dict[str, str]) -> None:
    """Rewrite some ``metadata_props`` of an exported file in place (e.g. the eval row once it is known)."""
    import onnx

    model = onnx.load(str(path))
    props = {p.key: p.value for p in model.metadata_props} | updates
    del model.metadata_props[:]
    for k, v in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_card(
    onnx_path: Path,
    *,
    config: NetConfig,
    metadata: dict[str, str],
    recipe: dict[str, Any],
    training: dict[str, Any],
    verification: dict[str, Any],
    eval_row: dict[str, Any] | None,
    extra: dict[str, Any] | None = None,
) -> tuple[Path, Path | None, dict[str, Any]]:
    """Write ``NAME.json`` (the model card) and ``NAME.toml`` (the recipe) next to ``NAME.onnx``."""
    card: dict[str, Any] = {
        "name": onnx_path.stem,
        "file": onnx_path.name,
        "sha256": _sha256(onnx_path),
        "size_bytes": onnx_path.stat().st_size,
        "contract": {
            "version": CONTRACT_VERSION,
            "inputs": {
                "performer": ["B", config.window, "int64"],
                "agent": ["B", config.window, "int64"],
                "position": ["B", "int64"],
            }
            | ({STYLE_INPUT_NAME: ["B", config.style_dim, "float32"]} if config.style_dim else {}),
            "outputs": {name: ["B", VOCAB_SIZE, "float32"] for name in _output_names(onnx_path)},
            "metadata": {k: v for k, v in metadata.items() if k != "metrics"},
        },
        "algo": metadata.get("algo", ""),
        "dataset": metadata.get("dataset", ""),
        "eval": eval_row or {},
        "training": training,
        "network": config.to_dict(),
        **verification,
        "recipe": recipe,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if extra:
        card |= extra
    card_path = onnx_path.with_suffix(".json")
    card_path.write_text(json.dumps(card, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    recipe_path = _write_recipe(recipe, onnx_path.with_suffix(".toml")) if recipe else None
    return card_path, recipe_path, card


def _output_names(onnx_path: Path) -> list[str]:
    import onnx

    return [o.name for o in onnx.load(str(onnx_path), load_external_data=False).graph.output]


def _write_recipe(recipe: dict[str, Any], path: Path) -> Path:
    """Write NAME.toml, unless it already holds this very recipe (then its comments are kept)."""
    if path.exists():
        try:
            if load_recipe(path) == recipe:
                return path
        except ValueError:  # tomllib.TOMLDecodeError: an unreadable old file gets replaced
            pass
    return write_toml(recipe, path)


def dataset_name(recipe: dict[str, Any]) -> str:
    """``chorales:soprano->bass``; a MIDI folder by its name only (``midi(my_songs):index:0->index:1``):
    the card ships with the policy, the user's full path stays on their machine."""
    from liveagent.train.data import CORPUS_PARTS

    data = recipe.get("data", {})
    corpus = str(data.get("corpus", "chorales"))
    perf, acc = CORPUS_PARTS.get(corpus, ("soprano", "bass"))
    label = f"midi({Path(str(data.get('path', ''))).expanduser().name})" if corpus == "midi" else corpus
    return f"{label}:{data.get('performer') or perf}->{data.get('accompaniment') or acc}"


def update_eval(onnx_path: str | os.PathLike[str], eval_row: dict[str, Any]) -> None:
    """Record an eval row in both the ONNX metadata (``metrics``) and the model card's ``eval``."""
    onnx_path = Path(onnx_path)
    set_metadata(onnx_path, {"metrics": json.dumps(eval_row, sort_keys=True)})
    card_path = onnx_path.with_suffix(".json")
    card = json.loads(card_path.read_text(encoding="utf-8")) if card_path.exists() else {}
    card["eval"] = eval_row
    card["sha256"] = _sha256(onnx_path)
    card["size_bytes"] = onnx_path.stat().st_size
    card_path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
