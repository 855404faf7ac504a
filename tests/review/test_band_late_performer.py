"""Review (issue 10): a performer steadily behind serve's internal grid by more than the follow window.

A human on an internal clock drifts; half a sixteenth behind (55 ms at 120 BPM: past the 50 ms follow
window, before the next step) or past the half step (80 ms: quantized to the next sixteenth, an off-beat)
the SOLO default keeps answering (measured: 22 and 16 notes for 16 performer notes), while the BAND goes
silent: 0 notes of any voice at 55 ms, 1 onset per voice at 70 ms, 2 at 100 ms (5, 30, 45 and -20 ms: 16
per voice). With a free-running keyboard over JACK (tests/review/test_band_midi_stage.py) this showed up as
a band silent for 20 s while the performer played 40 notes (notes_out 0, late_amended 11).

Real ``serve`` subprocess, real UDP; the performer is timed on the grid read from serve's status.
"""

from __future__ import annotations

import time

import pytest

from tests.live.serve_helpers import ServeProcess, wait_until
from tests.live.test_serve_band import VOICES, voice_notes

pytestmark = pytest.mark.timeout(120)

MELODY = (72, 74, 76, 77, 79, 77, 76, 74)
BEATS = 16


def play_behind(sp: ServeProcess, late_ms: float) -> None:
    """Quarter notes ``late_ms`` behind serve's beats (read from its status), each held 0.85 beat."""
    assert wait_until(lambda: "grid_t0_ns" in sp.status(), 5)
    st = sp.status()
    t0, beat = int(st["grid_t0_ns"]), float(st["step_ns"]) * 4
    n = int((time.perf_counter_ns() - t0) // beat) + 2
    for i in range(BEATS):
        t_on = t0 + (n + i) * beat + late_ms * 1e6
        while (wait := t_on - time.perf_counter_ns()) > 0:
            time.sleep(min(wait / 1e9, 0.01) if wait > 2e6 else 0)
        sp.send("/liveagent/note", MELODY[i % len(MELODY)], 90)
        time.sleep(beat * 0.85 / 1e9)
        sp.send("/liveagent/note", MELODY[i % len(MELODY)], 0)


@pytest.mark.parametrize("late_ms", [55.0, 80.0])
def test_band_keeps_playing_for_a_performer_behind_the_grid(late_ms: float) -> None:
    """FAILS now: at least a quarter as many onsets per voice as the performer plays (the solo default
    plays about one per performer note at these offsets)."""
    with ServeProcess("--band", "satb", "--bpm", "120", "--autostart", "--no-record") as sp:
        time.sleep(0.3)
        play_behind(sp, late_ms)
        time.sleep(0.3)
        st = sp.status()
        ons = {v: sum(1 for _, _, vel in voice_notes(sp.rx, v) if vel) for v in VOICES}
        assert sp.terminate() == 0
        assert int(st["notes_in"]) == BEATS, st
        assert all(n >= BEATS // 4 for n in ons.values()), (
            f"performer {late_ms} ms behind: band onsets {ons} for {BEATS} performer notes; "
            f"late_amended={st['late_amended']} answered={st['answered']} notes_out={st['notes_out']}"
        )
