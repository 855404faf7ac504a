"""Clocks through the real path: a real `liveagent serve` fed over real UDP (OSC beat pulses) and through a
real JACK server by an rtmidi clock master in this process (ticks on perf_counter deadlines from a thread,
Start, Continue, Song Position Pointer, Stop), its beats heard at a real OSC receiver.

Each test names the defect of issue 12 it reproduces. The beats the server sends (``/liveagent/out/beat bar
beat``) are compared with the grid the master defines: for OSC the pulses' send times, for MIDI the send time
of the tick that opens the beat (tick ``(bar * 4 + beat) * 24`` counted from Start, or from the Song
Position). Bounds are generous (a loaded 2-core machine, JACK periods of 10.7 ms): what they catch are errors
of a tick period or more (lost phase: half a beat; early beats: tens of ms).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.live.policies import write_pattern_policy
from tests.live.serve_helpers import ServeProcess, wait_until

pytestmark = [pytest.mark.system, pytest.mark.timeout(120)]

MS = 1_000_000


@pytest.fixture(scope="module")
def pattern_policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_pattern_policy(tmp_path_factory.mktemp("policy") / "pattern.onnx")


def _sleep_until(t_ns: int) -> None:
    """Sleep to a perf_counter_ns deadline (coarse sleep, then a short spin: sub-ms sends)."""
    while True:
        left = t_ns - time.perf_counter_ns()
        if left <= 0:
            return
        time.sleep(max(0.0, left / 1e9 - 0.002) if left > 3 * MS else 0)


def _beats(sp: ServeProcess, since_ns: int = 0) -> list[tuple[int, int]]:
    """(arrival ns, absolute beat index) of the server's /liveagent/out/beat messages since ``since_ns``."""
    return [
        (t, int(p[0]) * 4 + int(p[1]))
        for t, a, p in list(sp.rx.messages)
        if a == "/liveagent/out/beat" and t >= since_ns
    ]


# -- OSC beat pulses ----------------------------------------------------------------------------------


def test_osc_tempo_is_kept_across_beat_pulses(pattern_policy: Path) -> None:
    """Issue 12, item 3: `/tempo 80` then pulses at 80 BPM (what patches/README.md tells users to do). A
    pulse threw the pending tempo away: the status stayed at 120 BPM, with misses and skipped steps, and the
    beats went out at 120 BPM between the pulses. Now the status reads 80 BPM, nothing is missed, and every
    beat the server sends lands on the grid the pulses define (one beat per pulse, at the pulse)."""
    period = 60e9 / 80.0
    with ServeProcess(
        "--policy",
        str(pattern_policy),
        "--clock",
        "osc",
        "--bpm",
        "120",
        "--no-wait-for-performer",
        "--no-record",
    ) as sp:
        sp.send("/liveagent/start")
        assert wait_until(lambda: len(_beats(sp)) >= 2, timeout=5)
        before = sp.status()
        sp.send("/liveagent/tempo", 80.0)
        t0 = time.perf_counter_ns() + 100 * MS
        pulses: list[int] = []
        for i in range(14):
            _sleep_until(round(t0 + i * period))
            pulses.append(time.perf_counter_ns())
            sp.send("/liveagent/beat")
        time.sleep(0.2)
        after = sp.status()
        # The grid from the third pulse on (the first ones re-anchor the phase), up to the last pulse.
        got = [t for t, _ in _beats(sp, pulses[2] - 60 * MS) if t <= pulses[-1] + 60 * MS]
        offsets = [min(abs(t - p) for p in pulses) / MS for t in got]
        assert after["bpm"] == pytest.approx(80.0, abs=0.5), after
        assert after["skipped"] - before["skipped"] == 0, (before, after)
        assert after["misses"] - before["misses"] <= 1, (before, after)
        assert len(got) == len(pulses) - 2, (len(got), offsets)
        assert max(offsets) < 40, offsets
