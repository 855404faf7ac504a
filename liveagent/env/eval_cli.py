"""`liveagent eval`: play policies online over a corpus split and print the table (terminal, JSON, Markdown).

The corpus is the Bach chorales (default) or a user's MIDI folder (``--corpus midi:PATH``, split by file as
in training, see liveagent/music/midi_corpus.py); the files of the folder that were skipped are listed on
stderr with their reasons and recorded in the JSON report.

Default rows: random, rules, bach (the real part as a policy: the ceiling), plus the shipped
``export/default.onnx`` when it exists. Nothing heavy is imported at module level, so `liveagent eval
--help` stays fast: the evaluator, the policies (onnxruntime) and the chorale loader (music21, on a cache
miss) load inside :func:`run`.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from liveagent.env.tables import fmt_value as _fmt
from liveagent.env.tables import markdown_table
from liveagent.music.piece import Piece

if TYPE_CHECKING:
    from liveagent.env.evaluate import PolicyResult
    from liveagent.music.midi_corpus import MidiCorpus

log = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
DEFAULT_POLICIES = ("random", "rules", "bach")
JSON_FORMAT = 1
"""Version of the JSON report layout."""
CORPUS_PARTS = {"chorales": ("soprano", "bass"), "midi": ("index:0", "index:1")}
"""Default (performer, accompaniment) per corpus kind (the same as a training recipe's ``[data]``)."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--split", choices=SPLITS, default="test", help="corpus split to play (default: test)"
    )
    parser.add_argument(
        "--corpus",
        default="chorales",
        metavar="chorales|midi:PATH",
        help="the Bach chorales (default) or a folder of MIDI files, split by file as in training",
    )
    parser.add_argument(
        "--policy",
        action="append",
        nargs="+",
        metavar="NAME|PATH",
        help="random, rules, bach, an exported policy name or a .onnx path, optionally LABEL=... to name "
        "the row (repeatable; default: random rules [default] bach; default = export/default.onnx if it "
        "exists)",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the table as JSON")
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="write the table as Markdown")
    parser.add_argument("--temperature", type=float, default=0.0, help="sampling temperature (0 = greedy)")
    parser.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling threshold (1 = off)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the samplers and the random policy")
    parser.add_argument("--limit", type=int, metavar="N", help="only the first N pieces of the split")
    parser.add_argument(
        "--performer",
        default=None,
        help="performer part: a chorale voice (default soprano) or, with midi:PATH, a track selector "
        "name:NAME, index:N, track:N or channel:N (default index:0)",
    )
    parser.add_argument(
        "--accompaniment",
        default=None,
        help="accompaniment part: a chorale voice (default bass) or a track selector (default index:1)",
    )
    parser.add_argument(
        "--accompaniment-chords",
        choices=("lowest", "highest"),
        default="lowest",
        help="midi:PATH: chords of the accompaniment part reduced to their lowest (default) or highest note",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--band",
        choices=("satb",),
        help="four-part rows (issue 10): the soprano is the melody, each --policy a band (bach = Bach's own "
        "alto/tenor/bass, random, or a band policy); default rows: random bach (liveagent/env/band_eval.py)",
    )
    parser.add_argument(
        "--moods",
        action="store_true",
        help="the first --policy is a style policy (contract 1.2): one row per mood of its metadata and a "
        "sweep along each axis of its latent (liveagent/env/moods.py); further --policy rows for reference",
    )
    g = parser.add_argument_group(
        "through a real serve",
        "play each --policy through a real `liveagent serve` subprocess over OSC, with a performer whose "
        "timing and wrong notes follow a condition; one row per policy and condition, printed as Markdown "
        "(liveagent/env/serve_eval.py)",
    )
    g.add_argument(
        "--through-serve",
        nargs="+",
        metavar="CONDITION",
        help="grid, jitter15, late10_wrong5, or offset=MS,jitter=SD_MS,wrong=PCT[,seed=N]",
    )
    g.add_argument(
        "--pieces", type=int, default=8, metavar="N", help="first N pieces of the split (default 8)"
    )
    g.add_argument("--bpm", type=float, default=100.0, help="the server's tempo (default 100)")
    g.add_argument(
        "--serve-arg",
        action="append",
        metavar="ARG",
        help="extra argument for serve, repeatable (e.g. --serve-arg=--follow-window-ms=40)",
    )


