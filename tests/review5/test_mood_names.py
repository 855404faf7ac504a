"""Mood names as a musician types them (real `serve`, real UDP): a wrong name on the command line is refused
before `ready` with the list of moods, never silently replaced; over OSC, an empty or non-text mood is a
counted error and the mood playing stays, a name with stray spaces (a Pd symbol box) is understood."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.live.serve_helpers import ServeProcess, wait_until

pytestmark = pytest.mark.timeout(120)

MOODS_LISTED = "bright, busy, calm, dark, leaping, neutral, syncopated"


# ("neutral " is neutral: spaces are stripped, as over OSC)
@pytest.mark.parametrize("name", ["BUSY", "busy,calm", "bsy"])
def test_serve_refuses_a_mistyped_mood_and_lists_the_moods(name: str) -> None:
    cmd = [sys.executable, "-m", "liveagent", "serve", "--osc-port", "0", "--no-record", "--policy", "style"]
    r = subprocess.run(
        [*cmd, "--mood", name],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "unknown mood" in r.stderr and MOODS_LISTED in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and "ready" not in r.stdout


def test_osc_mood_names_from_a_patch() -> None:
    with ServeProcess("--policy", "style", "--mood", "calm", "--no-record") as serve:
        assert wait_until(lambda: serve.status()["style_mood"] == "calm", 5)  # the status is ~100 ms old
        st0 = serve.status()
        for bad in ("", "   ", 5, 2.5):
            n_err = len(serve.rx.of("/liveagent/error"))
            serve.send("/liveagent/mood", bad)
            errs = serve.rx.wait_for("/liveagent/error", n_err + 1, 5)
            assert len(errs) > n_err, f"no error for mood {bad!r}"
            st = serve.status()
            assert st["style_mood"] == "calm", (bad, st["style_mood"])
        serve.send("/liveagent/mood", "  busy ")  # a symbol box with stray spaces
        assert wait_until(lambda: serve.status()["style_mood"] == "busy", 5), serve.status()
        serve.send("/liveagent/mood")  # no argument at all
        assert wait_until(lambda: serve.status()["osc_errors"] > st0["osc_errors"], 5)
        assert serve.status()["style_mood"] == "busy"
        assert serve.terminate() == 0
