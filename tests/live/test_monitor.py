"""The live monitor renders a status snapshot; the out-of-process monitor renders JSON lines from stdin."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from rich.console import Console

from liveagent.live.commands.monitor import render

STATUS = {
    "running": 1,
    "bpm": 132.0,
    "bar": 6,
    "beat": 2,
    "policy": "rules",
    "mode": "anticipate",
    "decision_p50_us": 21.0,
    "decision_p99_us": 45.0,
    "lateness_p50_us": 60.0,
    "lateness_p99_us": 410.0,
    "steps": 400,
    "notes_in": 31,
    "notes_out": 27,
    "misses": 3,
    "input_errors": 2,
    "sounding": "48",
}


def _text(st: dict[str, object]) -> str:
    c = Console(width=120, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    c.print(render(st, "liveagent test"))
    return c.export_text()


def test_render_shows_the_numbers() -> None:
    txt = _text(STATUS)
    for needle in (
        "playing",
        "132.0 BPM",
        "bar:beat 7:3",
        "rules",
        "410",
        "45",
        "notes in 31",
        "notes out 27",
    ):
        assert needle in txt, (needle, txt)
    assert "misses 3" in txt and "errors 2" in txt and "C3" in txt


def test_render_shows_follow_timing_only_for_follow_policies() -> None:
    assert "answer latency" not in _text(STATUS) and "follow window" not in _text(STATUS)
    st = {
        **STATUS,
        "mode": "react",
        "timing": "follow",
        "answer_p50_us": 812.0,
        "answer_p99_us": 1375.0,
        "answer_max_us": 2210.0,
        "follow_window_ms": 12.4,
        "follow_adaptive": 1,
        "follow_offset_p50_ms": 10.3,
        "answered": 29,
        "late_amended": 3,
        "answered_pct": 90.6,
    }
    txt = _text(st)
    for needle in ("answer latency", "812", "1375", "2210", "follow window 12.4 ms (adaptive)", "+10.3 ms"):
        assert needle in txt, (needle, txt)
    assert "answered 29 (90.6 %)" in txt and "late amended 3" in txt


def test_render_survives_an_empty_or_odd_snapshot() -> None:
    txt = _text({})
    assert "stopped" in txt and "-:-" in txt
    txt = _text({"bpm": "x", "bar": None, "sounding": [60, 64], "muted": 1})
    assert "muted" in txt and "C4 E4" in txt
    assert "waiting for the performer" in _text({"running": 1, "waiting": 1})
    assert "waiting" not in _text({"running": 1, "waiting": 0}) and "playing" in _text({"running": 1})


@pytest.mark.timeout(60)
def test_monitor_process_renders_stdin_snapshots() -> None:
    lines = "\n".join(json.dumps({**STATUS, "steps": i}) for i in range(3)) + "\n"
    r = subprocess.run(
        [sys.executable, "-m", "liveagent.live.commands.monitor", "--hz", "20"],
        input=lines,
        capture_output=True,
        text=True,
        timeout=30,
        env={"COLUMNS": "120", "PATH": "/usr/bin:/bin"},
    )
    assert r.returncode == 0, r.stderr
    assert "132.0 BPM" in r.stdout and "steps 2" in r.stdout
