"""Property: no sequence of notes, transport, mutes, panics, policy swaps and a final signal leaves an agent
note sounding at an independent receiver (a real `serve`, real UDP)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.live.policies import write_pattern_policy
from tests.live.serve_helpers import ServeProcess, unmatched_notes

POLICIES: list[Path] = []

action = st.one_of(
    st.tuples(st.just("note"), st.integers(40, 90), st.sampled_from([0, 0, 64, 100])),
    st.tuples(st.sampled_from(["start", "stop", "continue", "panic"])),
    st.tuples(st.just("mute"), st.integers(0, 1)),
    st.tuples(st.just("policy"), st.integers(0, 1)),
    st.tuples(st.just("tempo"), st.sampled_from([90.0, 180.0, 300.0])),
    st.tuples(st.just("sleep"), st.integers(0, 150)),
)


@pytest.fixture(scope="module", autouse=True)
def _policies(tmp_path_factory: pytest.TempPathFactory) -> None:
    d = tmp_path_factory.mktemp("policies")
    POLICIES[:] = [write_pattern_policy(d / "pa.onnx"), write_pattern_policy(d / "pb.onnx")]


@pytest.mark.timeout(240)
@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(
    actions=st.lists(action, min_size=3, max_size=25), sig=st.sampled_from([signal.SIGINT, signal.SIGTERM])
)
def test_no_stuck_note_at_the_receiver(actions: list[tuple[object, ...]], sig: int) -> None:
    with ServeProcess("--policy", str(POLICIES[0]), "--bpm", "240", "--autostart") as sp:
        time.sleep(0.15)
        for a in actions:
            kind = a[0]
            if kind == "sleep":
                time.sleep(int(a[1]) / 1000)  # type: ignore[call-overload]
            elif kind == "policy":
                sp.send("/liveagent/policy", str(POLICIES[int(a[1])]))  # type: ignore[call-overload]
            elif kind in ("note", "mute", "tempo"):
                sp.send(f"/liveagent/{kind}", *a[1:])
            else:
                sp.send(f"/liveagent/{kind}")
        time.sleep(0.1)
        assert sp.terminate(sig) == 0, sp.stderr
        notes = sp.rx.of("/liveagent/out/note")
        assert unmatched_notes(notes) == {}, f"stuck after {actions}: {notes[-10:]}"