def policy_names(args: argparse.Namespace) -> list[str]:
    """The --policy values flattened, or the default rows."""
    if args.policy:
        return [name for group in args.policy for name in group]
    from liveagent.env import policies

    names = list(DEFAULT_POLICIES)
    if policies.has_shipped_default():
        names.insert(names.index("bach"), policies.DEFAULT_EXPORT)  # the ceiling stays the last row
    return names


def load_pieces(split: str, performer: str = "soprano", accompaniment: str = "bass") -> list[Piece]:
    from liveagent.music.chorales import chorale_split
    from liveagent.music.tokens import Grid

    return chorale_split(split, performer=performer, accompaniment=accompaniment, grid=Grid(), progress=True)


def parse_corpus(spec: str) -> tuple[str, Path | None]:
    """``chorales`` -> ``("chorales", None)``; ``midi:PATH`` -> ``("midi", PATH)``; else ``ValueError``."""
    kind, sep, path = spec.partition(":")
    kind = kind.strip().lower()
    if kind == "chorales" and not path:
        return "chorales", None
    if kind == "midi" and sep and path.strip():
        return "midi", Path(path.strip()).expanduser()
    raise ValueError(f"--corpus {spec!r}: expected chorales or midi:PATH (a folder of MIDI files)")


def resolve_parts(args: argparse.Namespace) -> None:
    """Fill the --performer/--accompaniment left out with the corpus's defaults (in place)."""
    try:
        kind = parse_corpus(getattr(args, "corpus", "chorales"))[0]
    except ValueError:
        kind = "chorales"
    perf, acc = CORPUS_PARTS[kind]
    args.performer = args.performer or perf
    args.accompaniment = args.accompaniment or acc


def load_midi_pieces(args: argparse.Namespace, folder: Path) -> tuple[list[Piece], MidiCorpus]:
    """The split of a MIDI folder; the skipped files are listed on stderr, with their reasons."""
    from liveagent.music.midi_corpus import midi_split
    from liveagent.music.tokens import Grid

    pieces, corpus = midi_split(
        folder, args.split, args.performer, args.accompaniment, Grid(),
        accompaniment_chords=args.accompaniment_chords, progress=not args.no_progress,
    )  # fmt: skip
    sizes = ", ".join(f"{k} {v}" for k, v in corpus.split_sizes().items())
    print(f"liveagent eval: midi:{folder}: {len(corpus.pieces)} pieces ({sizes}); {corpus.summary()}",
          file=sys.stderr)  # fmt: skip
    for line in corpus.skip_report(folder):
        print(f"  skipped {line}", file=sys.stderr)
    return pieces, corpus


def load_corpus(args: argparse.Namespace) -> tuple[list[Piece], dict[str, Any]]:
    """The pieces of ``--corpus`` / ``--split`` and what the JSON report says of the corpus."""
    _, folder = parse_corpus(args.corpus)
    if folder is None:
        return load_pieces(args.split, args.performer, args.accompaniment), {"name": "chorales"}
    pieces, corpus = load_midi_pieces(args, folder)
    info = {
        "name": f"midi:{folder}",
        "files": len(corpus.pieces) + len(corpus.skipped),
        "split_sizes": corpus.split_sizes(),
        "skip_counts": corpus.skip_counts,
        "skipped": [{"path": s.path, "reason": s.reason, "detail": s.detail} for s in corpus.skipped],
        "off_grid": corpus.off_grid,
    }
    return pieces, info


