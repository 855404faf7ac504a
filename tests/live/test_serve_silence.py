"""`liveagent serve` over real UDP: the agent waits for the performer (the silence gate, on by default)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.live.policies import PATTERN, write_pattern_policy
from tests.live.receiver_notes import before_first_burst, osc_notes
from tests.live.serve_helpers import ServeProcess

pytestmark = pytest.mark.timeout(90)


def test_serve_plays_nothing_until_the_performer_plays_then_answers(tmp_path: Path) -> None:
    # The pattern policy strikes a note on every beat whatever it hears: every silence is the gate's.
    policy = write_pattern_policy(tmp_path / "pattern.onnx")
    with ServeProcess("--policy", str(policy), "--bpm", "240", "--no-record") as sp:
        assert sp.fields["wait_for_performer"] == "1"
        sp.send("/liveagent/start")
        time.sleep(2.0 + 0.1)  # two bars of 16ths at 240 BPM (1 s a bar): the performer plays nothing
        st = sp.status()
        assert st["running"] == 1 and st["steps"] >= 28, st
        assert st["waits_for_performer"] == 1 and st["waiting"] == 1
        assert st["performer_silent_steps"] >= 16 + 28
        beats = sp.rx.of("/liveagent/out/beat")
        assert len(beats) >= 7, beats  # the server is playing the grid ...
        assert [v for _, v in sp.rx.of("/liveagent/out/note") if v > 0] == []  # ... but not one note
        # The performer plays: a note each beat for a bar.
        t_first = time.perf_counter_ns()
        for i in range(4):
            sp.send("/liveagent/note", 67 + i, 90)
            time.sleep(0.2)
            sp.send("/liveagent/note", 67 + i, 0)
            time.sleep(0.05)
        got = sp.rx.wait_for("/liveagent/out/note", 4, timeout=5)
        ons = [p for p, v in got if v > 0]
        assert len(ons) >= 2 and set(ons) <= set(PATTERN.values()), got
        st = sp.status()
        assert st["waiting"] == 0 and st["notes_in"] == 4 and st["notes_out"] >= 2, st
        on_times = [t for t, a, args in list(sp.rx.messages) if a == "/liveagent/out/note" and args[1] > 0]
        assert on_times and min(on_times) > t_first  # nothing before the performer's first note
        assert sp.terminate() == 0
        assert before_first_burst(osc_notes(sp.rx)) == {}  # released by the engine, not the exit burst
