"""A burst's captured tempo survives ``/liveagent/stop`` + ``/liveagent/start``: the next session, armed and
started by a performer playing exactly ``--bpm``, runs at the +25 % clamp throughout.

Attack: ``serve --bpm 100 --autostart --start-on-note``; one second of note-ons 25 ms apart (a flaky patch's
burst) takes the followed tempo to its clamp, 125 BPM. Then ``/liveagent/stop`` and ``/liveagent/start``
(a new session: armed, the votes forgotten) and the performer plays 10 quarter notes at 100 BPM.
``InternalClock.start`` keeps the followed period (only ``/tempo`` resets it), and the performer's 600 ms
quarters are exactly 5 steps of 120 ms: a stable lock, so nothing pulls it back.

Measured (real serve): status ``bpm`` 125.0 while armed before any note, 124.9 at the end; the listener's
``/liveagent/out/beat`` 476-484 ms apart for every beat of the new session (two runs), against the performer's
600 ms.
"""

from __future__ import annotations

import signal
import time

import numpy as np
import pytest

from tests.live.serve_helpers import ServeProcess, wait_until
from tests.review4.helpers import BEAT_MS, BPM, beat_times, intervals_ms, wait_ns

pytestmark = pytest.mark.timeout(120)


def test_a_new_session_starts_at_the_set_tempo() -> None:
    with ServeProcess("--bpm", str(BPM), "--autostart", "--start-on-note", "--no-record") as sp:
        time.sleep(0.4)
        assert sp.status()["armed"] == 1
        for j in range(40):
            sp.send("/liveagent/note", 72 + j % 5, 90)
            sp.send("/liveagent/note", 72 + j % 5, 0)
            time.sleep(0.025)
        sp.send("/liveagent/stop")
        assert wait_until(lambda: sp.status()["running"] == 0, 5)
        sp.send("/liveagent/start")
        assert wait_until(lambda: sp.status()["armed"] == 1, 5)
        armed_bpm = sp.status()["bpm"]
        t0 = time.perf_counter_ns() + 100e6
        for i in range(10):
            wait_ns(t0 + i * BEAT_MS * 1e6)
            sp.send("/liveagent/note", 60 + i, 90)
            time.sleep(0.4)
            sp.send("/liveagent/note", 60 + i, 0)
        time.sleep(0.2)
        st = sp.status()
        assert sp.terminate(signal.SIGTERM) == 0
        d = intervals_ms(beat_times(sp, after_ns=int(t0)))
        assert len(d) >= 5, d
        # the performer plays 600 ms quarters from the session's first note: serve's beat within 10 %
        assert float(np.median(d)) > 0.9 * BEAT_MS, ([round(x) for x in d], armed_bpm, st["bpm"])
