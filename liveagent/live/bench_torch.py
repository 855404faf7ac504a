"""ONNX (onnxruntime, as `serve` runs it) against torch eager on the same small policy network.

Only `liveagent bench` imports this, and only when torch is installed: `serve` never does. The network is
a contract-v1 MLP (token embeddings of both windows and the bar position, two hidden layers), exported
with torch's ONNX exporter; both sides run one sample at a time on one thread.
"""

from __future__ import annotations

import io
import time
from typing import Any

import numpy as np

from liveagent.live.receiver import summarize_us
from liveagent.music.tokens import VOCAB_SIZE


def _net(torch: Any, window: int, steps_per_bar: int) -> Any:
    nn = torch.nn

    class ContractMLP(nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.perf = nn.Embedding(VOCAB_SIZE, 16)
            self.agent = nn.Embedding(VOCAB_SIZE, 16)
            self.pos = nn.Embedding(steps_per_bar, 16)
            self.mlp = nn.Sequential(
                nn.Linear(2 * window * 16 + 16, 256),
                nn.ReLU(),
                nn.Linear(256, 256),
                nn.ReLU(),
                nn.Linear(256, VOCAB_SIZE),
            )

        def forward(self, performer: Any, agent: Any, position: Any) -> Any:
            b = performer.shape[0]
            x = torch.cat(
                [self.perf(performer).reshape(b, -1), self.agent(agent).reshape(b, -1), self.pos(position)],
                -1,
            )
            return self.mlp(x)

    return ContractMLP().eval()


def _export(torch: Any, model: Any, args: tuple[Any, ...]) -> bytes:
    buf = io.BytesIO()
    kw: dict[str, Any] = {
        "input_names": ["performer", "agent", "position"],
        "output_names": ["logits"],
        "dynamic_axes": {"performer": {0: "B"}, "agent": {0: "B"}, "position": {0: "B"}, "logits": {0: "B"}},
    }
    try:
        torch.onnx.export(model, args, buf, dynamo=False, **kw)
    except Exception:  # older/newer exporters: fall back to the dynamo one
        buf = io.BytesIO()
        torch.onnx.export(model, args, buf, dynamo=True, **kw)
    return buf.getvalue()


def onnx_vs_torch(torch: Any, n: int = 5000, window: int = 32, steps_per_bar: int = 16) -> dict[str, Any]:
    import onnxruntime as ort

    from liveagent.live.policy import _session_options

    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = _net(torch, window, steps_per_bar)
    perf = torch.randint(0, VOCAB_SIZE, (1, window))
    agent = torch.randint(0, VOCAB_SIZE, (1, window))
    pos = torch.tensor([3])
    data = _export(torch, model, (perf, agent, pos))
    sess = ort.InferenceSession(data, sess_options=_session_options(), providers=["CPUExecutionProvider"])
    feed = {"performer": perf.numpy(), "agent": agent.numpy(), "position": pos.numpy()}
    with torch.inference_mode():
        ref = model(perf, agent, pos).numpy()
    max_err = float(np.abs(sess.run(["logits"], feed)[0] - ref).max())

    def time_it(fn: Any) -> np.ndarray:
        for _ in range(100):
            fn()
        out = np.empty(n, dtype=np.float64)
        for i in range(n):
            t0 = time.perf_counter_ns()
            fn()
            out[i] = time.perf_counter_ns() - t0
        return out

    t_onnx = time_it(lambda: sess.run(["logits"], feed))
    with torch.inference_mode():
        t_torch = time_it(lambda: model(perf, agent, pos))
    o, t = summarize_us(t_onnx), summarize_us(t_torch)
    return {
        "model": f"MLP window={window} emb=16 256-256-{VOCAB_SIZE}",
        "onnx_us": o,
        "torch_eager_us": t,
        "speedup_p50": round(t["p50"] / o["p50"], 2) if o["p50"] else None,
        "speedup_p99": round(t["p99"] / o["p99"], 2) if o["p99"] else None,
        "max_abs_diff": max_err,
        "torch": torch.__version__,
        "onnxruntime": ort.__version__,
    }
