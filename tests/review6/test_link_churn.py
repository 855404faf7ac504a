"""Link peers that come and go, and one killed with SIGKILL mid-bar, around a real `serve --clock link`
playing with a performer: the agent keeps its beat grid (no jump, no stop) through the churn and the kill,
link_peers follows the session, /stop still works with every note released by the engine (before any
all-notes-off burst), and SIGTERM right after a peer's SIGKILL is prompt."""

from __future__ import annotations

import logging
import signal
import time

import numpy as np
import pytest

from tests.live.receiver_notes import osc_notes, overlaps, sounding_at
from tests.live.serve_helpers import ServeProcess, wait_until
from tests.live.test_link import LinkPeer, beats_between, require_aalink
from tests.review6.helpers import Performer, assert_clean_exit, assert_no_stuck_notes

log = logging.getLogger(__name__)
BPM = 120.0
ARGS = ("--clock", "link", "--policy", "rules", "--no-record", "--rt-priority", "0", "--bpm", "120")


def _kill_mid_bar(peer: LinkPeer) -> None:
    """SIGKILL the peer a third of the way into a bar (by its own beat)."""
    assert wait_until(lambda: (peer.last()["beat"] % 4.0) > 1.2 and (peer.last()["beat"] % 4.0) < 1.6, 5.0)
    peer.proc.send_signal(signal.SIGKILL)
    peer.proc.wait(5)


def _gaps_ms(sp: ServeProcess, t0: int, t1: int) -> np.ndarray:
    ts = [t for t, _, _ in beats_between(sp, t0, t1)]
    return np.diff(ts) / 1e6


@pytest.mark.timeout(180)
def test_peers_join_leave_and_one_is_killed_mid_bar() -> None:
    require_aalink()
    main = LinkPeer(bpm=BPM)
    extra: list[LinkPeer] = []
    try:
        with ServeProcess(*ARGS) as sp, Performer(sp, BPM):
            assert wait_until(lambda: sp.status().get("link_peers", 0) >= 1, 10.0), sp.status()
            t_start = main.send("start")
            assert wait_until(lambda: len(beats_between(sp, t_start, time.perf_counter_ns())) >= 4, 8.0)
            for _ in range(5):  # a phone app joins and leaves, five times
                p = LinkPeer(bpm=BPM)
                extra.append(p)
                assert wait_until(lambda: sp.status().get("link_peers", 0) >= 2, 10.0), sp.status()
                time.sleep(0.3)
                p.close()
                time.sleep(0.3)
            for _ in range(2):  # and twice it dies without a word, mid-bar
                p = LinkPeer(bpm=BPM)
                extra.append(p)
                assert wait_until(lambda: sp.status().get("link_peers", 0) >= 2, 10.0), sp.status()
                _kill_mid_bar(p)
            t_churn = time.perf_counter_ns()
            gaps = _gaps_ms(sp, t_start, t_churn)
            assert int(sp.status()["running"]) == 1
            # the main peer itself, SIGKILLed mid-bar: the agent plays on alone on the session's grid
            _kill_mid_bar(main)
            t_kill = time.perf_counter_ns()
            assert wait_until(lambda: len(beats_between(sp, t_kill, time.perf_counter_ns())) >= 6, 8.0), (
                f"the agent stopped after the peer's SIGKILL: {sp.status()}"
            )
            gaps_after = _gaps_ms(sp, t_churn, time.perf_counter_ns())
            st = sp.status()
            report = (
                f"beat gaps (ms) through the churn: min {gaps.min():.1f} max {gaps.max():.1f}; around the "
                f"kill: min {gaps_after.min():.1f} max {gaps_after.max():.1f}; misses {st['misses']} skipped "
                f"{st['skipped']} link_peers {st['link_peers']} resyncs {st.get('link_resyncs')}"
            )
            log.info("%s", report)
            beat_ms = 60e3 / BPM
            assert np.all(np.abs(gaps - beat_ms) < 50), report
            assert np.all(np.abs(gaps_after - beat_ms) < 50), report
            assert int(st["skipped"]) == 0, report
            assert wait_until(lambda: int(sp.status()["link_peers"]) == 0, 20.0), sp.status()
            assert int(sp.status()["running"]) == 1
            # /stop: honoured, every agent note released by the engine itself
            sp.send("/liveagent/stop")
            assert wait_until(lambda: int(sp.status()["running"]) == 0, 3.0), sp.status()
            time.sleep(0.3)
            assert sounding_at(osc_notes(sp.rx)) == {}, "a note outlived /stop"
            assert_clean_exit(sp, "peer churn and a peer's SIGKILL")
        assert_no_stuck_notes(sp, "peer churn")
        assert overlaps(osc_notes(sp.rx)) == []
    finally:
        for p in [main, *extra]:
            if p.proc.poll() is None:
                p.proc.kill()
                p.proc.wait(5)


@pytest.mark.timeout(120)
def test_sigterm_right_after_the_only_peer_is_killed_mid_bar() -> None:
    require_aalink()
    peer = LinkPeer(bpm=BPM)
    try:
        with ServeProcess(*ARGS) as sp, Performer(sp, BPM):
            assert wait_until(lambda: sp.status().get("link_peers", 0) >= 1, 10.0), sp.status()
            t = peer.send("start")
            assert wait_until(lambda: len(beats_between(sp, t, time.perf_counter_ns())) >= 5, 8.0)
            assert wait_until(lambda: int(sp.status()["notes_out"]) >= 2, 8.0), sp.status()
            _kill_mid_bar(peer)
            time.sleep(0.05)
            assert_clean_exit(sp, "the only peer's SIGKILL")
        assert_no_stuck_notes(sp, "SIGTERM after the peer's SIGKILL")
    finally:
        if peer.proc.poll() is None:
            peer.proc.kill()
            peer.proc.wait(5)
