"""The silence gate on a ManualClock: the agent rests before the performer's first note and once the
performer has been silent for a bar, until they play again (``EngineConfig.waits_for_performer``), in
anticipate and follow timing, exactly as `liveagent eval` applies it (``count_silence``,
``silence_gate``)."""

from __future__ import annotations

import numpy as np
import pytest

from liveagent.live.engine.clocks import ManualClock
from liveagent.live.engine.loop import Engine, EngineConfig
from liveagent.live.events import Control, ControlEvent, NoteEvent
from liveagent.music.features import hears_current_step
from liveagent.music.sampling import count_silence, silence_gate
from liveagent.music.tokens import REST, onset
from tests.live.engine_helpers import FakeSink, script_policy

MS = 1_000_000
P = 120 * MS  # one 16th at 125 BPM
T0 = 1_000 * MS
BAR = 16


def due(k: int) -> int:
    return T0 + k * P


def make(mode: str, **cfg: object) -> tuple[ManualClock, FakeSink, Engine]:
    """A policy that strikes a note on every step, whatever it hears (so every note is the gate's doing)."""
    clock = ManualClock(bpm=125)
    sink = FakeSink(now=clock.time)
    pol = script_policy(default=onset(43), mode=mode)
    cfg.setdefault("warmup_calls", 0)
    cfg.setdefault("follow_window_ms", 10.0)  # follow timing: a fixed window, so the schedule is plain
    eng = Engine(pol, sink, clock, EngineConfig(**cfg))  # type: ignore[arg-type]
    return clock, sink, eng


def play(eng: Engine, events: list[tuple[int, int, int]], end: int) -> None:
    for t, pitch, vel in sorted(events):
        eng.run_until(t)
        eng.submit(NoteEvent(t, pitch, vel, "osc"))
    eng.run_until(end)


