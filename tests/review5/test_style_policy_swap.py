"""The mood survives a policy swap (real `serve`, real UDP): a musician on `style` in `busy` swaps to `rules`
for a verse (which has no style input: the mood is kept, not lost) and back to `style`: it plays busy again
and keeps answering."""

from __future__ import annotations

import time

import pytest

from liveagent.live.engine.policy import OnnxPolicy
from tests.live.serve_helpers import ServeProcess, wait_until
from tests.review5.helpers import Performer, hygiene, stop_cleanly

pytestmark = pytest.mark.timeout(150)

BPM = 120.0


def z_text(mood: str) -> str:
    return " ".join(f"{v:.2f}" for v in OnnxPolicy.load("style").meta.moods[mood])


def on(serve: ServeProcess, policy: str, timeout: float = 10.0) -> bool:
    return wait_until(lambda: serve.status()["policy"] == policy, timeout)


def test_mood_kept_across_policy_swaps() -> None:
    with ServeProcess("--policy", "style", "--bpm", f"{BPM:g}", "--no-record", "--autostart") as serve:
        with Performer(serve, BPM):
            assert wait_until(lambda: serve.status()["notes_out"] >= 2, 15), serve.status()
            serve.send("/liveagent/mood", "busy")
            assert wait_until(lambda: serve.status()["style"] == z_text("busy"), 6)
            serve.send("/liveagent/policy", "rules")
            assert on(serve, "rules"), serve.status()
            st = serve.status()
            assert st["style_dim"] == 0 and st["style_mood"] == "busy", st
            time.sleep(0.6)  # under the policy rate limit
            serve.send("/liveagent/policy", "style")
            assert on(serve, "style"), serve.status()
            assert wait_until(lambda: serve.status()["style"] == z_text("busy"), 3), serve.status()
            assert serve.status()["style_mood"] == "busy"
            notes = serve.status()["notes_out"]
            assert wait_until(lambda: serve.status()["notes_out"] > notes, 6), "silent after the swap back"
        stop_cleanly(serve)
    stuck, over = hygiene(serve)
    assert stuck == {} and over == [], (stuck, over[:3])
