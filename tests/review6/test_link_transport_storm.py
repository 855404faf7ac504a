"""An independent Link peer that toggles the session's transport in a storm (start/stop every 120 ms to 3 s,
30 times) while a performer plays into a real `serve --clock link --policy style`: every stop releases the
agent's notes (checked at the receiver before any all-notes-off burst, a quarter second after the peer's
last stop), no two agent notes overlap, the server still follows a clean start afterwards, and SIGTERM
in the middle of a second storm is prompt with nothing left sounding."""

from __future__ import annotations

import logging
import random
import time

import pytest

from tests.live.receiver_notes import osc_notes, overlaps, sounding_at
from tests.live.serve_helpers import ServeProcess, wait_until
from tests.live.test_link import LinkPeer, beats_between, require_aalink
from tests.review6.helpers import Performer, assert_clean_exit, assert_no_stuck_notes

log = logging.getLogger(__name__)
BPM = 160.0
ARGS = ("--clock", "link", "--policy", "style", "--no-record", "--rt-priority", "0")


def _storm(peer: LinkPeer, n: int, rng: random.Random) -> None:
    for i in range(n):
        peer.send("start" if i % 2 == 0 else "stop")
        # mostly faster than Link's quantized start (the next bar line), now and then long enough to play
        time.sleep(rng.uniform(0.12, 0.3) if rng.random() < 0.6 else rng.uniform(1.6, 3.0))
    peer.send("stop")


@pytest.mark.timeout(180)
def test_link_transport_storm_releases_every_note() -> None:
    require_aalink()
    rng = random.Random(6)
    peer = LinkPeer(bpm=BPM)
    try:
        with ServeProcess(*ARGS) as sp, Performer(sp, BPM):
            assert wait_until(lambda: sp.status().get("link_peers", 0) >= 1, 10.0), sp.status()
            t = peer.send("start")
            assert wait_until(lambda: len(beats_between(sp, t, time.perf_counter_ns())) >= 4, 8.0)
            assert wait_until(lambda: int(sp.status()["notes_out"]) >= 2, 8.0), sp.status()
            _storm(peer, 30, rng)
            assert wait_until(lambda: int(sp.status()["running"]) == 0, 3.0), sp.status()
            time.sleep(0.25)
            assert sounding_at(osc_notes(sp.rx)) == {}, "a note outlived the peer's stop"
            st = sp.status()
            log.info("after the storm: %s", {k: st[k] for k in ("steps", "misses", "skipped", "notes_out")})
            # a clean start afterwards: the agent plays on the peer's beats again
            t = peer.send("start")
            beats = lambda: len(beats_between(sp, t, time.perf_counter_ns()))  # noqa: E731
            assert wait_until(lambda: beats() >= 4, 8.0), sp.status()
            n = int(sp.status()["notes_out"])
            assert wait_until(lambda: int(sp.status()["notes_out"]) > n, 8.0), "silent after the storm"
            # SIGTERM in a second storm
            for i in range(7):
                peer.send("stop" if i % 2 == 0 else "start")
                time.sleep(rng.uniform(0.12, 0.3))
            assert_clean_exit(sp, "a Link transport storm")
        assert_no_stuck_notes(sp, "a Link transport storm")
        assert overlaps(osc_notes(sp.rx)) == [], overlaps(osc_notes(sp.rx))[:3]
    finally:
        peer.close()
