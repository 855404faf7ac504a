"""``/liveagent/continue`` with ``--start-on-note``: the performer's note resumes at the stopped step's phase.

A soprano plays 6 beats, the band follows; /liveagent/stop comes a moment after a beat (as a stage hand
presses it), then /liveagent/continue arms the transport. The performer comes back in on a beat, as the
docs promise ("the performer's first note-on starts it ... the agent and its beats then run on the
performer's phase"). But an armed continue starts the clock at the step the stop left off (``cont``), and a
stop lands mid-beat: the performer's beat becomes step 25, a sixteenth after serve's beat, and so does every
later beat. The band hears an off-beat melody. Measured (band, 100 BPM, 16 quarter notes after the
continue): alto/tenor/bass 5/3/7 onsets, against 17 each after /liveagent/start in the same scene.
"""

from __future__ import annotations

import signal
import time

import pytest

from tests.live.serve_helpers import ServeProcess, wait_until
from tests.review3.harness import BPM, VOICES, heard, play, quarters

pytestmark = pytest.mark.timeout(120)


def test_continue_resumes_on_the_performers_beat() -> None:
    with ServeProcess(
        "--band", "satb", "--bpm", str(BPM), "--autostart", "--start-on-note", "--no-record"
    ) as sp:
        time.sleep(0.4)
        play(sp, quarters(beats=6))
        time.sleep(0.1)  # the stop comes mid-beat
        sp.send("/liveagent/stop")
        assert wait_until(lambda: sp.status()["running"] == 0, 5)
        sp.send("/liveagent/continue")
        assert wait_until(lambda: sp.status()["armed"] == 1, 5)
        sent = play(sp, quarters(), lead_ns=0.37e9)  # back in, on the performer's own beat
        time.sleep(0.4)
        st = sp.status()
        assert sp.terminate(signal.SIGTERM) == 0
        h = heard(sp, sent)
        step_ns, t0 = float(st["step_ns"]), int(st["grid_t0_ns"])
        first_step = (sent[0][0] - t0) / step_ns
        for voice in VOICES:
            assert h.onsets[voice] >= 10, (
                f"{voice}: the band dropped out after /continue ({h}); the performer's first beat "
                f"became step {first_step:.2f} (beats are multiples of 4)"
            )
