"""The status snapshot: built and published by the engine thread in slack time, read by any thread;
percentiles without np.percentile; the policy loader thread at normal scheduling."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import numpy as np
import pytest

from liveagent.live.commands.server import realtime_thread
from liveagent.live.engine.clocks import InternalClock, ManualClock
from liveagent.live.engine.loop import Engine, EngineConfig
from liveagent.live.engine.policy import OnnxPolicy, Policy, load_policy
from liveagent.live.engine.policy_view import normal_scheduling
from liveagent.live.engine.stats import Ring, StatusBoard
from liveagent.live.events import Control, ControlEvent, NoteEvent
from liveagent.music.tokens import REST
from tests.live.engine_helpers import FakeSink, script_policy, tiny_onnx_bytes
from tests.support import require

MS = 1_000_000


@pytest.mark.parametrize("n", [1, 2, 3, 10, 999, 4096, 5000, 12345])
def test_ring_percentiles_match_numpy(n: int) -> None:
    rng = np.random.default_rng(n)
    ring = Ring(4096)
    for v in rng.integers(0, 50 * MS, size=n):
        ring.add(int(v))
    held = ring.values()
    got = ring.percentiles_us()
    for q in (50.0, 99.0, 99.9):
        assert got[f"p{q:g}"] == pytest.approx(float(np.percentile(held, q)) / 1e3, rel=1e-12)
    assert got["max"] == held.max() / 1e3
    assert np.array_equal(ring.values(), held)  # the ring itself is left as it was


def test_ring_percentiles_of_an_empty_ring_are_zero() -> None:
    assert Ring(8).percentiles_us() == {"p50": 0.0, "p99": 0.0, "p99.9": 0.0, "max": 0.0}


def test_status_board_publishes_read_only_and_rate_limits() -> None:
    b = StatusBoard(interval_ns=100 * MS, min_gap_ns=20 * MS)
    assert b.due(0)
    b.publish({"steps": 1}, 0)
    with pytest.raises(TypeError):
        b.latest["steps"] = 2  # type: ignore[index]
    assert not b.due(10 * MS)
    b.dirty = True
    assert not b.due(10 * MS) and b.due(20 * MS)  # a control event: sooner, but not more than 50/s
    b.publish({"steps": 2}, 20 * MS)
    assert not b.due(119 * MS) and b.due(120 * MS)
    for _ in range(100):
        b.request_reply(("127.0.0.1", 1))
    b.request_reply(None)
    assert b.due(40 * MS)
    assert b.take_replies() == [("127.0.0.1", 1), None] and b.take_replies() == []


def test_status_follows_the_engine_in_slack_time_on_a_manual_clock() -> None:
    clock = ManualClock(bpm=125)
    sink = FakeSink(now=clock.time)
    eng = Engine(script_policy(default=REST), sink, clock, EngineConfig(lead_ms=5))  # type: ignore[arg-type]
    first = eng.published_status()
    assert first["policy"] == "script" and first["running"] is False
    clock.start(at_ns=1_000 * MS)
    eng.run_until(1_000 * MS + 20 * 120 * MS)
    snap = eng.published_status()
    assert snap is not first and snap["running"] is True
    steps = snap["steps"]
    assert isinstance(steps, int) and 19 <= steps <= 21  # at most one status interval (100 ms) behind
    assert snap["grid_t0_ns"] == str(1_000 * MS) and snap["step_ns"] == pytest.approx(120 * MS)
    eng.submit(ControlEvent(clock.time(), Control.MUTE, 1))
    eng.run_until(clock.time() + 25 * MS)  # a control event is published at the next slack
    assert eng.published_status()["muted"] is True
    assert eng.status()["muted"] is True  # no engine thread: built fresh


@pytest.mark.timeout(30)
def test_other_threads_only_read_the_published_snapshot() -> None:
    sink = FakeSink(now=time.perf_counter_ns)
    clock = InternalClock(bpm=240, preroll_ms=20)
    pol = OnnxPolicy.from_bytes(tiny_onnx_bytes(window=8), name="echo")
    eng = Engine(pol, sink, clock, EngineConfig(lead_ms=3, status_interval_ms=10))
    builders: set[str] = set()
    build = eng._build_status

    def spy() -> dict[str, object]:
        builders.add(threading.current_thread().name)
        return build()

    eng._build_status = spy  # type: ignore[method-assign]
    eng.start()
    eng.submit(ControlEvent(time.perf_counter_ns(), Control.START))
    errors: list[BaseException] = []
    seen: list[Any] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                st = eng.status()
                st["steps"] = -1  # a copy: the published snapshot is untouched
                seen.append(eng.published_status()["steps"])
        except BaseException as e:
            errors.append(e)

    readers = [threading.Thread(target=reader, name=f"reader-{i}") for i in range(2)]
    for r in readers:
        r.start()
    try:
        for i in range(12):
            eng.submit(NoteEvent(time.perf_counter_ns(), 50 + i, 100))
            time.sleep(0.03)
            eng.submit(NoteEvent(time.perf_counter_ns(), 50 + i, 0))
    finally:
        stop.set()
        for r in readers:
            r.join()
        eng.stop()
    assert not errors
    assert builders <= {"liveagent-engine"}, builders  # never built on a reader thread
    assert seen and min(seen) >= 0 and max(seen) > 0  # the readers saw the engine advance
    assert eng.status()["notes_in"] == 12  # stopped: built fresh, nothing missed


def _fifo_available() -> bool:
    result: list[bool] = []

    def probe() -> None:
        with realtime_thread(1) as ok:
            result.append(ok)

    t = threading.Thread(target=probe)
    t.start()
    t.join()
    return result[0]


@pytest.mark.timeout(30)
def test_the_loader_thread_runs_at_normal_scheduling() -> None:
    require(hasattr(os, "sched_getscheduler"), "no POSIX scheduling")
    require(_fifo_available(), "SCHED_FIFO not permitted here (needs CAP_SYS_NICE, root or an rtprio limit)")
    policies: list[int] = []

    def loader(name: str) -> Policy:  # a plain loader: it does nothing about priority itself
        policies.append(os.sched_getscheduler(0))
        return load_policy(name)

    sink = FakeSink(now=time.perf_counter_ns)
    eng = Engine(
        load_policy("rules"), sink, InternalClock(bpm=120), EngineConfig(lead_ms=3), policy_loader=loader
    )
    with realtime_thread(10):
        eng.start()
    try:
        eng.request_policy("rules")
        deadline = time.monotonic() + 10
        while not policies and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        eng.stop()
    assert policies == [os.SCHED_OTHER]
    assert os.sched_getscheduler(0) == os.SCHED_OTHER  # the caller's own scheduling is untouched


def test_normal_scheduling_leaves_a_normal_thread_alone() -> None:
    if hasattr(os, "sched_getscheduler"):
        before = os.sched_getscheduler(0)
        assert normal_scheduling() is (before in (os.SCHED_FIFO, os.SCHED_RR))
        assert os.sched_getscheduler(0) == (os.SCHED_OTHER if before != os.SCHED_OTHER else before)
