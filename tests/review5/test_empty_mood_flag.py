"""`serve --mood` takes a mood name by the rules `/liveagent/mood` follows (a review found a launcher
script's empty $MOOD silently playing the default mood, while OSC refused an empty name, and the CLI refusing
" busy", which OSC accepts): an empty or blank name is refused (exit 2), stray spaces are stripped."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("name", ["", "  ", " busy"])
def test_serve_mood_flag_same_rules_as_osc(name: str) -> None:
    cmd = [sys.executable, "-m", "liveagent", "serve", "--osc-port", "0", "--no-record", "--policy", "style"]
    try:
        r = subprocess.run([*cmd, "--mood", name], capture_output=True, text=True, timeout=8)
        out, err, rc = r.stdout, r.stderr, r.returncode
    except subprocess.TimeoutExpired as e:  # it started and kept running
        out = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        err, rc = "", None
    if name.strip():
        assert "mood=busy" in out, (rc, out, err)  # stripped, as /liveagent/mood does
    else:
        assert rc == 2 and "mood" in err, (rc, out, err)
