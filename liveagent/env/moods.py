"""The mood table (`liveagent eval --moods --policy style`): a style policy played once per mood and along
each documented axis of its latent, over a split, with the decoding rule of every other row.

Why a table of its own: a mood is only worth its name if what the policy plays changes the way the name says
(busy plays more notes than calm, bright sits higher than dark) while it still follows the melody. Each mood
row feeds the policy's ``style`` input with the mood's ``z`` from its metadata (contract 1.2) through the
live engine's own runner (:meth:`liveagent.live.engine.policy.OnnxPolicy.set_style`), plays every piece
online exactly as :func:`liveagent.env.evaluate.evaluate_policy` does (greedy, range mask, silence gate,
``resolve_hold``), and measures: notes per bar, mean pitch, leap size
(:func:`liveagent.music.bar_features.line_style_stats`), onset consonance and parallels per 100 notes
(:mod:`liveagent.env.metrics`). The sweep moves ``z = origin + a * direction`` along each axis of the
metadata ``style_axes`` and checks that the axis's feature moves monotonically while consonance stays within
:data:`CONSONANCE_BAND` points of ``neutral``.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from liveagent.env.evaluate import EvalConfig, evaluate_policy
from liveagent.env.policies import EvalPolicy, PolicyLoadError
from liveagent.music.bar_features import line_style_stats
from liveagent.music.piece import Piece

log = logging.getLogger(__name__)

CONSONANCE_BAND = 3.0
"""A mood (or a sweep point) may lose or gain at most this many points of onset consonance vs neutral."""
BUSY_OVER_CALM = 1.3
"""busy must play at least this many times the notes of calm."""
SWEEP = (-1.0, -0.5, 0.0, 0.5, 1.0)
"""Default sweep points (``a``) along each axis when the metadata gives none."""
FEATURE_COLUMN = {
    "density": "notes_per_bar",
    "register": "mean_pitch",
    "leap": "leap",
    "syncopation": "offbeat_pct",
}
"""The table column that measures each bar feature in a played line (``mode`` has none)."""
COLUMNS = (
    ("notes_per_bar", "notes per bar", ".2f"),
    ("mean_pitch", "mean pitch", ".1f"),
    ("leap", "leap (semitones)", ".2f"),
    ("consonance_pct", "onset consonance %", ".1f"),
    ("parallels_per_100", "parallels / 100 notes", ".2f"),
    ("offbeat_pct", "off-beat onsets %", ".1f"),
)


@dataclass
class MoodRow:
    """One played setting of the style input: a mood, or a point of an axis sweep."""

    name: str
    z: list[float]
    row: dict[str, float] = field(default_factory=dict)


def _runner(policy: EvalPolicy) -> Any:
    fn: Any = policy.fn
    if not getattr(fn, "meta", None) or not getattr(fn.meta, "style_dim", 0) or not hasattr(fn, "set_style"):
        raise PolicyLoadError(f"{policy.name}: not a style policy (no contract-1.2 `style` input)")
    return fn


def style_axes(policy: EvalPolicy) -> list[dict[str, Any]]:
    """The metadata ``style_axes`` of an ONNX style policy (empty if it has none)."""
    session = getattr(_runner(policy), "session", None)
    props = dict(session.get_modelmeta().custom_metadata_map) if session is not None else {}
    return list(json.loads(props.get("style_axes", "[]") or "[]"))


def play_style(
    policy: EvalPolicy, pieces: Sequence[Piece], z: Sequence[float], cfg: EvalConfig
) -> dict[str, float]:
    """Play every piece with ``style = z`` and measure the line (the evaluator's decoding, no extras)."""
    runner = _runner(policy)
    runner.set_style(list(z))
    result = evaluate_policy(policy, pieces, cfg)
    stats = line_style_stats(result.lines, pieces[0].grid.steps_per_bar)
    return {**result.row, "mean_pitch": stats["mean_pitch"], "leap": stats["leap"]}


def plain_row(policy: EvalPolicy, pieces: Sequence[Piece], cfg: EvalConfig) -> dict[str, float]:
    """The same measurements for a policy without a style input (the reference row)."""
    result = evaluate_policy(policy, pieces, cfg)
    stats = line_style_stats(result.lines, pieces[0].grid.steps_per_bar)
    return {**result.row, "mean_pitch": stats["mean_pitch"], "leap": stats["leap"]}


def _config(progress: bool) -> EvalConfig:
    return EvalConfig(progress=progress, rewards=False, kl_to_prior=False, adaptation=False)


def mood_rows(policy: EvalPolicy, pieces: Sequence[Piece], *, progress: bool = False) -> list[MoodRow]:
    """One row per mood of the metadata, ``neutral`` first."""
    moods = _runner(policy).meta.moods
    names = sorted(moods, key=lambda n: (n != "neutral", n))
    cfg = _config(progress)
    rows = []
    for name in names:
        z = [float(x) for x in moods[name]]
        rows.append(MoodRow(name, z, play_style(policy, pieces, z, cfg)))
        log.info("mood %s: %s", name, {k: round(rows[-1].row.get(k, math.nan), 2) for k, _, _ in COLUMNS})
    return rows


def sweep_rows(
    policy: EvalPolicy, pieces: Sequence[Piece], *, points: Sequence[float] = SWEEP, progress: bool = False
) -> dict[str, list[MoodRow]]:
    """For each axis of the metadata, one row per ``a`` in ``points``: ``z = origin + a * direction``."""
    cfg = _config(progress)
    out: dict[str, list[MoodRow]] = {}
    for axis in style_axes(policy):
        origin, direction = np.asarray(axis["origin"], float), np.asarray(axis["direction"], float)
        rows = []
        for a in points:
            z = [float(x) for x in origin + a * direction]
            rows.append(MoodRow(f"{axis['name']} {a:+.1f}", z, play_style(policy, pieces, z, cfg)))
        out[str(axis["name"])] = rows
    return out


def _get(rows: Sequence[MoodRow], name: str, key: str) -> float:
    for r in rows:
        if r.name == name:
            return float(r.row.get(key, math.nan))
    return math.nan


def targets(moods: Sequence[MoodRow]) -> dict[str, dict[str, Any]]:
    """The issue's targets, each with its measured value and whether it is met."""
    calm, busy = _get(moods, "calm", "notes_per_bar"), _get(moods, "busy", "notes_per_bar")
    bright, dark = _get(moods, "bright", "mean_pitch"), _get(moods, "dark", "mean_pitch")
    neutral = _get(moods, "neutral", "consonance_pct")
    worst = max((abs(r.row["consonance_pct"] - neutral) for r in moods), default=math.nan)
    ratio = busy / calm if calm else math.nan
    return {
        "busy_over_calm_notes": {
            "value": ratio, "target": f">= {BUSY_OVER_CALM}", "met": ratio >= BUSY_OVER_CALM,
        },
        "bright_minus_dark_pitch": {"value": bright - dark, "target": "> 0", "met": bright > dark},
        "max_consonance_gap_vs_neutral": {
            "value": worst, "target": f"<= {CONSONANCE_BAND}", "met": worst <= CONSONANCE_BAND,
        },
    }  # fmt: skip


def sweep_checks(
    sweeps: dict[str, list[MoodRow]], axes: Sequence[dict[str, Any]], neutral_cons: float
) -> dict[str, Any]:
    """Per axis: its feature along the sweep, monotonic (non-decreasing, in the axis's sign) or not, and the
    largest consonance gap to the neutral row."""
    out: dict[str, Any] = {}
    for axis in axes:
        rows = sweeps.get(str(axis["name"]), [])
        column = FEATURE_COLUMN.get(str(axis.get("feature", "")))
        if not rows or column is None:
            continue
        values = [r.row.get(column, math.nan) for r in rows]
        sign = 1.0 if float(axis.get("sign", 1)) >= 0 else -1.0
        steps = np.diff(np.asarray(values) * sign)
        gap = max(abs(r.row["consonance_pct"] - neutral_cons) for r in rows)
        out[str(axis["name"])] = {
            "feature": axis.get("feature"), "column": column, "values": values,
            "monotonic": bool(np.all(steps >= 0)), "strictly": bool(np.all(steps > 0)),
            "max_consonance_gap": gap, "consonance_ok": gap <= CONSONANCE_BAND,
        }  # fmt: skip
    return out


def _fmt(v: Any, spec: str) -> str:
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, spec)