def report(
    results: Sequence[PolicyResult],
    pieces: Sequence[Piece],
    args: argparse.Namespace,
    command: str,
    corpus: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON report: settings, the corpus (a MIDI folder's skipped files), columns, one row per policy."""
    from liveagent.env.evaluate import json_safe
    from liveagent.env.metrics import COLUMNS

    return json_safe(
        {
            "format": JSON_FORMAT,
            "command": command,
            "corpus": corpus or {"name": getattr(args, "corpus", "chorales")},
            "split": args.split,
            "performer": args.performer,
            "accompaniment": args.accompaniment,
            "pieces": len(pieces),
            "piece_names": [p.name for p in pieces],
            "temperature": args.temperature,
            "top_p": args.top_p,
            "seed": args.seed,
            "columns": [{"key": c.key, "header": c.header, "better": c.better} for c in COLUMNS],
            "rows": [
                {
                    "policy": r.name,
                    "metrics": r.row,
                    "rewards": r.rewards,
                    "seconds": round(r.seconds, 3),
                    "meta": {k: v for k, v in r.meta.items() if k != "metrics"},
                }
                for r in results
            ],
        }
    )


def print_table(results: Sequence[PolicyResult], title: str) -> None:
    """The table on the terminal, one column per policy (the metrics are too many to fit side by side)."""
    from rich.console import Console
    from rich.table import Table

    from liveagent.env.metrics import COLUMNS

    table = Table(title=title)
    table.add_column("metric", style="bold")
    for r in results:
        table.add_column(r.name, justify="right")
    for c in COLUMNS:
        table.add_row(c.header, *(_fmt(r.row.get(c.key, math.nan), c.fmt) for r in results))
    table.add_row("mean reward", *(_fmt(r.rewards.get("total", math.nan), ".3f") for r in results))
    Console(width=max(120, Console().width)).print(table)


def command_line(args: argparse.Namespace) -> str:
    """A command that reproduces this table (the options that change it, spelled out)."""
    parts = ["liveagent", "eval", "--split", args.split]
    corpus = getattr(args, "corpus", "chorales")
    kind = "chorales"
    if corpus != "chorales":
        parts += ["--corpus", corpus]
        kind = parse_corpus(corpus)[0]
    if args.policy:
        parts += ["--policy", *policy_names(args)]
    if (args.performer, args.accompaniment) != CORPUS_PARTS[kind]:
        parts += ["--performer", args.performer, "--accompaniment", args.accompaniment]
    if kind == "midi" and getattr(args, "accompaniment_chords", "lowest") != "lowest":
        parts += ["--accompaniment-chords", args.accompaniment_chords]
    if args.temperature:
        parts += ["--temperature", f"{args.temperature:g}", "--top-p", f"{args.top_p:g}"]
    if args.seed or args.temperature:
        parts += ["--seed", str(args.seed)]
    if args.limit is not None:
        parts += ["--limit", str(args.limit)]
    return shlex.join(parts)


def run(args: argparse.Namespace, pieces: list[Piece] | None = None) -> int:
    """Run the evaluation; ``pieces`` replaces the corpus split (tests, custom corpora)."""
    resolve_parts(args)
    if getattr(args, "band", None):
        from liveagent.env.band_eval import run_band

        return run_band(args, pieces)
    if getattr(args, "through_serve", None):
        return run_through_serve(args, pieces)
    from liveagent.env.evaluate import EvalConfig, evaluate
    from liveagent.env.policies import PolicyLoadError, load_policy

    corpus: dict[str, Any] | None = None
    if pieces is None:
        try:
            pieces, corpus = load_corpus(args)
        except (ImportError, ValueError, OSError) as exc:
            print(f"liveagent eval: cannot load the {args.split} split: {exc}", file=sys.stderr)
            return 2
    if args.limit is not None:
        pieces = pieces[: max(args.limit, 0)]
    if not pieces:
        print("liveagent eval: no pieces to evaluate", file=sys.stderr)
        return 2
    grid = pieces[0].grid
    try:
        policies = [load_policy(name, grid=grid, seed=args.seed) for name in policy_names(args)]
    except PolicyLoadError as exc:
        print(f"liveagent eval: {exc}", file=sys.stderr)
        return 2
    if getattr(args, "moods", False):
        from liveagent.env.moods import run_moods

        return run_moods(args, policies, pieces, command_line(args))
    try:
        config = EvalConfig(
            temperature=args.temperature, top_p=args.top_p, seed=args.seed, progress=not args.no_progress
        )
        results = evaluate(policies, pieces, config)
    except (ValueError, PolicyLoadError) as exc:
        print(f"liveagent eval: {exc}", file=sys.stderr)
        return 2
    command = command_line(args)
    where = "" if corpus is None or corpus["name"] == "chorales" else f"{corpus['name']}, "
    title = (
        f"liveagent eval: {where}{args.split} split, {len(pieces)} pieces, "
        f"{args.performer} -> {args.accompaniment}, temperature {args.temperature:g}"
    )
    print_table(results, title)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        data = report(results, pieces, args, command, corpus)
        args.json.write_text(json.dumps(data, indent=2) + "\n")
        log.info("wrote %s", args.json)
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(f"`{command}`\n\n{title}\n\n" + markdown_table(results))
        log.info("wrote %s", args.markdown)
    return 0


# -- `liveagent eval --through-serve` (liveagent/env/serve_eval.py plays; this is its command line) ------


SERVE_UNPLAYABLE = ("random", "bach")
"""``liveagent eval`` policies that are not policies a server can load."""


def run_through_serve(args: argparse.Namespace, pieces: list[Piece] | None = None) -> int:
    """``liveagent eval --through-serve COND...``: one row per (policy, condition), printed as Markdown."""
    import time

    from liveagent.env.evaluate import json_safe
    from liveagent.env.policies import split_label
    from liveagent.env.serve_eval import LIVE_COLUMNS, ServeEvalError, evaluate_through_serve
    from liveagent.env.serve_eval import markdown_table as serve_table
    from liveagent.env.serve_performer import timing_from_spec

    try:
        timings = [timing_from_spec(spec) for spec in args.through_serve]
    except ValueError as exc:
        print(f"liveagent eval: {exc}", file=sys.stderr)
        return 2
    specs = [name for group in args.policy for name in group] if args.policy else ["default"]
    policies = [split_label(s) for s in specs]
    bad = [spec for _, spec in policies if spec in SERVE_UNPLAYABLE]
    if bad:
        print(
            f"liveagent eval: --through-serve plays what `liveagent serve` can load (an exported NAME, a "
            f"PATH.onnx or rules), not {', '.join(bad)}",
            file=sys.stderr,
        )
        return 2
    if args.pieces < 1 or not (math.isfinite(args.bpm) and 20.0 <= args.bpm <= 300.0):
        print("liveagent eval: --pieces must be >= 1 and --bpm in 20..300", file=sys.stderr)
        return 2
    corpus: dict[str, Any] | None = None
    if pieces is None:
        try:
            pieces, corpus = load_corpus(args)
        except (ImportError, ValueError, OSError) as exc:
            print(f"liveagent eval: cannot load the {args.split} split: {exc}", file=sys.stderr)
            return 2
    pieces = pieces[: args.pieces]
    if not pieces:
        print("liveagent eval: no pieces to evaluate", file=sys.stderr)
        return 2
    serve_args = list(args.serve_arg or [])
    t_all = time.perf_counter()
    results: list[PolicyResult] = []
    for label, spec in policies:
        for timing in timings:  # one after another: two servers at once would distort the timing
            log.info(
                "%s through serve, condition %s: %d pieces at %g BPM",
                spec,
                timing.name,
                len(pieces),
                args.bpm,
            )
            try:
                results.append(
                    evaluate_through_serve(
                        spec, pieces, timing, bpm=args.bpm, label=label, serve_args=serve_args
                    )
                )
            except ServeEvalError as exc:
                print(f"liveagent eval: {spec} through serve ({timing.name}): {exc}", file=sys.stderr)
                return 1
    seconds = time.perf_counter() - t_all
    parts = ["liveagent", "eval", "--split", args.split, "--through-serve", *args.through_serve]
    if getattr(args, "corpus", "chorales") != "chorales":
        parts += ["--corpus", args.corpus]
    parts += ["--policy", *specs, "--pieces", str(len(pieces)), "--bpm", f"{args.bpm:g}"]
    parts += [f"--serve-arg={a}" for a in serve_args]
    command = shlex.join(parts)
    title = (
        f"liveagent eval through a real serve: {args.split} split, {len(pieces)} pieces at {args.bpm:g} BPM, "
        f"{args.performer} -> {args.accompaniment} ({seconds:.0f} s)"
    )
    table = serve_table(results)
    print(f"`{command}`\n\n{title}\n\n{table}", end="")
    if args.json is not None:
        data = report(results, pieces, args, command, corpus)
        data["through_serve"] = {
            "conditions": [r.meta.get("condition") for r in results],
            "bpm": args.bpm,
            "serve_args": serve_args,
            "seconds": round(seconds, 1),
            "live_columns": [{"key": c.key, "header": c.header, "better": c.better} for c in LIVE_COLUMNS],
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(json_safe(data), indent=2) + "\n")
        log.info("wrote %s", args.json)
    if args.markdown is not None:
        path = Path(args.markdown)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"`{command}`\n\n{title}\n\n{table}")
        log.info("wrote %s", path)
    return 0
