"""One fast glissando captures ``--follow-tempo`` at the +25 % clamp for good, while the performer keeps
playing at ``--bpm``.

Attack: ``serve --bpm 100 --autostart --start-on-note``; the performer plays quarter notes exactly at
100 BPM (12 of them); after the 4th, a glissando (or a burst from a flaky patch): 19 note-ons 25 ms apart
(475 ms, 40 notes/s). Every step of the burst has an onset half a step early, so the loop runs the period to
its clamp (125 BPM: a 120 ms step); then the performer's 600 ms quarters are exactly 5 of those steps, a
stable lock of a loop that takes each onset for its nearest step, and the grid never comes back.

Measured (real serve): status ``bpm`` 125.0 to the end; the listener's ``/liveagent/out/beat`` 469-489 ms
apart for the 8 beats after the burst while the performer plays 600 ms quarters, their notes drifting
-167, -43, +68, +199, -142 ms against serve's beat. A 12-note run of 32nds (37.5 ms apart) recovers
(bpm 99.1, within 12 ms of the beat after 6 beats); 19 notes 25 ms apart, 32 notes 15 ms apart or a
4 ms flood do not.
"""

from __future__ import annotations

import signal
import time

import numpy as np
import pytest

from tests.live.serve_helpers import ServeProcess
from tests.review4.helpers import BEAT_MS, BPM, beat_times, intervals_ms, wait_ns

pytestmark = pytest.mark.timeout(120)


def test_a_glissando_does_not_capture_the_tempo() -> None:
    events: list[tuple[float, int, int]] = []
    for i in range(12):
        t = i * BEAT_MS
        pitch = 60 + (i * 5) % 12
        events += [(t, pitch, 90), (t + 500.0, pitch, 0)]
        if i == 3:
            for j in range(1, 20):
                events += [(t + j * 25.0, 72 + j % 5, 90), (t + j * 25.0 + 1, 72 + j % 5, 0)]
    events.sort(key=lambda e: e[0])
    with ServeProcess("--bpm", str(BPM), "--autostart", "--start-on-note", "--no-record") as sp:
        time.sleep(0.4)
        assert sp.status()["armed"] == 1
        start = time.perf_counter_ns() + 200e6
        t_last_quarters = 0
        for t, pitch, vel in events:
            wait_ns(start + t * 1e6)
            sp.send("/liveagent/note", pitch, vel)
            if t == 8 * BEAT_MS and vel:
                t_last_quarters = time.perf_counter_ns()
        time.sleep(0.3)
        st = sp.status()
        assert sp.terminate(signal.SIGTERM) == 0
        d = intervals_ms(beat_times(sp, after_ns=t_last_quarters - int(50e6)))
        assert len(d) >= 3, d
        # the performer's last 4 quarters are 600 ms apart: serve's beat within 10 % of them, and its tempo
        assert float(np.median(d)) > 0.9 * BEAT_MS, ([round(x) for x in d], st["bpm"])
        assert abs(float(st["bpm"]) - BPM) < 0.1 * BPM, st["bpm"]
