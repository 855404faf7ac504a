"""`liveagent train ALGO --config RECIPE.toml [--out DIR] [--resume]`.

Algorithms register here by module path (imported only when chosen, so this module never loads torch at
import). Each module exposes ``train(recipe: dict, out_dir: Path, resume: bool) -> Path`` returning the
checkpoint to export; it writes ``metrics.jsonl``, ``curves.png`` and checkpoints into ``out_dir``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
from pathlib import Path

log = logging.getLogger(__name__)

ALGOS: dict[str, str] = {
    "mle": "liveagent.train.mle",
    "dqn": "liveagent.train.dqn",
    "ppo": "liveagent.train.ppo",
    "adversarial": "liveagent.train.adversarial",
    "ensemble": "liveagent.train.ensemble",
    "vae": "liveagent.train.style_vae",
    "style": "liveagent.train.style_mle",
    "band_mle": "liveagent.train.band_mle",
    "band_ppo": "liveagent.train.band_ppo",
}
"""ALGO name -> module exposing ``train(recipe, out_dir, resume) -> Path``."""

DEFAULT_RUNS = Path("runs")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("algo", choices=sorted(ALGOS), help="training algorithm")
    parser.add_argument("--config", required=True, type=Path, help="recipe (TOML)")
    parser.add_argument(
        "--out", type=Path, default=None, help="run folder (default runs/<recipe name>-<algo>)"
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue from the run folder's last checkpoint"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="TABLE.KEY=VALUE",
        help="override a recipe value (TOML literal), e.g. --set mle.steps=200",
    )


def apply_overrides(recipe: dict[str, object], overrides: list[str]) -> dict[str, object]:
    """Apply ``TABLE.KEY=VALUE`` overrides (VALUE parsed as a TOML literal, else kept as a string)."""
    import tomllib

    for item in overrides:
        dotted, sep, raw = item.partition("=")
        if not sep:
            raise SystemExit(f"--set needs TABLE.KEY=VALUE, got {item!r}")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        *tables, key = dotted.strip().split(".")
        node = recipe
        for t in tables:
            node = node.setdefault(t, {})  # type: ignore[assignment]
            if not isinstance(node, dict):
                raise SystemExit(f"--set {item!r}: {t} is not a table")
        node[key] = value
    return recipe


def run(args: argparse.Namespace) -> int:
    from liveagent.train.recipes import load_recipe

    recipe = apply_overrides(load_recipe(args.config), args.set)
    name = str(recipe.get("name", args.config.stem))
    out = args.out or DEFAULT_RUNS / f"{name}-{args.algo}"
    module = importlib.import_module(ALGOS[args.algo])
    checkpoint = module.train(recipe, Path(out), bool(args.resume))
    print(f"checkpoint: {checkpoint}")
    print(f"logs: {Path(out) / 'metrics.jsonl'}  plot: {Path(out) / 'curves.png'}")
    return 0
