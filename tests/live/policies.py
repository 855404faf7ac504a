"""Tiny contract-v1 ONNX policies for I/O tests (built with the onnx package; no torch, no training)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from liveagent.music.tokens import HOLD, ONSET_BASE, VOCAB_SIZE

# one bar of 16 steps: an arpeggio on beats 1-4, HOLD in between
PATTERN = {0: 48, 4: 52, 8: 55, 12: 60}


def pattern_table(steps_per_bar: int = 16) -> np.ndarray:
    table = np.zeros((steps_per_bar, VOCAB_SIZE), dtype=np.float32)
    for pos in range(steps_per_bar):
        tok = ONSET_BASE + PATTERN[pos] if pos in PATTERN else HOLD
        table[pos, tok] = 10.0
    return table


def write_pattern_policy(path: Path, window: int = 16, mode: str = "anticipate") -> Path:
    """A policy whose logits depend only on the bar position: greedy decoding plays ``PATTERN``."""
    import json

    import onnx
    from onnx import TensorProto, helper, numpy_helper

    table = numpy_helper.from_array(pattern_table(), name="table")
    nodes = [helper.make_node("Gather", ["table", "position"], ["logits"], axis=0)]
    graph = helper.make_graph(
        nodes,
        "pattern",
        [
            helper.make_tensor_value_info("performer", TensorProto.INT64, ["B", window]),
            helper.make_tensor_value_info("agent", TensorProto.INT64, ["B", window]),
            helper.make_tensor_value_info("position", TensorProto.INT64, ["B"]),
        ],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["B", VOCAB_SIZE])],
        initializer=[table],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    props = {
        "liveagent.contract": "1",
        "steps_per_beat": "4",
        "beats_per_bar": "4",
        "window": str(window),
        "mode": mode,
        "part": "bass",
        "pitch_min": "36",
        "pitch_max": "72",
        "algo": "pattern",
        "dataset": "none",
        "metrics": json.dumps({}),
    }
    for k, v in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
