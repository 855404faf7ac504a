"""`liveagent eval --band satb`: the four-part rows of issue 10 (figures defined in band_metrics.py).

One row per band, the soprano of each chorale being the melody: ``bach`` is Bach's own alto, tenor and bass
(the ceiling and the reference), ``random`` a deaf baseline (:func:`~liveagent.env.band_metrics.random_band`),
any other name or path a band policy played by ``liveagent.env.band_play.play_band`` (imported only when
such a row is asked for, so the reference rows need neither onnxruntime nor a trained band).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shlex
import sys
import time
from collections.abc import Mapping, Sequence

import numpy as np

from liveagent.env.band_metrics import (
    BAND_COLUMNS,
    BAND_VOICES,
    PAIR_COLUMNS,
    band_metrics,
    markdown_band_table,
    random_band,
)
from liveagent.music.piece import Piece
from liveagent.music.tokens import TokenArray

log = logging.getLogger(__name__)

BANDS = ("satb",)
DEFAULT_BANDS = ("random", "bach")
JSON_FORMAT = 1


class BandEvalError(Exception):
    """A band that cannot be played (a policy that fails to load or returns the wrong lines)."""


def band_lines(
    spec: str, pieces: Sequence[Piece], seed: int = 0, prior_row: dict[str, float] | None = None
) -> list[dict[str, TokenArray]]:
    """The alto/tenor/bass lines a band plays under each piece's soprano. A band policy whose metadata
    names a ``prior`` is compared with it on the same states: KL and argmax agreement into ``prior_row``."""
    if spec == "bach":
        return [{v: p.voices[v] for v in BAND_VOICES} for p in pieces]
    if spec == "random":
        return random_band([p.n_steps for p in pieces], seed=seed)
    try:
        from liveagent.env.band_play import PriorStats, load_band_policy, play_band
        from liveagent.live.engine.policy import PolicyError
    except ImportError as exc:
        raise BandEvalError(f"cannot play the band {spec!r}: {exc}") from exc
    try:
        policy = load_band_policy(spec)
        prior = load_band_policy(policy.meta.prior) if policy.meta.prior else None
        stats = PriorStats()
        played = play_band(policy, list(pieces), prior=prior, prior_stats=stats)
    except (ValueError, OSError, RuntimeError, PolicyError) as exc:  # RuntimeError: onnxruntime's
        raise BandEvalError(f"cannot play the band {spec!r}: {exc}") from exc
    if prior_row is not None:
        prior_row.update(stats.row())
    if len(played) != len(pieces):
        raise BandEvalError(f"{spec}: play_band returned {len(played)} bands for {len(pieces)} pieces")
    return [dict(b) for b in played]


def with_tritone_melody(piece: Piece) -> Piece:
    """``piece`` with its soprano a tritone higher from the middle bar on (the solo adaptation test's
    :func:`~liveagent.env.evaluate.with_tritone_change`); Bach's alto, tenor and bass left as they are."""
    from liveagent.env.evaluate import with_tritone_change

    changed = with_tritone_change(piece)
    voices = dict(piece.voices) | {"soprano": changed.performer}
    return dataclasses.replace(changed, voices=voices)


def band_adaptation(spec: str, pieces: Sequence[Piece], seed: int = 0) -> dict[str, float]:
    """ReaLchords' adaptation test for a band: every piece played again with the melody a tritone higher
    from its middle bar on; every voice's onset consonance with it in the bar of the jump and the bar after,
    pooled over the voices (``tritone_bar1_pct``, ``tritone_bar2_pct``)."""
    from liveagent.env.evaluate import adaptation_counts, adaptation_pct

    changed = [with_tritone_melody(p) for p in pieces]
    bands = band_lines(spec, changed, seed)
    counts = sum(
        (adaptation_counts([b[v].astype(np.int64) for b in bands], changed) for v in BAND_VOICES),
        start=np.zeros((2, 2), dtype=np.int64),
    )
    return adaptation_pct(counts)


