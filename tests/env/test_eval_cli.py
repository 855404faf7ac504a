"""`liveagent eval` end to end on a tiny hand-made corpus: the table, the JSON and the Markdown."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from liveagent.env import eval_cli, policies
from liveagent.env.metrics import COLUMNS
from liveagent.music.piece import Piece
from liveagent.music.theory import Key
from liveagent.music.tokens import HOLD, REST, onset


def line(*notes: tuple[int | None, int]) -> np.ndarray:
    out: list[int] = []
    for pitch, length in notes:
        out += [REST] * length if pitch is None else [onset(pitch)] + [HOLD] * (length - 1)
    return np.array(out, dtype=np.int64)


def corpus() -> list[Piece]:
    c = Key(0, "major")
    return [
        Piece("one", line((72, 4), (74, 4), (76, 8)), line((48, 8), (55, 8)), key=c),
        Piece(
            "two", line((67, 4), (65, 4), (64, 8), (60, 8)), line((48, 4), (50, 4), (48, 8), (45, 8)), key=c
        ),
        Piece("three", line((76, 8), (74, 8)), line((48, 8), (55, 8)), key=c),
    ]


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    eval_cli.configure(parser)
    return parser.parse_args(list(argv))


def test_eval_cli_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_json, out_md = tmp_path / "table.json", tmp_path / "table.md"
    args = parse(
        "--policy", "random", "bach", "--json", str(out_json), "--markdown", str(out_md),
        "--limit", "2", "--no-progress",
    )  # fmt: skip
    assert eval_cli.run(args, pieces=corpus()) == 0
    printed = capsys.readouterr().out
    assert "random" in printed and "bach" in printed and "consonant" in printed

    report = json.loads(out_json.read_text())
    assert report["pieces"] == 2 and report["piece_names"] == ["one", "two"]
    assert [r["policy"] for r in report["rows"]] == ["random", "bach"]
    assert report["command"] == "liveagent eval --split test --policy random bach --limit 2"
    bach = report["rows"][1]["metrics"]
    assert set(bach) >= {c.key for c in COLUMNS}
    # The oracle plays Bach's 2 + 4 bass notes exactly.
    assert bach["notes"] == 6 and bach["density_ratio"] == 1.0 and bach["pc_overlap"] == 1.0
    assert bach["ioi_emd"] == 0.0
    # No leaps of a fifth resolved or doubled in these basses: undefined -> null in JSON, not NaN.
    assert "NaN" not in out_json.read_text()

    md = out_md.read_text()
    assert md.startswith("`liveagent eval --split test --policy random bach --limit 2`")
    assert "| random |" in md and "| bach |" in md
    headers = [ln for ln in md.splitlines() if ln.startswith("| policy")]
    # Two tables: every column once, plus the policy column in each and the mean reward in the second.
    assert len(headers) == 2 and sum(h.count("|") for h in headers) == len(COLUMNS) + 5
    assert md.count("| random |") == 2


def test_eval_cli_default_rows_include_rules_when_present(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(policies, "has_shipped_default", lambda: False)
    out_json = tmp_path / "t.json"
    assert eval_cli.run(parse("--json", str(out_json), "--no-progress"), pieces=corpus()) == 0
    rows = [r["policy"] for r in json.loads(out_json.read_text())["rows"]]
    assert rows == ["random", "rules", "bach"]


def test_eval_cli_bad_policy(capsys: pytest.CaptureFixture[str]) -> None:
    assert eval_cli.run(parse("--policy", "nope", "--no-progress"), pieces=corpus()) == 2
    assert "nope" in capsys.readouterr().err


def test_default_rows_put_the_shipped_policy_before_the_ceiling(monkeypatch: pytest.MonkeyPatch) -> None:
    assert eval_cli.policy_names(parse()) == ["random", "rules", "default", "bach"]  # default.onnx ships
    monkeypatch.setattr(policies, "has_shipped_default", lambda: False)
    assert eval_cli.policy_names(parse()) == ["random", "rules", "bach"]
    assert eval_cli.policy_names(parse("--policy", "a", "b", "--policy", "c")) == ["a", "b", "c"]


def test_eval_help_does_not_load_the_evaluator() -> None:
    """`liveagent eval --help` only builds the parser: the evaluator, policies, onnxruntime load in run()."""
    code = (
        "import json, sys, argparse\n"
        "from liveagent.env import eval_cli\n"
        "eval_cli.configure(argparse.ArgumentParser())\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('liveagent.env.evaluate', "
        "'liveagent.env.policies', 'liveagent.env.metrics', 'liveagent.live', 'onnxruntime', 'torch', "
        "'music21')))))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(proc.stdout) == []
