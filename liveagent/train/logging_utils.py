"""Run bookkeeping shared by every algorithm: the output folder, JSONL metrics, progress bars, threads.

A run folder holds ``metrics.jsonl`` (one JSON object per logged step: ``{"step", "time", "tag", ...}``),
``curves.png`` (drawn by :mod:`liveagent.train.plot` from the JSONL), ``recipe.toml`` (what was run),
and the checkpoints (``last.pt``, ``best.pt``). JSONL appends, so a resumed run continues the same file.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from pathlib import Path
from types import TracebackType
from typing import Any

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
PLOT_FILE = "curves.png"


def set_threads(n: int) -> None:
    """Bound torch's CPU threads: the machines are shared, and 1-2 threads is fastest for small nets."""
    import torch

    torch.set_num_threads(max(1, int(n)))
    with contextlib.suppress(RuntimeError):  # already set once in this process
        torch.set_num_interop_threads(1)


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if hasattr(v, "item"):
        return _clean(v.item())
    return v


class RunLogger:
    """Appends metrics to ``out_dir/metrics.jsonl`` and mirrors them to ``logging`` at INFO."""

    def __init__(self, out_dir: str | os.PathLike[str], *, append: bool = False) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.out_dir / METRICS_FILE
        self._start = time.monotonic()
        self._f = open(self.path, "a" if append else "w", encoding="utf-8")  # noqa: SIM115

    def log(self, step: int, tag: str = "train", **metrics: Any) -> None:
        """Record ``metrics`` at ``step`` under ``tag`` (e.g. train, valid)."""
        row = {"step": int(step), "time": round(time.monotonic() - self._start, 3), "tag": tag}
        row.update({k: _clean(v) for k, v in metrics.items()})
        self._f.write(json.dumps(row) + "\n")
        self._f.flush()
        log.info(
            "%s step %d: %s",
            tag,
            step,
            ", ".join(f"{k}={v}" for k, v in row.items() if k not in ("step", "tag", "time")),
        )

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()

    def __enter__(self) -> RunLogger:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def read_metrics(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All rows of a ``metrics.jsonl``."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                rows.append(json.loads(line))
    return rows


def progress(total: int, *, initial: int = 0, desc: str = "", disable: bool | None = None) -> Any:
    """A tqdm bar (to stderr); disabled automatically when stderr is not a terminal, unless forced."""
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, disable=disable, dynamic_ncols=True, leave=False)
