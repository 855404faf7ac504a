"""Recipes: TOML files that say how a policy was trained, read with ``tomllib``.

Conventions (every algorithm follows them, so one recipe can chain several algorithms):

- top level: ``name`` (str), ``description`` (str), ``seed`` (int), ``threads`` (int, torch threads);
- ``[net]``: fields of :class:`liveagent.train.networks.NetConfig`;
- ``[data]``: fields of :class:`liveagent.train.data.DataConfig` (corpus, parts, transposition);
- ``[mle]``, ``[dqn]``, ``[ppo]``, ...: one table per algorithm, fields of that algorithm's config dataclass.

Unknown keys inside a table are an error (:func:`from_table`), so a typo never silently trains the wrong
thing. :func:`dump_toml` writes the recipe back out next to an exported policy (``NAME.toml``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tomllib
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def load_recipe(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse a recipe file."""
    with open(path, "rb") as f:
        return tomllib.load(f)


def from_table(cls: type[T], table: dict[str, Any] | None, where: str = "") -> T:
    """Build dataclass ``cls`` from a TOML table, rejecting unknown keys."""
    table = dict(table or {})
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(table) - names)
    if unknown:
        raise ValueError(f"recipe table [{where or cls.__name__}]: unknown key(s) {unknown}")
    return cls(**table)


def _fmt_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # JSON string escapes are valid TOML basic strings
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_fmt_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_fmt_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def _key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else json.dumps(k)


def dump_toml(data: dict[str, Any]) -> str:
    """Serialize a recipe: scalars first, then one ``[table]`` per nested dict (nested tables recurse)."""
    lines: list[str] = []

    def emit(table: dict[str, Any], prefix: str) -> None:
        scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
        tables = {k: v for k, v in table.items() if isinstance(v, dict)}
        if prefix and (scalars or not tables):
            if lines:
                lines.append("")
            lines.append(f"[{prefix}]")
        for k, v in scalars.items():
            lines.append(f"{_key(k)} = {_fmt_value(v)}")
        for k, v in tables.items():
            emit(v, f"{prefix}.{_key(k)}" if prefix else _key(k))

    emit(data, "")
    return "\n".join(lines) + "\n"


def write_toml(data: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    path.write_text(dump_toml(data), encoding="utf-8")
    return path