def markdown(
    moods: Sequence[MoodRow],
    sweeps: dict[str, list[MoodRow]],
    checks: dict[str, Any],
    goals: dict[str, dict[str, Any]],
    references: Sequence[MoodRow] = (),
) -> str:
    """The mood table, the sweep table and the targets, in GitHub Markdown."""
    head = "| row | " + " | ".join(h for _, h, _ in COLUMNS) + " |"
    sep = "|---|" + "|".join("---:" for _ in COLUMNS) + "|"

    def line(r: MoodRow) -> str:
        return f"| {r.name} | " + " | ".join(_fmt(r.row.get(k), f) for k, _, f in COLUMNS) + " |"

    parts = [head, sep, *(line(r) for r in moods)]
    parts += [line(r) for r in references]
    parts.append("")
    points = ", ".join(r.name.split()[-1] for r in next(iter(sweeps.values()), []))
    parts.append(f"| axis | feature (column) | a = {points} | monotonic | max consonance gap vs neutral |")
    parts.append("|---|---|---|---|---:|")
    for name, c in checks.items():
        values = ", ".join(_fmt(v, ".2f") for v in c["values"])
        mono = "yes" if c["monotonic"] else "no"
        gap = _fmt(c["max_consonance_gap"], ".1f")
        parts.append(f"| {name} | {c['feature']} ({c['column']}) | {values} | {mono} | {gap} |")
    parts.append("")
    for key, g in goals.items():
        parts.append(
            f"- {key}: {_fmt(g['value'], '.2f')} (target {g['target']}): {'met' if g['met'] else 'NOT met'}"
        )
    return "\n".join(parts) + "\n"


