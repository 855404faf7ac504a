"""Exported ONNX policies in `liveagent eval`: loaded and run by the live engine's runner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from liveagent.env import evaluate as ev
from liveagent.env import policies
from liveagent.live.engine.policy import OnnxPolicy
from liveagent.music.piece import Piece
from liveagent.music.theory import Key
from liveagent.music.tokens import HOLD, REST, VOCAB_SIZE, onset

WINDOW = 4


def write_copy_model(path: Path, *, contract: str = "1") -> Path:
    """A contract-v1 graph whose logits are one-hot at the performer's last visible token."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["performer", "last"], ["tok"], axis=1),
            helper.make_node("OneHot", ["tok", "depth", "values"], ["logits"], axis=-1),
        ],
        "copy",
        [
            helper.make_tensor_value_info("performer", TensorProto.INT64, ["B", WINDOW]),
            helper.make_tensor_value_info("agent", TensorProto.INT64, ["B", WINDOW]),
            helper.make_tensor_value_info("position", TensorProto.INT64, ["B"]),
        ],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["B", VOCAB_SIZE])],
        initializer=[
            helper.make_tensor("last", TensorProto.INT64, [], [WINDOW - 1]),
            helper.make_tensor("depth", TensorProto.INT64, [], [VOCAB_SIZE]),
            helper.make_tensor("values", TensorProto.FLOAT, [2], [0.0, 1.0]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    meta = {
        "liveagent.contract": contract,
        "steps_per_beat": "4",
        "beats_per_bar": "4",
        "window": str(WINDOW),
        "mode": "anticipate",
        "part": "bass",
        "pitch_min": "0",
        "pitch_max": "127",
        "algo": "test",
        "dataset": "hand",
        "metrics": "{}",
    }
    helper.set_model_props(model, meta)
    onnx.save(model, str(path))
    return path


def line(*notes: tuple[int | None, int]) -> np.ndarray:
    out: list[int] = []
    for pitch, length in notes:
        out += [REST] * length if pitch is None else [onset(pitch)] + [HOLD] * (length - 1)
    return np.array(out, dtype=np.int64)


PIECE = Piece("p", line((72, 4), (74, 4), (76, 8)), line((48, 8), (55, 8)), key=Key(0, "major"))


def _expected() -> list[int]:
    # Anticipate mode: step t plays the performer's token at t-1 (REST at t=0; HOLD after REST -> REST).
    exp = [REST, *PIECE.performer[:-1].tolist()]
    return [REST if tok == HOLD and (i == 0 or exp[i - 1] == REST) else tok for i, tok in enumerate(exp)]


def test_onnx_policy_by_path(tmp_path: Path) -> None:
    path = write_copy_model(tmp_path / "copy.onnx")
    pol = policies.load_policy(str(path))
    assert isinstance(pol.fn, OnnxPolicy)  # the live engine's runner: what is evaluated is what is played
    assert pol.name == "copy" and pol.window == WINDOW and pol.mode == "anticipate"
    assert (pol.pitch_min, pol.pitch_max) == (0, 127)
    assert pol.meta["path"] == str(path) and pol.meta["algo"] == "test"
    res = ev.evaluate_policy(pol, [PIECE], ev.EvalConfig(progress=False))
    assert res.lines[0].tolist() == _expected()


def test_contract_violations_are_refused(tmp_path: Path) -> None:
    bad = write_copy_model(tmp_path / "old.onnx", contract="0")
    with pytest.raises(policies.PolicyLoadError, match="contract"):
        policies.load_policy(str(bad))
    with pytest.raises(policies.PolicyLoadError, match="not found"):
        policies.load_policy(str(tmp_path / "missing.onnx"))


def test_unknown_name_lists_the_exports_and_the_baselines() -> None:
    with pytest.raises(policies.PolicyLoadError) as info:
        policies.load_policy("no-such-policy")
    msg = str(info.value)
    assert "no-such-policy" in msg and "default" in msg  # export/default.onnx ships
    assert all(name in msg for name in policies.BUILTIN)


def test_shipped_default_is_found_by_name() -> None:
    assert policies.has_shipped_default()
    pol = policies.load_policy(policies.DEFAULT_EXPORT)
    assert pol.name == "default" and Path(pol.meta["path"]).name == "default.onnx"


def test_label_names_the_row(tmp_path: Path) -> None:
    path = write_copy_model(tmp_path / "copy.onnx")
    pol = policies.load_policy(f"ppo+kl={path}")
    assert pol.name == "ppo+kl" and pol.window == WINDOW
    assert policies.load_policy("ceiling=bach").name == "ceiling"
    assert policies.split_label(str(path)) == (None, str(path))
    res = ev.evaluate_policy(pol, [PIECE], ev.EvalConfig(progress=False))
    row = json.loads(res.metrics_json())
    assert row["policy"] == "ppo+kl" and row["notes"] == res.row["notes"]
