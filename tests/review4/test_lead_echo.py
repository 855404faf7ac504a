"""Every datagram duplicated 90 ms later (a network echo: a reflector, a bridged second route) drives
``--follow-tempo`` to its +25 % clamp while the performer plays exactly ``--bpm``.

Attack: ``serve --bpm 100 --autostart --start-on-note``; the performer plays 24 quarter notes at exactly
100 BPM, and every note-on and note-off arrives a second time 90 ms later (from a second socket). The copy
is nearer the next step (150 ms) than the note's own, so it is that step's first onset, 60 ms early: the
loop hears a performer rushing by 60 ms every beat (the same cause as rolled chords,
test_lead_rolled_chords.py).

Measured (real serve): status ``bpm`` 125.0; the listener's ``/liveagent/out/beat`` 461-480 ms apart for
the last 15 beats while the performer plays 600 ms quarters. The copy 100 ms late stays at 101.9 (beats
599-601 ms); 150 ms late (one whole step) 100.0.
"""

from __future__ import annotations

import signal
import time

import numpy as np
import pytest
from pythonosc.udp_client import SimpleUDPClient

from tests.live.serve_helpers import ServeProcess
from tests.review4.helpers import BEAT_MS, BPM, beat_times, intervals_ms, wait_ns

pytestmark = pytest.mark.timeout(120)

ECHO_MS = 90.0


def test_an_echoed_datagram_does_not_move_the_tempo() -> None:
    events: list[tuple[float, int, int, int]] = []  # (ms, route, pitch, velocity)
    for i in range(24):
        pitch = 60 + (i * 5) % 12
        for route, delay in ((0, 0.0), (1, ECHO_MS)):
            t = i * BEAT_MS + delay
            events += [(t, route, pitch, 90), (t + 300.0, route, pitch, 0)]
    events.sort(key=lambda e: e[0])
    with ServeProcess("--bpm", str(BPM), "--autostart", "--start-on-note", "--no-record") as sp:
        routes = [sp.client, SimpleUDPClient("127.0.0.1", sp.osc_port)]
        time.sleep(0.4)
        assert sp.status()["armed"] == 1
        t0 = time.perf_counter_ns() + 200e6
        for t, route, pitch, vel in events:
            wait_ns(t0 + t * 1e6)
            routes[route].send_message("/liveagent/note", [pitch, vel])
        time.sleep(0.3)
        st = sp.status()
        assert sp.terminate(signal.SIGTERM) == 0
        d = intervals_ms(beat_times(sp))
        assert len(d) >= 10, d
        # generous: the performer's 600 ms beat within 10 %, over the last 8 beats, and the tempo within 5 %
        tail = d[-8:]
        assert float(np.median(tail)) > 0.9 * BEAT_MS, ([round(x) for x in tail], st["bpm"])
        assert abs(float(st["bpm"]) - BPM) < 0.05 * BPM, st["bpm"]
