"""`liveagent train mle --config tiny.toml` and `liveagent export` end to end, in-process, in seconds."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

from liveagent.cli import main
from liveagent.train.checkpoint import load_checkpoint
from liveagent.train.cli import ALGOS, apply_overrides

TINY = """
name = "tiny"
seed = 4
threads = 1

[net]
window = 8
hidden = 32
embed_dim = 4

[data]
corpus = "toy"
toy_pieces = 6

[mle]
steps = 60
batch_size = 32
eval_every = 30
log_every = 10
"""


def test_train_then_export_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(TINY)
    run = tmp_path / "run"
    assert main(["train", "mle", "--config", str(recipe), "--out", str(run), "--set", "mle.steps=40"]) == 0
    assert "checkpoint:" in capsys.readouterr().out
    for name in ("metrics.jsonl", "curves.png", "last.pt", "best.pt", "recipe.toml"):
        assert (run / name).stat().st_size > 0, name
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert {r["tag"] for r in rows} == {"train", "valid"} and max(r["step"] for r in rows) == 40
    ck = load_checkpoint(run / "last.pt")
    assert ck.step == 40 and ck.recipe["mle"]["steps"] == 40 and ck.algo == "mle"

    # --resume with a larger budget continues from step 40 and appends to the same log.
    assert main(["train", "mle", "--config", str(recipe), "--out", str(run), "--resume"]) == 0
    assert load_checkpoint(run / "last.pt").step == 60
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["tag"] == "valid"] == [30, 40, 60]

    out = tmp_path / "export" / "tiny.onnx"
    assert main(["export", str(run / "best.pt"), "-o", str(out), "--parity-n", "100"]) == 0
    printed = capsys.readouterr().out
    assert "parity random" in printed and "parity corpus" in printed
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert props["algo"] == "mle" and props["dataset"] == "toy:soprano->bass"
    assert (tmp_path / "export" / "tiny.json").exists() and (tmp_path / "export" / "tiny.toml").exists()


def test_bad_recipe_keys_are_rejected(tmp_path: Path) -> None:
    recipe = tmp_path / "bad.toml"
    recipe.write_text(TINY.replace("hidden = 32", "hiden = 32"))
    with pytest.raises(ValueError, match="hiden"):
        main(["train", "mle", "--config", str(recipe), "--out", str(tmp_path / "r")])


def test_registry_and_overrides() -> None:
    assert ALGOS["mle"] == "liveagent.train.mle" and {"dqn", "ppo", "adversarial", "ensemble"} <= set(ALGOS)
    r = apply_overrides({"mle": {"steps": 3}}, ["mle.steps=5", "name=x y", "net.window=16", "mle.lr=1e-3"])
    assert r == {"mle": {"steps": 5, "lr": 1e-3}, "name": "x y", "net": {"window": 16}}
