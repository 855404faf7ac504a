"""Training curves as a PNG, drawn from a run's ``metrics.jsonl`` (matplotlib, Agg: no display needed)."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

from liveagent.train.logging_utils import read_metrics


def plot_curves(
    metrics_path: str | os.PathLike[str], png_path: str | os.PathLike[str], title: str = ""
) -> Path:
    """One subplot per metric name, one line per tag (train / valid / ...), x = step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(metrics_path)
    series: dict[str, dict[str, tuple[list[float], list[float]]]] = defaultdict(dict)
    for row in rows:
        tag = str(row.get("tag", "train"))
        for k, v in row.items():
            if k in ("step", "time", "tag") or not isinstance(v, int | float) or isinstance(v, bool):
                continue
            xs, ys = series[k].setdefault(tag, ([], []))
            xs.append(float(row["step"]))
            ys.append(float(v))
    names = sorted(series)
    n = max(1, len(names))
    cols = min(3, n)
    rows_n = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows_n, cols, figsize=(4.5 * cols, 3.2 * rows_n), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        for tag, (xs, ys) in sorted(series[name].items()):
            ax.plot(xs, ys, label=tag, marker="." if len(xs) < 30 else None)
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    png_path = Path(png_path)
    fig.savefig(png_path, dpi=90)
    plt.close(fig)
    return png_path
