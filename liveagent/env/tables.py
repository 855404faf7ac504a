"""The eval table in GitHub Markdown (shared by `liveagent eval` and its through-serve rows)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from liveagent.env.evaluate import PolicyResult


def fmt_value(value: float, spec: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return format(int(value), spec) if spec == "d" else format(value, spec)


def markdown_table(results: Sequence[PolicyResult]) -> str:
    """The table in GitHub Markdown, one row per policy: the main columns, then the others (RL Tuner's
    statistics and similarity to the real part) in a second table."""
    from liveagent.env.metrics import COLUMNS, MAIN_COLUMNS

    main = [c for c in COLUMNS if c.key in MAIN_COLUMNS]
    rest = [c for c in COLUMNS if c.key not in MAIN_COLUMNS]
    tables = []
    for cols, reward in ((main, False), (rest, True)):
        head = "| policy | " + " | ".join(c.header for c in cols) + (" | mean reward |" if reward else " |")
        sep = "|---|" + "|".join("---:" for _ in cols) + ("|---:|" if reward else "|")
        rows = [
            f"| {r.name} | "
            + " | ".join(fmt_value(r.row.get(c.key, math.nan), c.fmt) for c in cols)
            + (f" | {fmt_value(r.rewards.get('total', math.nan), '.3f')} |" if reward else " |")
            for r in results
        ]
        tables.append("\n".join([head, sep, *rows]) + "\n")
    return "\n".join(tables)
