"""A Link peer at a tempo aalink allows (600-999 BPM) froze the server's status in anticipate timing (a
review found it): the lead, sized at the start tempo (20 ms), left under 4 ms of slack between an emission
and the next decision once the step shrank to 25 ms. The engine now decides at most half a step ahead."""

from __future__ import annotations

import time

import pytest

from tests.live.serve_helpers import ServeProcess, wait_until
from tests.live.test_link import LinkPeer, beats_between, require_aalink

ARGS = (
    *("--clock", "link", "--policy", "rules", "--no-record"),
    *("--rt-priority", "0", "--no-wait-for-performer"),
)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("bpm", [600.0, 999.0])
def test_status_stays_fresh_at_a_fast_link_tempo(bpm: float) -> None:
    require_aalink()
    peer = LinkPeer(bpm=120.0)
    try:
        with ServeProcess(*ARGS) as sp:
            assert wait_until(lambda: sp.status().get("link_peers", 0) >= 1, 10.0)
            t = peer.send("start")
            assert wait_until(lambda: len(beats_between(sp, t, time.perf_counter_ns())) >= 3, 8.0)
            t = peer.send(f"tempo {bpm:g}")
            time.sleep(1.5)
            a = sp.status()
            time.sleep(0.5)
            b = sp.status()
            beats = len(beats_between(sp, t, time.perf_counter_ns()))
            msg = (
                f"{bpm:g} BPM: {beats} beats out since the change; status bpm {a['bpm']}->{b['bpm']}, "
                f"steps {a['steps']}->{b['steps']}"
            )
            assert beats > bpm / 60 * 1.5, msg  # the engine does play at the peer's tempo
            assert float(b["bpm"]) == pytest.approx(bpm), msg  # documented: a reply is at most ~100 ms old
            assert int(b["steps"]) > int(a["steps"]), msg
    finally:
        peer.close()
