"""A stop in the middle of a mood glide, then /liveagent/start (a review found this defect; fixed by
``StyleSteer.settle``). The glide kept its k0 (the step it began at in the old session, ~97 here) while
the new session counts steps from 0: Glide.fraction(k) = (k - k0 + 1) / steps clamped to 0, so on restart
the style jumped BACK to where the glide started (neutral) and stayed there ~k0 steps (6 bars at 16 steps a
bar) before gliding; the status said style_gliding 1 all along, even while stopped. A musician expects the
mood asked for within a bar of playing again."""

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


def test_stop_mid_glide_then_start_arrives_at_the_mood() -> None:
    """Play 6 bars (the step counter far from 0), ask for busy, stop a quarter of the way through the glide,
    start again: within two bars of the restart the agent plays busy and no longer glides."""
    bar = 4 * 60 / BPM
    with ServeProcess("--policy", "style", "--bpm", f"{BPM:g}", "--no-record", "--autostart") as serve:
        with Performer(serve, BPM):
            assert wait_until(lambda: serve.status()["notes_out"] >= 4, 15), serve.status()
            time.sleep(5 * bar)
            serve.send("/liveagent/mood", "busy")
            time.sleep(bar / 4)
            serve.send("/liveagent/stop")
            assert wait_until(lambda: serve.status()["running"] in (0, False), 3)
            stopped = serve.status()
            time.sleep(0.3)
            serve.send("/liveagent/start")
            assert wait_until(lambda: serve.status()["running"] in (1, True), 3)
            seen: list[dict[str, object]] = []

            def arrived() -> bool:
                seen.append(serve.status())
                return seen[-1]["style"] == z_text("busy") and seen[-1]["style_gliding"] == 0

            ok = wait_until(arrived, 2 * bar + 0.5)
        stop_cleanly(serve)
    assert ok, (
        f"2 bars after the restart the style is {seen[-1]['style']!r} (gliding {seen[-1]['style_gliding']}, "
        f"step {seen[-1].get('step')}), busy is {z_text('busy')!r}; at the stop: style {stopped['style']!r} "
        f"gliding {stopped['style_gliding']} step {stopped.get('step')}"
    )
    stuck, over = hygiene(serve)
    assert stuck == {} and over == []
