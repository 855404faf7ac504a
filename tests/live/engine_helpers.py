"""Test helpers for the engine side: tiny contract-v1 ONNX files built without torch, fake sinks.

``tiny_onnx_bytes`` builds a policy with ``onnx.helper``: the last agent token and the last performer
token index two embeddings, summed and projected by a MatMul to the 130 logits. With ``echo=True`` the
weights make greedy decoding repeat the performer's last token (REST/HOLD/ONSET), a policy whose
choices a test can predict.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from liveagent.live.engine.policy import CallablePolicy, PolicyMeta
from liveagent.music.features import ObservationBuffers
from liveagent.music.tokens import VOCAB_SIZE

META = {
    "liveagent.contract": "1",
    "steps_per_beat": "4",
    "beats_per_bar": "4",
    "window": "8",
    "mode": "anticipate",
    "part": "bass",
    "pitch_min": "0",
    "pitch_max": "127",
    "algo": "test",
    "dataset": "none",
    "metrics": json.dumps({"score": 1.0}),
}


def tiny_onnx_bytes(
    *,
    window: int = 8,
    hidden: int = 16,
    echo: bool = True,
    meta: dict[str, str] | None = None,
    drop_meta: tuple[str, ...] = (),
    input_names: tuple[str, str, str] = ("performer", "agent", "position"),
    vocab: int = VOCAB_SIZE,
    input_dtype: int | None = None,
    seed: int = 0,
) -> bytes:
    """A contract-v1 (or deliberately broken) ONNX policy, serialized."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    dt = TensorProto.INT64 if input_dtype is None else input_dtype
    perf_name, agent_name, pos_name = input_names
    if echo:
        hidden = VOCAB_SIZE
        e_agent = np.zeros((VOCAB_SIZE, hidden), dtype=np.float32)
        e_perf = np.eye(VOCAB_SIZE, hidden, dtype=np.float32) * 10.0
        w_out = np.eye(hidden, vocab, dtype=np.float32)
    else:
        e_agent = rng.normal(size=(VOCAB_SIZE, hidden)).astype(np.float32)
        e_perf = rng.normal(size=(VOCAB_SIZE, hidden)).astype(np.float32)
        w_out = rng.normal(size=(hidden, vocab)).astype(np.float32)
    inits = [
        numpy_helper.from_array(e_agent, "e_agent"),
        numpy_helper.from_array(e_perf, "e_perf"),
        numpy_helper.from_array(w_out, "w_out"),
        numpy_helper.from_array(np.array(window - 1, dtype=np.int64), "last"),
    ]
    p_in, a_in = (perf_name, agent_name) if dt == TensorProto.INT64 else ("p_i64", "a_i64")
    nodes = [
        helper.make_node("Gather", [a_in, "last"], ["a_last"], axis=1),
        helper.make_node("Gather", [p_in, "last"], ["p_last"], axis=1),
        helper.make_node("Gather", ["e_agent", "a_last"], ["ha"], axis=0),
        helper.make_node("Gather", ["e_perf", "p_last"], ["hp"], axis=0),
        helper.make_node("Add", ["ha", "hp"], ["h"]),
        helper.make_node("MatMul", ["h", "w_out"], ["logits"]),
    ]
    if dt != TensorProto.INT64:
        # A model whose inputs are not int64 casts them inside (so the graph is valid, the contract not).
        nodes = [
            helper.make_node("Cast", [perf_name], [p_in], to=TensorProto.INT64),
            helper.make_node("Cast", [agent_name], [a_in], to=TensorProto.INT64),
            *nodes,
        ]
    graph_inputs = [
        helper.make_tensor_value_info(perf_name, dt, ["B", window]),
        helper.make_tensor_value_info(agent_name, dt, ["B", window]),
    ]
    graph_inputs.append(helper.make_tensor_value_info(pos_name, TensorProto.INT64, ["B"]))
    graph = helper.make_graph(
        nodes,
        "tiny_policy",
        graph_inputs,
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["B", vocab])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    props = dict(META, window=str(window))
    props.update(meta or {})
    for k in drop_meta:
        props.pop(k, None)
    helper.set_model_props(model, props)
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


@dataclass
class FakeSink:
    """Records every call; ``sounding`` is what a receiver would hear as held."""

    calls: list[tuple[object, ...]] = field(default_factory=list)
    sounding: dict[int, int] = field(default_factory=dict)
    now: object = None
    """Optional callable: calls are stamped with its time."""
    double_on: int = 0
    orphan_off: int = 0

    def _t(self) -> int:
        return int(self.now()) if callable(self.now) else 0

    def note_on(self, pitch: int, velocity: int) -> None:
        if pitch in self.sounding:
            self.double_on += 1
        self.sounding[pitch] = velocity
        self.calls.append(("on", self._t(), pitch, velocity))

    def note_off(self, pitch: int) -> None:
        if self.sounding.pop(pitch, None) is None:
            self.orphan_off += 1
        self.calls.append(("off", self._t(), pitch))

    def all_notes_off(self) -> None:
        self.sounding.clear()
        self.calls.append(("all_off", self._t()))

    def beat(self, bar: int, beat: int) -> None:
        self.calls.append(("beat", self._t(), bar, beat))

    def status(self, fields: dict[str, object], reply_to: tuple[str, int] | None) -> None:
        self.calls.append(("status", self._t(), fields, reply_to))

    def error(self, message: str, reply_to: tuple[str, int] | None) -> None:
        self.calls.append(("error", self._t(), message, reply_to))

    def close(self) -> None:
        self.calls.append(("close", self._t()))

    def of(self, kind: str) -> list[tuple[object, ...]]:
        return [c for c in self.calls if c[0] == kind]


def script_policy(
    tokens: dict[int, int] | None = None,
    *,
    default: int = 0,
    window: int = 8,
    mode: str = "anticipate",
    name: str = "script",
    on_call: object = None,
    pitch_min: int = 0,
    pitch_max: int = 127,
) -> CallablePolicy:
    """A numpy policy that plays ``tokens[step]`` (step counted from its calls' position/agent history).

    The decided step is recovered from the call count; ``on_call(step)`` runs first (e.g. to advance a
    ManualTime and simulate a slow policy).
    """
    meta = PolicyMeta(window=window, mode=mode, part="bass", pitch_min=pitch_min, pitch_max=pitch_max)  # type: ignore[arg-type]
    table = dict(tokens or {})
    state = {"n": 0}
    logits = np.zeros((1, VOCAB_SIZE), dtype=np.float32)

    def fn(obs: ObservationBuffers) -> np.ndarray:
        n = state["n"]
        state["n"] += 1
        if callable(on_call):
            on_call(n)
        logits.fill(0.0)
        logits[0, table.get(n, default)] = 1.0
        return logits

    policy = CallablePolicy(fn, meta, name)
    policy.calls = state  # type: ignore[attr-defined]
    return policy
