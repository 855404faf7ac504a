"""`/liveagent/policy` hot-swaps a style policy to one without a style input (rules) while a mood's glide is
in progress, and back, through a real `serve` at 240 BPM (a bar is a second) with a performer playing: the
request is kept across the policy without the input (style_dim 0) and applied again to the style policy,
the glide ends on the mood's latent, no note overlaps or is left sounding, few misses; SIGTERM mid-glide
is prompt."""

from __future__ import annotations

import time

import pytest

from liveagent.live.engine.policy import OnnxPolicy
from tests.live.receiver_notes import osc_notes, overlaps
from tests.live.serve_helpers import ServeProcess, wait_until
from tests.review6.helpers import Performer, assert_clean_exit, assert_no_stuck_notes

BPM = 240.0


def z_text(mood: str) -> str:
    return " ".join(f"{v:.2f}" for v in OnnxPolicy.load("style").meta.moods[mood])


@pytest.mark.timeout(180)
def test_swap_away_from_and_back_to_a_style_policy_mid_glide() -> None:
    args = ("--policy", "style", "--no-record", "--rt-priority", "0", "--bpm", f"{BPM:g}", "--autostart")
    with ServeProcess(*args) as sp, Performer(sp, BPM):
        assert wait_until(lambda: int(sp.status()["notes_out"]) >= 4, 10), sp.status()
        st0 = sp.status()
        for round_ in range(3):
            mood = ("busy", "dark", "bright")[round_]
            sp.send("/liveagent/mood", mood)
            assert wait_until(lambda m=mood: sp.status()["style_gliding"] == 1, 3), sp.status()
            sp.send("/liveagent/policy", "rules")
            assert wait_until(lambda: sp.status()["policy"] != st0["policy"], 5), sp.status()
            st = sp.status()
            assert int(st["style_dim"]) == 0 and st["style"] == "", st
            assert st["style_mood"] == mood, f"the request was lost on the swap: {st}"
            time.sleep(0.6)  # policy loads: at most 2 a second
            sp.send("/liveagent/policy", "style")
            assert wait_until(lambda: int(sp.status()["style_dim"]) == 4, 5), sp.status()
            assert wait_until(
                lambda m=mood: sp.status()["style"] == z_text(m) and sp.status()["style_gliding"] == 0, 5
            ), sp.status()
            assert sp.status()["style_mood"] == mood
            time.sleep(0.6)
        st1 = sp.status()
        assert int(st1["swaps"]) - int(st0["swaps"]) == 6, st1
        assert int(st1["policy_errors"]) == 0, st1
        assert int(st1["misses"]) - int(st0["misses"]) <= 4, st1
        t_last = time.perf_counter_ns()
        time.sleep(1.5)
        ons = [e for e in osc_notes(sp.rx) if e[2] > 0 and e[0] > t_last]
        assert ons, "the agent stopped answering after the swaps"
        # SIGTERM in the middle of a glide
        sp.send("/liveagent/mood", "calm")
        assert wait_until(lambda: sp.status()["style_gliding"] == 1, 3), sp.status()
        assert_clean_exit(sp, "a glide in progress")
    events = osc_notes(sp.rx)
    assert_no_stuck_notes(sp, "swaps mid-glide and SIGTERM mid-glide")
    assert overlaps(events) == [], overlaps(events)[:3]
