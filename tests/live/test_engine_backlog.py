"""The engine thread under a backlog of queued controls: stop() is not queued behind it, and the grid keeps
going while it is worked off (a 40-port /panic flood once queued ~100,000 controls: SIGTERM took > 5 s)."""

from __future__ import annotations

import logging
import time

import pytest

from liveagent.live.engine.clocks import InternalClock
from liveagent.live.engine.loop import Engine, EngineConfig
from liveagent.live.engine.policy import OnnxPolicy
from liveagent.live.events import Control, ControlEvent
from tests.live.engine_helpers import FakeSink, tiny_onnx_bytes

log = logging.getLogger(__name__)


def _running_engine() -> tuple[Engine, FakeSink]:
    sink = FakeSink(now=time.perf_counter_ns)
    clock = InternalClock(bpm=240, preroll_ms=20)
    pol = OnnxPolicy.from_bytes(tiny_onnx_bytes(window=8), name="echo")
    eng = Engine(pol, sink, clock, EngineConfig(lead_ms=3, waits_for_performer=False))
    eng.start()
    eng.submit(ControlEvent(time.perf_counter_ns(), Control.START))
    time.sleep(0.3)
    return eng, sink


def _backlog(eng: Engine, n: int) -> None:
    t = time.perf_counter_ns()
    for i in range(n):
        eng.submit(ControlEvent(t, Control.TEMPERATURE, 0.5 + (i % 2) * 0.1))


@pytest.mark.timeout(60)
def test_stop_is_not_queued_behind_a_backlog() -> None:
    eng, sink = _running_engine()
    _backlog(eng, 400_000)
    t0 = time.perf_counter()
    eng.stop(timeout=10.0)
    took = time.perf_counter() - t0
    log.info("stop() behind 400,000 queued controls: %.3f s", took)
    assert not eng.is_alive()
    assert took < 1.0, f"stop() took {took:.2f} s behind a backlog of queued controls"
    assert sink.calls[-1][0] == "all_off"


@pytest.mark.timeout(60)
def test_the_grid_keeps_going_while_a_backlog_is_worked_off() -> None:
    eng, _ = _running_engine()
    try:
        _backlog(eng, 200_000)
        s0 = int(eng.status()["steps"])  # type: ignore[call-overload]
        time.sleep(0.5)
        s1 = int(eng.status()["steps"])  # type: ignore[call-overload]
        log.info("steps in 0.5 s at 240 BPM (8 due) behind a backlog: %d", s1 - s0)
        assert s1 - s0 >= 4, f"only {s1 - s0} steps in 0.5 s while 200,000 queued controls were handled"
    finally:
        eng.stop(timeout=30.0)
