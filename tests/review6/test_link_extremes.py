"""A real `serve --clock link` against an independent Link peer (tests/live/link_peer.py, aalink directly,
another process) that does what a messy stage does: proposes extreme tempos while the agent plays (20 BPM,
aalink's and the server's floor, and 400, the top of the server's own range; aalink allows up to 999), and
SIGTERMs the server at each extreme, mid-bar. The stage rules: the server follows
(the status says the tempo), keeps answering, plays on the peer's beats, counts what it misses, never
crashes, and exits within the rule with every note released by the engine at the receiver."""

from __future__ import annotations

import logging
import time

import pytest

from tests.live.receiver_notes import osc_notes, overlaps
from tests.live.serve_helpers import ServeProcess, wait_until
from tests.live.test_link import LinkPeer, beats_between, require_aalink
from tests.review6.helpers import assert_clean_exit, assert_no_stuck_notes

log = logging.getLogger(__name__)
ARGS = (
    "--clock", "link", "--policy", "rules", "--no-record", "--rt-priority", "0", "--no-wait-for-performer",
)  # fmt: skip


def _started(peer: LinkPeer, sp: ServeProcess) -> int:
    assert wait_until(lambda: sp.status().get("link_peers", 0) >= 1, 10.0), sp.status()
    t = peer.send("start")
    assert wait_until(lambda: len(beats_between(sp, t, time.perf_counter_ns())) >= 3, 8.0), "no beats"
    return t


@pytest.mark.timeout(120)
@pytest.mark.parametrize("bpm", [20.0, 400.0])
def test_link_peer_extreme_tempo_then_sigterm(bpm: float) -> None:
    require_aalink()
    peer = LinkPeer(bpm=120.0)
    try:
        with ServeProcess(*ARGS) as sp:
            _started(peer, sp)
            st0 = sp.status()
            t_tempo = peer.send(f"tempo {bpm:g}")
            assert wait_until(lambda: abs(float(sp.status()["bpm"]) - bpm) < 0.01, 5.0), sp.status()
            beat_s = 60.0 / bpm
            n_beats = 8 if bpm > 100 else 2
            assert wait_until(
                lambda: len(beats_between(sp, t_tempo, time.perf_counter_ns())) >= n_beats,
                n_beats * beat_s + 5.0,
            ), f"beats stopped at {bpm} BPM: {sp.status()}"
            st1 = sp.status()
            log.info(
                "Link %g BPM: steps %s->%s misses %s->%s skipped %s->%s lateness p99 %s us",
                bpm, st0["steps"], st1["steps"], st0["misses"], st1["misses"], st0["skipped"],
                st1["skipped"], st1["lateness_p99_us"],
            )  # fmt: skip
            assert int(st1["running"]) == 1
            assert sp.status(timeout=1.0)["link_tempo"] == pytest.approx(bpm, abs=0.01)
            # SIGTERM at the extreme, mid-bar (a bar at 20 BPM is 12 s, a step 0.75 s)
            time.sleep(beat_s * 0.37 if bpm < 100 else 0.123)
            assert_clean_exit(sp, f"Link at {bpm:g} BPM")
        assert_no_stuck_notes(sp, f"SIGTERM at Link {bpm:g} BPM")
        assert overlaps(osc_notes(sp.rx)) == []
        assert osc_notes(sp.rx), "the agent played nothing"
    finally:
        peer.close()