def band_row(spec: str, pieces: Sequence[Piece], seed: int = 0) -> dict[str, float]:
    """One row of the band table: ``spec`` played over ``pieces`` (soprano = the melody), and again with
    the melody jumping a tritone (:func:`band_adaptation`)."""
    prior_row: dict[str, float] = {}
    bands: Sequence[Mapping[str, TokenArray]] = band_lines(spec, pieces, seed, prior_row)
    try:
        row = band_metrics(
            [p.voices["soprano"] for p in pieces], bands, names=[p.name for p in pieces], grid=pieces[0].grid
        )
    except ValueError as exc:
        raise BandEvalError(f"{spec}: {exc}") from exc
    return row | prior_row | band_adaptation(spec, pieces, seed)


def band_pieces(pieces: Sequence[Piece]) -> list[Piece]:
    """The pieces that hold all four parts (the others are logged and left out)."""
    keep = [p for p in pieces if "soprano" in p.voices and p.has_voices(BAND_VOICES)]
    if len(keep) < len(pieces):
        log.warning(
            "%d of %d pieces lack an SATB part and are left out", len(pieces) - len(keep), len(pieces)
        )
    return keep


def run_band(args: argparse.Namespace, pieces: list[Piece] | None = None) -> int:
    """``liveagent eval --band satb [--policy bach random NAME ...]``: print the Markdown table."""
    from liveagent.env.evaluate import json_safe
    from liveagent.env.policies import split_label

    if getattr(args, "through_serve", None) or getattr(args, "moods", False):
        print("liveagent eval: --band does not combine with --through-serve or --moods", file=sys.stderr)
        return 2
    if getattr(args, "corpus", "chorales") != "chorales":
        print("liveagent eval: --band needs the chorales (the corpus with four parts)", file=sys.stderr)
        return 2
    if pieces is None:
        from liveagent.music.chorales import chorale_split
        from liveagent.music.tokens import Grid

        try:
            pieces = chorale_split(args.split, grid=Grid(), progress=not args.no_progress)
        except (ImportError, ValueError, OSError) as exc:
            print(f"liveagent eval: cannot load the {args.split} split: {exc}", file=sys.stderr)
            return 2
    pieces = band_pieces(pieces)
    if args.limit is not None:
        pieces = pieces[: max(args.limit, 0)]
    if not pieces:
        print("liveagent eval: no four-part pieces to evaluate", file=sys.stderr)
        return 2
    specs = [name for group in args.policy for name in group] if args.policy else list(DEFAULT_BANDS)
    rows: list[tuple[str, dict[str, float]]] = []
    seconds: list[float] = []
    for label, spec in (split_label(s) for s in specs):
        t0 = time.perf_counter()
        try:
            rows.append((label or spec, band_row(spec, pieces, seed=args.seed)))
        except BandEvalError as exc:
            print(f"liveagent eval: {exc}", file=sys.stderr)
            return 2
        seconds.append(time.perf_counter() - t0)
    parts = ["liveagent", "eval", "--band", args.band, "--split", args.split, "--policy", *specs]
    if args.seed:
        parts += ["--seed", str(args.seed)]
    if args.limit is not None:
        parts += ["--limit", str(args.limit)]
    command = shlex.join(parts)
    title = f"liveagent eval --band {args.band}: {args.split} split, {len(pieces)} chorales, soprano = melody"
    table = markdown_band_table(rows)
    print(f"`{command}`\n\n{title}\n\n{table}", end="")
    if args.json is not None:
        data = {
            "format": JSON_FORMAT,
            "command": command,
            "corpus": {"name": "chorales"},
            "band": args.band,
            "split": args.split,
            "pieces": len(pieces),
            "piece_names": [p.name for p in pieces],
            "seed": args.seed,
            "columns": [{"key": c.key, "header": c.header, "better": c.better} for c in BAND_COLUMNS],
            "pair_columns": [{"key": c.key, "header": c.header, "better": c.better} for c in PAIR_COLUMNS],
            "rows": [
                {"policy": label, "metrics": row, "seconds": round(s, 3)}
                for (label, row), s in zip(rows, seconds, strict=True)
            ],
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(json_safe(data), indent=2) + "\n")
        log.info("wrote %s", args.json)
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(f"`{command}`\n\n{title}\n\n{table}")
        log.info("wrote %s", args.markdown)
    return 0
