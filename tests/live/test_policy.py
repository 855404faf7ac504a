"""The ONNX policy runner: contract validation with clear refusals, name resolution, no torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from liveagent.live.engine import policy as policy_mod
from liveagent.live.engine.policy import OnnxPolicy, PolicyError, PolicyMeta, load_policy
from liveagent.music.features import ObservationBuffers
from liveagent.music.tokens import HOLD, REST, onset
from tests.live.engine_helpers import META, tiny_onnx_bytes


def test_tiny_policy_loads_and_echoes(tmp_path: Path) -> None:
    path = tmp_path / "tiny.onnx"
    path.write_bytes(tiny_onnx_bytes(window=8))
    pol = OnnxPolicy.load(path)
    assert pol.name == "tiny"
    assert pol.meta == PolicyMeta(window=8, part="bass", algo="test", dataset="none", metrics={"score": 1.0})
    obs = ObservationBuffers.allocate(1, 8)
    for tok in (REST, HOLD, onset(60), onset(40)):
        obs.performer[0, -1] = tok
        logits = pol(obs)
        assert logits.dtype == np.float32 and logits.shape == (1, 130)
        assert int(np.argmax(logits[0])) == tok
    # The same buffers are reused (bound once): updating them in place changes the answer.
    obs.performer[0, -1] = onset(50)
    assert int(np.argmax(pol(obs)[0])) == onset(50)


def test_batched_call(tmp_path: Path) -> None:
    pol = OnnxPolicy.from_bytes(tiny_onnx_bytes(window=4, echo=False), name="r")
    obs = ObservationBuffers.allocate(3, 4)
    assert pol(obs).shape == (3, 130)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"drop_meta": ("liveagent.contract",)}, "metadata missing liveagent.contract"),
        ({"drop_meta": ("window", "mode")}, "metadata missing window, mode"),
        ({"meta": {"liveagent.contract": "2"}}, "contract version 2"),
        ({"meta": {"mode": "sideways"}}, "mode='sideways'"),
        ({"meta": {"pitch_min": "70", "pitch_max": "60"}}, "pitch_min 70 > pitch_max 60"),
        ({"meta": {"pitch_max": "130"}}, "pitch_max=130 outside 0..127"),
        ({"meta": {"steps_per_beat": "four"}}, "steps_per_beat='four' is not an integer"),
        ({"meta": {"metrics": "{not json"}}, "metrics is not JSON"),
        ({"meta": {"window": "16"}}, "window 8 but metadata says window=16"),
        ({"input_names": ("performer", "agent", "pos")}, "missing input(s) position"),
        ({"input_names": ("perf", "agent", "position")}, "missing input(s) performer"),
        ({"vocab": 128}, "wrong vocab"),
    ],
)
def test_contract_violations_are_refused_with_reason(kwargs: dict[str, object], needle: str) -> None:
    data = tiny_onnx_bytes(window=8, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(PolicyError) as err:
        OnnxPolicy.from_bytes(data, name="bad")
    assert needle in str(err.value)


def test_wrong_input_dtype_is_refused() -> None:
    from onnx import TensorProto

    data = tiny_onnx_bytes(input_dtype=TensorProto.INT32)
    with pytest.raises(PolicyError, match=r"input performer is tensor\(int32\)"):
        OnnxPolicy.from_bytes(data)


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"", "empty file"),
        (b"this is not a model at all" * 10, "not a loadable ONNX model"),
    ],
)
def test_garbage_is_refused(data: bytes, needle: str) -> None:
    with pytest.raises(PolicyError, match=needle):
        OnnxPolicy.from_bytes(data)


def test_truncated_file_is_refused(tmp_path: Path) -> None:
    good = tiny_onnx_bytes()
    path = tmp_path / "cut.onnx"
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(PolicyError, match="not a loadable ONNX model") as err:
        OnnxPolicy.load(path)
    assert "cut.onnx" in str(err.value)


def test_missing_file_and_unknown_name(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="policy file not found"):
        OnnxPolicy.load(tmp_path / "nope.onnx")
    with pytest.raises(PolicyError, match=r"unknown policy 'no-such-policy'.*rules"):
        load_policy("no-such-policy")


def test_name_resolves_in_export_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mybass.onnx").write_bytes(tiny_onnx_bytes())
    monkeypatch.setattr(policy_mod, "export_dir", lambda: tmp_path)
    pol = load_policy("mybass")
    assert isinstance(pol, OnnxPolicy) and pol.path == tmp_path / "mybass.onnx"
    assert policy_mod.available_policies() == ["rules", "mybass"]


def test_export_dir_is_the_installed_package() -> None:
    d = policy_mod.export_dir()
    assert d.is_dir() and (d / "__init__.py").is_file()


def test_session_tuned_for_single_sample_latency() -> None:
    pol = OnnxPolicy.from_bytes(tiny_onnx_bytes())
    opts = pol.session.get_session_options()
    assert opts.intra_op_num_threads == 1 and opts.inter_op_num_threads == 1
    import onnxruntime as ort

    assert opts.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert opts.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL


def test_meta_from_props_accepts_the_contract() -> None:
    meta = PolicyMeta.from_props(META)
    assert meta.steps_per_bar == 16 and meta.window == 8 and meta.metrics == {"score": 1.0}


def test_importing_the_live_engine_does_not_load_torch() -> None:
    code = (
        "import sys, liveagent.live.engine.loop, liveagent.live.engine.policy, liveagent.live.engine.clocks, "
        "liveagent.live.engine.recording, liveagent.live.engine.notes\n"
        "bad = [m for m in ('torch', 'liveagent.env', 'liveagent.train') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_rules_policy_is_selectable_by_name() -> None:
    pol = load_policy("rules")
    assert pol.name == "rules" and pol.meta.algo == "rules" and pol.meta.mode == "anticipate"
    assert (pol.meta.pitch_min, pol.meta.pitch_max, pol.meta.steps_per_bar) == (36, 62, 16)
    obs = ObservationBuffers.allocate(1, pol.meta.window)
    obs.performer[0, -4:] = [onset(72), HOLD, onset(76), HOLD]
    logits = pol(obs)
    assert logits.shape == (1, 130) and logits.dtype == np.float32
    assert 36 + 2 <= int(np.argmax(logits[0])) <= 62 + 2 or int(np.argmax(logits[0])) in (REST, HOLD)


def test_rebinds_when_buffers_change_and_handles_views() -> None:
    pol = OnnxPolicy.from_bytes(tiny_onnx_bytes(window=4))
    obs = ObservationBuffers.allocate(2, 4)
    obs.performer[:, -1] = [onset(60), onset(62)]
    assert np.argmax(pol(obs), axis=1).tolist() == [onset(60), onset(62)]
    obs.performer = np.full((2, 4), onset(64), dtype=np.int64)  # a new array in the same object
    assert np.argmax(pol(obs), axis=1).tolist() == [onset(64)] * 2
    big = np.full((2, 8), onset(65), dtype=np.int64)
    view = ObservationBuffers(big[:, ::2], obs.agent, obs.position)  # not contiguous: plain run
    assert np.argmax(pol(view), axis=1).tolist() == [onset(65)] * 2
