"""A performer who rolls every chord (or a patch that sends a chord's notes a few tens of ms apart) at
exactly ``--bpm`` drives ``--follow-tempo`` to its +25 % clamp, and the band leaves the performer's beat.

Attack: ``serve --bpm 100 --autostart --start-on-note``; 20 four-note chords, one a beat at exactly 100 BPM,
each rolled bottom-up 40 ms per note (a 120 ms roll: an ordinary piano roll or guitar strum). The roll's
last notes fall nearer the next step (150 ms), so each chord gives two "first onsets": the beat's and an
early one for the step after it; the loop takes the second for the performer rushing and speeds up every
beat.

Measured (real serve, two runs): status ``bpm`` 125.0 after ~8 beats; the listener's ``/liveagent/out/beat``
480 ms apart from then on, the chords' first notes -230..+238 ms off serve's nearest beat (answered_pct
50). A 75 ms roll (25 ms per note) stays at 100.0, within 5 ms of the beat; a 100 ms roll also ends at 125.
"""

from __future__ import annotations

import signal
import time

import pytest

from tests.live.serve_helpers import ServeProcess
from tests.review4.helpers import BEAT_MS, BPM, beat_times, wait_ns

pytestmark = pytest.mark.timeout(120)

CHORD = (48, 55, 60, 64)
ROLL_MS = 40.0


def test_rolled_chords_at_the_set_tempo_keep_it() -> None:
    with ServeProcess("--bpm", str(BPM), "--autostart", "--start-on-note", "--no-record") as sp:
        time.sleep(0.4)
        assert sp.status()["armed"] == 1
        t0 = time.perf_counter_ns() + 100e6
        firsts: list[int] = []
        for i in range(20):
            for j, pitch in enumerate(CHORD):
                wait_ns(t0 + (i * BEAT_MS + j * ROLL_MS) * 1e6)
                sp.send("/liveagent/note", pitch, 90)
                if j == 0:
                    firsts.append(time.perf_counter_ns())
            wait_ns(t0 + (i * BEAT_MS + 450.0) * 1e6)
            for pitch in CHORD:
                sp.send("/liveagent/note", pitch, 0)
        time.sleep(0.3)
        st = sp.status()
        assert sp.terminate(signal.SIGTERM) == 0
        beats = beat_times(sp)
        offsets = [min((s - b for b in beats), key=abs) / 1e6 for s in firsts[-8:]]
        # generous: the tempo within 5 % of the performer's (= --bpm), each chord within 60 ms of the beat
        assert abs(float(st["bpm"]) - BPM) < 0.05 * BPM, (st["bpm"], [round(x) for x in offsets])
        assert max(abs(x) for x in offsets) < 60, [round(x) for x in offsets]