def run_moods(args: Any, policies: Sequence[EvalPolicy], pieces: Sequence[Piece], command: str) -> int:
    """`liveagent eval --moods`: the first ``--policy`` is the style policy, the others reference rows."""
    import sys

    style, *others = policies
    progress = not getattr(args, "no_progress", False)
    try:
        moods = mood_rows(style, pieces, progress=progress)
        axes = style_axes(style)
        sweep = sweep_rows(style, pieces, progress=progress)
    except PolicyLoadError as exc:
        print(f"liveagent eval --moods: {exc}", file=sys.stderr)
        return 2
    refs = [MoodRow(p.name, [], plain_row(p, pieces, _config(progress))) for p in others]
    neutral = _get(moods, "neutral", "consonance_pct")
    checks = sweep_checks(sweep, axes, neutral)
    goals = targets(moods)
    title = (
        f"liveagent eval --moods: {style.name}, {args.split} split, {len(pieces)} pieces; greedy + silence "
        "gate (the decoding of every row)"
    )
    text = markdown(moods, sweep, checks, goals, refs)
    print(f"{title}\n\n{text}")
    if getattr(args, "markdown", None) is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(f"`{command}`\n\n{title}\n\n{text}")
    if getattr(args, "json", None) is not None:
        from liveagent.env.evaluate import json_safe

        data = {
            "command": command, "policy": style.name, "split": args.split, "pieces": len(pieces),
            "moods": [vars(r) for r in moods], "references": [vars(r) for r in refs],
            "sweeps": {k: [vars(r) for r in v] for k, v in sweep.items()}, "checks": checks, "targets": goals,
            "axes": axes,
        }  # fmt: skip
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(json_safe(data), indent=2) + "\n")
    return 0
