"""Transport churn in the middle of a mood's glide, through a real `serve --policy style` at 240 BPM with a
performer: /stop mid-glide keeps the request and lands the glide on the mood's latent (stopped, a style
applies at once: ``StyleSteer.settle``), so /start or /continue plays the mood; start/stop storms never
leave a note sounding at the receiver or an overlap, and the style in the status is always a finite latent
within the documented range."""

from __future__ import annotations

import time

import pytest

from liveagent.live.engine.policy import OnnxPolicy
from tests.live.receiver_notes import osc_notes, overlaps, sounding_at
from tests.live.serve_helpers import ServeProcess, wait_until
from tests.review6.helpers import Performer, assert_clean_exit, assert_no_stuck_notes

BPM = 240.0


def z_text(mood: str) -> str:
    return " ".join(f"{v:.2f}" for v in OnnxPolicy.load("style").meta.moods[mood])


@pytest.mark.timeout(180)
def test_stop_start_continue_mid_glide() -> None:
    args = ("--policy", "style", "--no-record", "--rt-priority", "0", "--bpm", f"{BPM:g}", "--autostart")
    with ServeProcess(*args) as sp, Performer(sp, BPM):
        assert wait_until(lambda: int(sp.status()["notes_out"]) >= 4, 10), sp.status()
        for mood, transport in (("busy", "/liveagent/stop"), ("dark", "/liveagent/stop")):
            sp.send("/liveagent/mood", mood)
            assert wait_until(lambda: sp.status()["style_gliding"] == 1, 3), sp.status()
            sp.send(transport)
            assert wait_until(lambda: int(sp.status()["running"]) == 0, 3), sp.status()
            assert sp.status()["style_mood"] == mood, sp.status()  # the request survives the stop
            time.sleep(0.3)
            assert sounding_at(osc_notes(sp.rx)) == {}, "a note outlived /stop mid-glide"
            sp.send("/liveagent/continue" if mood == "dark" else "/liveagent/start")
            assert wait_until(lambda: int(sp.status()["running"]) == 1, 3), sp.status()
            assert wait_until(
                lambda m=mood: sp.status()["style"] == z_text(m) and sp.status()["style_gliding"] == 0, 5
            ), f"the glide to {mood} did not finish after the restart: {sp.status()}"
        # a storm: mood, start, stop, mood, continue ... 40 times, 30 ms apart
        moods = ("calm", "busy", "bright", "dark", "neutral")
        for i in range(40):
            sp.send("/liveagent/mood", moods[i % len(moods)])
            sp.send(("/liveagent/start", "/liveagent/stop", "/liveagent/continue")[i % 3])
            time.sleep(0.03)
        sp.send("/liveagent/mood", "bright")
        sp.send("/liveagent/start")
        assert wait_until(lambda: int(sp.status()["running"]) == 1, 3), sp.status()
        assert wait_until(lambda: sp.status()["style"] == z_text("bright"), 5), sp.status()
        st = sp.status()
        assert all(abs(float(v)) <= 10 for v in str(st["style"]).split()), st["style"]
        n = len([e for e in osc_notes(sp.rx) if e[2] > 0])
        time.sleep(1.5)
        assert len([e for e in osc_notes(sp.rx) if e[2] > 0]) > n, "the agent fell silent after the storm"
        sp.send("/liveagent/mood", "calm")
        assert wait_until(lambda: sp.status()["style_gliding"] == 1, 3), sp.status()
        assert_clean_exit(sp, "transport churn mid-glide")
    assert_no_stuck_notes(sp, "transport churn mid-glide")
    assert overlaps(osc_notes(sp.rx)) == []
