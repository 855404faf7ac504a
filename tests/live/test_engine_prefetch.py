"""The engine's prefetch (a warm-up run of the policy just before each decision) changes no token and no time.

The prefetch exists for latency only (``policy_view.PREFETCH_CALLS``: after the idle between steps the
decision's first policy call found the caches cold); these tests play the shipped policies with it on and off
through the same engine on a manual clock and compare every note and beat sent.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from liveagent.live.engine import policy_view
from liveagent.live.engine.clocks import ManualClock
from liveagent.live.engine.loop import Engine, EngineConfig
from liveagent.live.engine.policy import OnnxPolicy
from liveagent.live.engine.policy_view import PolicyView
from liveagent.live.events import NoteEvent
from liveagent.music.tokens import Grid
from tests.live.engine_helpers import FakeSink, script_policy

MS = 1_000_000


def _play(
    policy_name: str, calls: int, monkeypatch: pytest.MonkeyPatch, temperature: float = 0.0
) -> tuple[list[tuple[object, ...]], int]:
    """A melody a quarter note per beat, jittered (some onsets early, some late, one missing), at 240 BPM;
    returns the notes and beats sent and how many warm-up runs the policy did."""
    monkeypatch.setattr(policy_view, "PREFETCH_CALLS", calls)
    policy = OnnxPolicy.load(policy_name)
    warms = [0]
    warm = policy.warm

    def counting_warm() -> None:
        warms[0] += 1
        warm()

    monkeypatch.setattr(policy, "warm", counting_warm)
    clock = ManualClock(bpm=240)
    sink = FakeSink(now=clock.time)
    eng = Engine(policy, sink, clock, EngineConfig(warmup_calls=1, temperature=temperature, seed=3))
    clock.start(at_ns=1_000 * MS)
    rng = np.random.default_rng(5)
    melody = [67, 69, 71, 72, 74, 72, 71, 69, 67, 66, 67, 69, 71, 0, 69, 67]
    for i, p in enumerate(melody):
        t = clock.due(4 * i + 4) + int(rng.normal(4.0, 8.0) * MS)
        t_off = t + int(3 * clock.period_ns())
        eng.run_until(t)
        if p:
            eng.submit(NoteEvent(t, p, 90, "osc"))
        eng.run_until(t_off)
        if p:
            eng.submit(NoteEvent(t_off, p, 0, "osc"))
    eng.run_until(clock.due(4 * len(melody) + 8))
    assert eng.stats.counters.misses == 0
    eng.close()
    return [c for c in sink.calls if c[0] in ("on", "off", "beat")], warms[0]


@pytest.mark.parametrize("name", ["anticipate", "default"])
def test_prefetch_changes_no_note_and_no_time(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    off, warms_off = _play(name, 0, monkeypatch)
    on, warms_on = _play(name, 2, monkeypatch)
    assert warms_off == 0
    if name == "anticipate":
        assert warms_on >= 2 * 60  # runs before (nearly) every decision of the ~72 steps
    else:  # follow timing warms nothing: a warm run competed with a spread chord's later keys
        assert warms_on == 0
    assert sum(1 for c in on if c[0] == "on") >= 8  # the policy played: the comparison means something
    assert on == off


def test_prefetch_with_sampling_consumes_no_random_draw(monkeypatch: pytest.MonkeyPatch) -> None:
    """The warm-up also warms the sampler's greedy pick (``EngineState._warm_sampler``); with a temperature
    it must not draw, or the seeded line would change with the warm-up on."""
    off, _ = _play("anticipate", 0, monkeypatch, temperature=0.8)
    on, warms_on = _play("anticipate", 2, monkeypatch, temperature=0.8)
    assert warms_on >= 2 * 60
    assert sum(1 for c in on if c[0] == "on") >= 8
    assert on == off


def test_no_prefetch_while_other_engines_run_in_the_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(policy_view, "_running", [2])  # `liveagent bench` agents: CPU is the limit there
    _, warms = _play("anticipate", 2, monkeypatch)
    assert warms == 0


def test_prefetch_runs_fill_the_time_before_the_decision_and_never_start_one_that_would_overrun() -> None:
    """The runs after the first go on only while one more (half as long as the last) ends by the decision."""
    durations = [900, 450, 300, 300, 300]  # us: the first run after an idle is the slow one
    for until_us, runs in ((2000, 4), (1300, 1), (1500, 2), (1600, 3), (5000, 4)):
        now = [0]
        calls = iter(durations)
        policy = script_policy()

        def warm(calls: Iterator[int] = calls, now: list[int] = now) -> None:
            now[0] += next(calls) * 1000

        policy.warm = warm  # type: ignore[attr-defined]
        view = PolicyView(policy, Grid(), EngineConfig())
        assert view.prefetch(4, until_us * 1000, lambda now=now: now[0]) == runs, until_us
        assert now[0] <= until_us * 1000 + 300_000  # at most a short run past it


def test_follow_timing_does_not_warm_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """In follow timing an onset (or the rest of a chord in its grace) may come at any moment: the engine
    waits on its queue, never in warm runs. In the full test suite, warm runs before follow decisions left
    6-12 of 42 keys of spread chords amended late (a band voicing chords under their middle note)."""
    monkeypatch.setattr(policy_view, "PREFETCH_CALLS", 4)
    policy = OnnxPolicy.load("default")
    clock = ManualClock(bpm=240)
    sink = FakeSink(now=clock.time)
    eng = Engine(policy, sink, clock, EngineConfig(warmup_calls=1, follow_window_ms=10.0))
    warms: list[int] = []
    warm = policy.warm

    def counting_warm() -> None:
        warms.append(clock.time())
        warm()

    monkeypatch.setattr(policy, "warm", counting_warm)
    clock.start(at_ns=1_000 * MS)
    eng.run_until(clock.due(4) + 1 * MS)
    eng.submit(NoteEvent(clock.due(4) + 1 * MS, 67, 90, "osc"))
    eng.run_until(clock.due(16))
    assert warms == [] and eng.stats.counters.answered == 1
    eng.close()
