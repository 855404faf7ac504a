"""The style and the transport (real `serve --policy style`, real UDP): a mood changed together with a tempo
change. A musician expects the mood asked for to arrive within a bar or so of playing, whatever the tempo
does meanwhile."""

from __future__ import annotations

import time

import pytest

from liveagent.live.engine.policy import OnnxPolicy
from tests.live.receiver_notes import osc_notes
from tests.live.serve_helpers import ServeProcess, wait_until
from tests.review5.helpers import Performer, agent_onsets, hygiene, max_onsets_within, stop_cleanly

pytestmark = pytest.mark.timeout(150)

BPM = 120.0


def z_text(mood: str) -> str:
    return " ".join(f"{v:.2f}" for v in OnnxPolicy.load("style").meta.moods[mood])


def test_mood_change_during_a_tempo_change() -> None:
    new_bpm = 150.0
    with ServeProcess("--policy", "style", "--bpm", f"{BPM:g}", "--no-record", "--autostart") as serve:
        with Performer(serve, BPM):  # the player keeps the old tempo: the agent's grid moves under them
            assert wait_until(lambda: serve.status()["notes_out"] >= 4, 15), serve.status()
            st0 = serve.status()
            t0 = time.perf_counter_ns()
            serve.send("/liveagent/tempo", new_bpm)
            serve.send("/liveagent/mood", "bright")
            assert wait_until(lambda: serve.status()["bpm"] == new_bpm, 3 * 4 * 60 / BPM), serve.status()
            assert wait_until(
                lambda: (s := serve.status())["style_mood"] == "bright" and s["style_gliding"] == 0,
                3 * 4 * 60 / BPM,
            ), serve.status()
            assert serve.status()["style"] == z_text("bright")
            time.sleep(4 * 60 / new_bpm)
            st = serve.status()
            # The player keeps the old tempo, so their onsets land anywhere in the agent's follow windows,
            # some at a window's end where the decision keeps only half its budget: on the shared 2-core
            # machine the full suite saw 2 misses here (0 alone). A glide or a tempo change adds no work.
            assert st["misses"] - st0["misses"] <= 2, st["misses"] - st0["misses"]
        stop_cleanly(serve)
    ons = agent_onsets(osc_notes(serve.rx), t0)
    assert len(ons) >= 4
    assert max_onsets_within(ons, round(60e9 / new_bpm / 4 / 2)) == 1
    stuck, over = hygiene(serve)
    assert stuck == {} and over == [], (stuck, over[:3])