def phrase(first: int, last: int, *, late_ns: int = 0) -> list[tuple[int, int, int]]:
    """A note every beat from step ``first`` to ``last`` (inclusive), each held three steps, ``late_ns``
    after the grid: the performer's last sounding step is ``last + 2``."""
    out = []
    for i, k in enumerate(range(first, last + 1, 4)):
        p = 60 + 2 * (i % 5)
        out += [(due(k) + late_ns, p, 90), (due(k + 3) + late_ns - P // 3, p, 0)]
    return out


def agent_steps(sink: FakeSink) -> list[int]:
    """The steps of the agent's note-ons (emission time -> nearest step)."""
    return [round((int(c[1]) - T0) / P) for c in sink.of("on")]  # type: ignore[call-overload]


@pytest.mark.parametrize("mode", ["anticipate", "follow"])
def test_rests_until_the_performer_plays_stops_after_a_bar_of_silence_and_resumes_at_once(mode: str) -> None:
    clock, sink, eng = make(mode)
    hears = hears_current_step(mode)
    clock.start(at_ns=T0)
    eng.run_until(due(4 * BAR) - P // 2)  # four bars: the performer plays nothing
    assert sink.of("on") == [] and eng.stats.counters.decisions == 4 * BAR  # the policy ran, unheard
    st = eng.status()
    assert st["waiting"] is True and st["waits_for_performer"] is True
    assert st["performer_silent_steps"] == BAR + 4 * BAR - (0 if hears else 1)
    # The performer plays bars 4-5 (the last note sounds to step 64 + 28 + 2 = 94), then stops for 2 bars.
    first, last = 4 * BAR, 4 * BAR + 28
    play(eng, phrase(first, last), due(8 * BAR) - P // 2)
    steps = agent_steps(sink)
    # The first agent note: on the performer's first onset (follow) or on the next step (anticipate).
    assert steps[0] == (first if hears else first + 1)
    assert steps == list(range(steps[0], steps[-1] + 1))  # every step in between struck (the policy's choice)
    end = last + 2  # the performer's last sounding step
    # The gate closes when the performer has been silent for a bar: steps end+1 .. end+16 are REST.
    # follow hears step k before deciding it: the last note is at end+15; anticipate one step later.
    assert steps[-1] == end + BAR - (1 if hears else 0)
    assert steps[-1] <= end + BAR + 1  # within a bar + 1 step of the performer stopping
    assert sink.sounding == {}  # the gated step released the agent's note
    assert eng.status()["waiting"] is True
    # The performer plays again: the agent answers at once.
    again = 8 * BAR
    n = len(steps)
    play(eng, phrase(again, again), due(again + 3))
    assert agent_steps(sink)[n] == (again if hears else again + 1)
    assert eng.status()["waiting"] is False and eng.status()["performer_silent_steps"] < BAR
    eng.close()
    assert sink.sounding == {} and sink.double_on == 0 and sink.orphan_off == 0


@pytest.mark.parametrize("mode", ["anticipate", "follow"])
def test_the_gate_is_the_rule_liveagent_eval_applies(mode: str) -> None:
    """Step by step, the engine's tokens are what eval's rule (``count_silence`` over the performer's steps
    up to k-1 in anticipate, up to k in follow; ``silence_gate`` at a bar) makes of the policy's."""
    rng = np.random.default_rng(3)
    clock, _sink, eng = make(mode)
    clock.start(at_ns=T0)
    events: list[tuple[int, int, int]] = []
    k = 6
    while k < 300:  # phrases of notes separated by silences shorter and longer than a bar
        n = int(rng.integers(1, 6))
        events += phrase(k, k + 4 * (n - 1))
        k += 4 * n + int(rng.choice([2, 9, 13, 14, 15, 16, 17, 18, 30]))
    end = 320
    play(eng, events, due(end) - P // 2)
    perf = np.array([eng.view.performer_token(j) for j in range(end)], dtype=np.int64)
    agent = np.array([eng.view.agent_token(j) for j in range(end)], dtype=np.int64)
    run = np.full(1, BAR, dtype=np.int64)
    expect = np.empty(end, dtype=np.int64)
    for t in range(end):
        if hears_current_step(mode):
            count_silence(run, perf[t : t + 1])
        elif t > 0:
            count_silence(run, perf[t - 1 : t])
        expect[t] = silence_gate(run, np.array([onset(43)], dtype=np.int64), BAR)[0]
    assert (agent == expect).all(), np.flatnonzero(agent != expect)
    assert (agent == REST).any() and (agent != REST).any()
    assert eng.stats.counters.misses == 0
    eng.close()


def test_a_transport_restart_closes_the_gate_and_the_agent_can_lead_when_told() -> None:
    clock, sink, eng = make("anticipate")
    clock.start(at_ns=T0)
    play(eng, phrase(2, 10), due(14))
    assert sink.of("on")
    eng.submit(ControlEvent(due(14), Control.STOP))
    eng.run_until(due(16))
    n = len(sink.of("on"))
    eng.submit(ControlEvent(due(16), Control.START))  # a new session: closed until the performer plays
    eng.run_until(due(16) + 3 * BAR * P)
    assert len(sink.of("on")) == n and eng.status()["waiting"] is True
    eng.close()
    # waits_for_performer=False: the agent leads from the first step, through the performer's silence.
    clock, sink, eng = make("follow", waits_for_performer=False)
    clock.start(at_ns=T0)
    eng.run_until(due(2 * BAR) - P // 2)
    assert agent_steps(sink) == list(range(2 * BAR))
    st = eng.status()
    assert st["waiting"] is False and st["waits_for_performer"] is False
    assert st["performer_silent_steps"] == 3 * BAR  # still counted (a bar + the 32 steps heard)
    eng.close()


def test_a_late_onset_amended_into_its_step_opens_the_gate() -> None:
    """Follow timing: an onset that arrives after its step's window closed is folded into that step; the
    performer plays, so the next step may answer even if the note was released before it (staccato)."""
    clock, sink, eng = make("follow")  # a 10 ms window
    clock.start(at_ns=T0)
    j = 2 * BAR + 3
    # 40 ms late (after the 10 ms window), released 80 ms after the grid (quantized to step j+1: REST there)
    play(eng, [(due(j) + 40 * MS, 67, 90), (due(j) + 80 * MS, 67, 0)], due(j + 3))
    assert eng.stats.counters.late_amended == 1
    assert eng.view.performer_token(j) == onset(67) and eng.view.performer_token(j + 1) == REST
    assert agent_steps(sink) == [j + 1, j + 2]  # not step j (decided before the onset came), then at once
    eng.close()


def test_a_miss_while_the_gate_is_closed_releases_the_note() -> None:
    """The fallback of a missed step is REST, not HOLD, once the performer has been silent for a bar."""
    clock, sink, eng = make("anticipate", lead_ms=5.0)
    clock.start(at_ns=T0)
    play(eng, [(due(1), 60, 90), (due(2), 60, 0)], due(1 + BAR))  # the performer's note sounds at step 1
    assert 43 in sink.sounding  # struck at step 17 (the last step before the gate closes)
    clock.time.set(due(18) + 1 * MS)  # the engine wakes up after T_18: step 18 is a miss
    eng.step_once()
    assert eng.stats.counters.misses == 1 and sink.sounding == {}
    eng.close()
