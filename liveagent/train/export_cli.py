"""`liveagent export CHECKPOINT -o export/NAME.onnx`: a verified contract-v1 policy plus its card and recipe.

Writes NAME.onnx, NAME.json (model card: contract, recipe, parity, latency, eval row) and NAME.toml (the
recipe). Parity with torch is checked on 1,000 random and 1,000 corpus observations (the corpus split of
the checkpoint's recipe); a failing export is deleted and the command exits non-zero. ``--eval`` runs
``liveagent eval`` on the new file and records the row in the metadata and the card.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:  # fmt: skip
    add = parser.add_argument
    add("checkpoint", type=Path, help="a checkpoint written by `liveagent train` (.pt)")
    add("-o", "--output", type=Path, required=True, help="the .onnx file to write")
    add("--split", default="valid", help="corpus split for the corpus parity check (default valid)")
    add("--no-corpus", action="store_true", help="skip the corpus parity check (random only)")
    add("--parity-n", type=int, default=1000, help="observations per parity check (default 1000)")
    add(
        "--onset-boost",
        type=float,
        default=None,
        help="class-first greedy decoding, 0..1 (default: the recipe's [export] onset_boost, else 0)",
    )
    add("--eval", action="store_true", help="run `liveagent eval` on the export and record its row")
    add("--eval-split", default="test", help="split for --eval (default test)")
    add("--eval-json", type=Path, default=None, help="record the row of this `liveagent eval --json` report")
    add("--eval-row", default=None, help="the policy name of the row to take from --eval-json")
    add(
        "--quantize",
        action="store_true",
        help="also try dynamic int8: keep NAME.int8.onnx only if its eval row (--quantize-split) is no worse",
    )
    add("--quantize-split", default="valid", help="split that judges the int8 file (default valid)")


def corpus_args(recipe: dict[str, Any]) -> list[str]:
    """The `liveagent eval` options that play the corpus a recipe trained on, when it is a MIDI folder
    (a policy trained on a user's songs is judged on their test split, not on the chorales)."""
    data = recipe.get("data", {})
    if data.get("corpus") != "midi":
        return []
    from liveagent.train.data import DataConfig
    from liveagent.train.recipes import from_table

    cfg = from_table(DataConfig, data, "data")
    return ["--corpus", f"midi:{cfg.folder}", "--performer", cfg.performer, "--accompaniment",
            cfg.accompaniment, "--accompaniment-chords", cfg.accompaniment_chords]  # fmt: skip


def eval_report(policies: list[str], split: str, extra: list[str] | None = None) -> dict[str, Any]:
    """The JSON report of `liveagent eval --split SPLIT --policy ...` (run as a subprocess)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "eval.json"
        cmd = [sys.executable, "-m", "liveagent", "eval", "--split", split, "--policy", *policies,
               "--json", str(out), "--no-progress", *(extra or [])]  # fmt: skip
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        report: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
        return report


def run_eval(onnx_path: Path, split: str, extra: list[str] | None = None) -> dict[str, Any]:
    """The eval table row of ``onnx_path``."""
    return pick_row(eval_report([str(onnx_path)], split, extra))


def try_quantize(onnx_path: Path, split: str, extra: list[str] | None = None) -> Path | None:
    """Write NAME.int8.onnx and keep it only if no high/low column of its eval row is worse."""
    from liveagent.train.quantize import eval_not_worse, quantize_int8

    q_path = quantize_int8(onnx_path, onnx_path.with_name(onnx_path.stem + ".int8.onnx"))
    report = eval_report([f"float={onnx_path}", f"int8={q_path}"], split, extra)
    rows = {r["policy"]: r["metrics"] for r in report["rows"]}
    worse = eval_not_worse(rows["int8"], rows["float"], report["columns"])
    if worse:
        q_path.unlink()
        print(f"int8: not kept, worse on {split}: {'; '.join(worse)}")
        return None
    print(f"int8: kept {q_path} ({q_path.stat().st_size} bytes), not worse on {split}")
    return q_path


def pick_row(report: dict[str, Any], policy: str | None = None) -> dict[str, Any]:
    """The metrics of one row of a `liveagent eval --json` report (the only row, or the one named ``policy``),
    with the split and piece count, as recorded in the ONNX ``metrics`` and the card's ``eval``."""
    rows = report["rows"]
    if policy is not None:
        rows = [r for r in rows if r.get("policy") == policy]
    if len(rows) != 1:
        raise ValueError(f"expected one eval row{f' for {policy!r}' if policy else ''}, found {len(rows)}")
    return {"split": report.get("split"), "pieces": report.get("pieces"), **rows[0]["metrics"]}


def run(args: argparse.Namespace) -> int:
    from liveagent.music.tokens import Grid
    from liveagent.train.band_export import export_band
    from liveagent.train.checkpoint import load_checkpoint
    from liveagent.train.data import DataConfig, load_pieces
    from liveagent.train.export import ExportError, export_checkpoint
    from liveagent.train.logging_utils import set_threads
    from liveagent.train.model_card import update_eval
    from liveagent.train.recipes import from_table

    set_threads(1)  # the live engine runs one thread; compare torch on the same footing

    if args.output.suffix != ".onnx":
        print(f"error: output must end in .onnx, got {args.output}", file=sys.stderr)
        return 2
    ck = load_checkpoint(args.checkpoint)
    pieces = None
    if not args.no_corpus:
        data_cfg = from_table(DataConfig, ck.recipe.get("data"), "data")
        grid = Grid(ck.net_config.steps_per_beat, ck.net_config.beats_per_bar)
        pieces = load_pieces(data_cfg, args.split, grid)
    eval_row = None
    if args.eval_json:
        eval_row = pick_row(json.loads(args.eval_json.read_text(encoding="utf-8")), args.eval_row)
    try:
        if ck.net_config.extra.get("band"):
            result = export_band(ck, args.checkpoint, args.output, pieces=pieces, eval_row=eval_row,
                                 n_parity=args.parity_n)  # fmt: skip
        else:
            result = export_checkpoint(args.checkpoint, args.output, pieces=pieces, eval_row=eval_row,
                                       n_parity=args.parity_n, onset_boost=args.onset_boost)  # fmt: skip
    except ExportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    card = result.card
    for name, p in card["parity"].items():
        diff, agree = p["max_abs_diff"], p["argmax_agreement"]
        print(f"parity {name}: n={p['n']} max|diff|={diff:.2e} argmax agreement={agree:.3f}")
    lat = card.get("latency", {})
    if lat:
        print(f"latency (1 sample): onnx 1 thread median {lat['onnx_1thread']['median_us']} us, "
              f"torch eager median {lat['torch_eager']['median_us']} us")  # fmt: skip
    if args.eval and eval_row is None and ck.net_config.extra.get("band"):
        print("eval: a band is measured with `liveagent eval --band satb --policy bach NAME`")
    elif args.eval and eval_row is None:
        row = run_eval(result.onnx_path, args.eval_split, corpus_args(ck.recipe))
        update_eval(result.onnx_path, row)
        print(f"eval ({args.eval_split}): {json.dumps(row)}")
    print(f"wrote {result.onnx_path} ({card['size_bytes']} bytes), {result.card_path}, {result.recipe_path}")
    if args.quantize:
        try_quantize(result.onnx_path, args.quantize_split, corpus_args(ck.recipe))
    return 0
