"""`liveagent bench` runs and reports numbers (a smoke test: no timing is asserted, machines are noisy)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from liveagent.live.io.receiver import lateness_ns, summarize_us
from tests.live.policies import write_pattern_policy
from tests.support import require


def test_lateness_against_the_grid() -> None:
    t0, step = 1_000_000, 62_500_000.0
    arrivals = [t0 + 0 * 62_500_000 + 150_000, t0 + 3 * 62_500_000 + 90_000, t0 + 7 * 62_500_000 - 10_000]
    late = lateness_ns(arrivals, t0, step)
    assert late.tolist() == [150_000.0, 90_000.0, -10_000.0]
    s = summarize_us(late)
    assert s["n"] == 3 and s["max"] == 150.0 and s["min"] == -10.0 and s["p50"] == 90.0
    assert summarize_us(np.array([]))["n"] == 0


def test_bench_line_shows_the_share_of_onsets_answered() -> None:
    from liveagent.live.commands.bench_cli import _line

    res = {
        "osc_lateness_us": {"n": 3, "p50": 100.0, "p99": 200.0, "p99.9": 300.0},
        "misses": 0,
        "steps": 240,
        "answer_us": {"p50": 3200.0, "p95": 3500.0, "p99": 3900.0, "max": 4100.0},
        "answered": 57,
        "late_amended": 3,
        "answered_pct": 95.0,
        "follow_window_ms": 12.5,
    }
    txt = _line("osc", res)
    assert "over 57 onsets (95.0 % answered)" in txt and "late amended 3" in txt


@pytest.mark.timeout(240)
def test_bench_quick_sections(tmp_path: Path) -> None:
    policy = write_pattern_policy(tmp_path / "pattern.onnx")
    out = tmp_path / "bench.json"
    r = subprocess.run(
        [
            sys.executable, "-m", "liveagent", "bench", "--quick", "--policy", str(policy),
            "--only", "decision,cold,osc,floor,agents", "--json", str(out),
        ],
        capture_output=True,
        text=True,
        timeout=220,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())
    assert set(res) == {"decision", "cold", "osc", "floor", "agents"}
    for section in res.values():
        assert "error" not in section, section
    assert res["decision"]["n"] == 500 and res["decision"]["p99"] >= res["decision"]["p50"] > 0
    assert res["cold"]["torch_mapped"] is False and res["cold"]["torch_in_sys_modules"] is False
    assert 0 < res["cold"]["rss_mb"] < 2000
    assert res["osc"]["osc_lateness_us"]["n"] > 10 and res["osc"]["steps"] > 10
    assert res["agents"]["trials"] and "max_agents_zero_misses" in res["agents"]
    assert "decision" in r.stdout and "receiver lateness" in r.stdout
    # the floor: every datagram of the bare sender heard, none before its grid point (clock mapping aside)
    floor = res["floor"]
    assert floor["osc_lateness_us"]["n"] == floor["sent"] == 48  # 3 s at 240 BPM in 16ths
    assert floor["osc_lateness_us"]["min"] > -50.0
    assert floor["spin_gap_us"]["n"] == 48 and "floor" in r.stdout


@pytest.mark.timeout(120)
def test_bench_torch_section_runs_in_a_subprocess() -> None:
    """ONNX vs torch on the same policy, measured by liveagent.train.bench_torch in a child process: the
    bench process itself never imports torch or liveagent.train."""
    require(importlib.util.find_spec("torch") is not None, "torch not installed (pip install -e '.[train]')")
    code = (
        "import json, sys\n"
        "from liveagent.live.commands.bench import BenchConfig, bench_torch\n"
        "res = bench_torch(BenchConfig(decisions=200))\n"
        "bad = [m for m in sys.modules if m == 'torch' or m.startswith('liveagent.train')]\n"
        "res['parent_imports'] = sorted(bad)\n"
        "print(json.dumps(res))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=110)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["parent_imports"] == []
    assert res["onnx_us"]["n"] == 200 and res["torch_eager_us"]["n"] == 200
    assert res["onnx_us"]["p99"] >= res["onnx_us"]["p50"] > 0
    assert res["speedup_p50"] == pytest.approx(res["torch_eager_us"]["p50"] / res["onnx_us"]["p50"], rel=0.02)
    assert res["max_abs_diff"] <= 1e-4 and res["argmax_agreement"] == 1.0  # the same policy on both sides


def _numbers(d: dict[str, float]) -> bool:
    return all(isinstance(d[q], int | float) for q in ("n", "p50", "p99", "p99.9", "max", "min"))


@pytest.mark.timeout(300)
def test_bench_band_beside_solo(tmp_path: Path) -> None:
    """`bench --band satb`: a band step vs a solo decision, a real `serve --band satb` heard on every voice's
    address (chord grace on and off) beside the solo serve, the most bands vs solo engines per process.
    Structure and numbers only: no timing is asserted."""
    out = tmp_path / "band.json"
    r = subprocess.run(
        [
            sys.executable, "-m", "liveagent", "bench", "--band", "satb", "--only", "decision,osc,agents",
            "--duration", "2", "--decisions", "100", "--agents-seconds", "1.5", "--max-agents", "2",
            "--json", str(out),
        ],
        capture_output=True,
        text=True,
        timeout=280,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())
    assert set(res) == {"decision", "osc", "agents"}
    for section in res.values():
        assert "error" not in section, section
    dec = res["decision"]
    assert dec["band"]["voices"] == ["alto", "tenor", "bass"] and dec["band"]["order"] == [
        "bass",
        "tenor",
        "alto",
    ]
    assert dec["band"]["n"] == 100 and _numbers(dec["band"]) and _numbers(dec["solo"])
    assert set(dec["band"]["per_voice_us"]) == {"alto", "tenor", "bass"}
    assert all(_numbers(v) for v in dec["band"]["per_voice_us"].values())
    assert isinstance(dec["band_over_solo_p50"], float)
    osc = res["osc"]
    for run in ("band", "band_chord0", "solo", "solo_chord0"):
        assert osc[run]["steps"] > 0 and isinstance(osc[run]["misses"], int), run
        assert _numbers(osc[run]["osc_lateness_us"]) and isinstance(osc[run]["decision_p99_us"], int | float)
        assert all(isinstance(osc[run]["answer_us"][q], int | float) for q in ("p50", "p95")), run
    for run in ("band", "band_chord0"):  # the band played, heard on every voice's own address
        assert osc[run]["notes_out"] > 0 and osc[run]["band_lateness_us"]["n"] > 0
        assert set(osc[run]["voices_lateness_us"]) == {"alto", "tenor", "bass"}
        assert all(_numbers(v) for v in osc[run]["voices_lateness_us"].values())
    assert "voices_lateness_us" not in osc["solo"]
    for who in ("band", "solo"):
        agents = res["agents"][who]
        assert agents["performer"] is True and isinstance(agents["max_agents_zero_misses"], int)
        assert agents["trials"] and all(isinstance(t["notes_out"], int) for t in agents["trials"])
    assert res["agents"]["band"]["trials"][0]["notes_out"] > 0  # a band under a melody plays
    assert "all voices" in r.stdout and "band/solo" in r.stdout and "agents    band" in r.stdout
