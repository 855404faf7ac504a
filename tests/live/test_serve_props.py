"""Property: no sequence of notes, transport, mutes, panics, policy swaps, tempo changes and a final signal
leaves an agent note sounding at an independent receiver (a real `serve`, real UDP).

Checked where a check can fail: the all-notes-off bursts (128 note-offs on /panic and on exit) are ignored
(tests/live/receiver_notes.py), so only the engine's own note-offs count. After every /stop and mute the
receiver must hold nothing once the engine had time to act; at no moment may two agent notes sound (the
line is monophonic, through tempo changes and swaps); after the signal nothing may be left to the burst."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.live.policies import write_pattern_policy
from tests.live.receiver_notes import osc_notes, overlaps, sounding_at
from tests.live.serve_helpers import ServeProcess

POLICIES: list[Path] = []
LEADS = "--no-wait-for-performer"
RELEASE_S = 0.15
"""Time the engine gets to act on /stop or mute before the receiver is checked (a step is 62.5 ms at 240
BPM: a release that waited for the next step would pass, but the one missing altogether fails)."""

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
    actions=st.lists(action, min_size=3, max_size=25),
    sig=st.sampled_from([signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT]),
)
@example(  # what the property is about, whatever hypothesis draws: releases while a note sounds
    actions=[
        ("sleep", 150),
        ("stop",),
        ("start",),
        ("sleep", 150),
        ("mute", 1),
        ("mute", 0),
        ("tempo", 300.0),
        ("sleep", 150),
        ("policy", 1),
        ("sleep", 100),
        ("tempo", 90.0),
        ("sleep", 150),
    ],
    sig=signal.SIGHUP,
)
def test_no_stuck_note_at_the_receiver(actions: list[tuple[object, ...]], sig: int) -> None:
    # The agent leads (no silence gate): it plays from the first step, so every action meets a sounding note
    with ServeProcess("--policy", str(POLICIES[0]), "--bpm", "240", "--autostart", LEADS) as sp:
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
            if a in (("stop",), ("mute", 1)):
                time.sleep(RELEASE_S)  # nothing plays from here until the next action
                held = sounding_at(osc_notes(sp.rx))
                assert held == {}, f"{held} sounding after {a} in {actions}"
        time.sleep(0.1)
        assert sp.terminate(sig) == 0, sp.stderr
        events = osc_notes(sp.rx)
        assert sounding_at(events) == {}, f"left to the exit burst after {actions}: {events[-10:]}"
        assert overlaps(events) == [], f"two notes at once in {actions}"
