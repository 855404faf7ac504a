"""The same through Ableton Link (a review found this defect; fixed by ``StyleSteer.settle``): the
drummer's app stops the session in the middle of a mood glide and starts it again (Link restarts the beat
count at 0): the agent's style went back to where the glide began and stayed there for as many steps as the
old session had played."""

from __future__ import annotations

import time

from liveagent.live.engine.policy import OnnxPolicy
from tests.live.serve_helpers import ServeProcess, wait_until
from tests.live.test_link import LinkPeer, require_aalink
from tests.review5.helpers import Performer


def z_text(mood: str) -> str:
    return " ".join(f"{v:.2f}" for v in OnnxPolicy.load("style").meta.moods[mood])


def test_link_restart_mid_glide_arrives_at_the_mood() -> None:
    require_aalink()
    peer = LinkPeer(bpm=120.0)
    time.sleep(1.0)
    bar = 2.0
    try:
        with ServeProcess("--clock", "link", "--policy", "style", "--no-record") as sp:
            assert wait_until(lambda: sp.status().get("link_peers", 0) >= 1, 10.0)
            peer.send("start")
            with Performer(sp, 120.0):
                assert wait_until(lambda: sp.status()["running"] == 1, 5)
                time.sleep(5 * bar)
                sp.send("/liveagent/mood", "busy")
                time.sleep(bar / 4)
                peer.send("stop")
                assert wait_until(lambda: sp.status()["running"] == 0, 3)
                time.sleep(0.3)
                peer.send("start")
                assert wait_until(lambda: sp.status()["running"] == 1, 5)
                seen: list[dict[str, object]] = []

                def arrived() -> bool:
                    seen.append(sp.status())
                    return seen[-1]["style"] == z_text("busy") and seen[-1]["style_gliding"] == 0

                ok = wait_until(arrived, 2 * bar + 0.5)
    finally:
        peer.close()
    assert ok, f"2 bars after the restart: {seen[-1]['style']!r} gliding {seen[-1]['style_gliding']}"
