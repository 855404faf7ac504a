"""``start_on_note`` (``serve --start-on-note``): a start arms the transport; the performer's first note-on
starts it, step 0 (the downbeat) at that note's time, so the agent plays on the performer's phase.

On a ManualClock with the follow-mode echo policy of test_engine_follow (it plays back what it hears)."""

from __future__ import annotations

from liveagent.live.engine.clocks import ManualClock
from liveagent.live.engine.loop import Engine
from liveagent.live.engine.status import build_status
from liveagent.live.events import Control, ControlEvent, NoteEvent
from tests.live.engine_helpers import FakeSink
from tests.live.test_engine_follow import MS, Echo, G, P, make

T_NOTE = 1_214 * MS
"""The performer's first note: at no particular phase of anything (the grid does not exist yet)."""


def armed_engine() -> tuple[ManualClock, FakeSink, Engine, Echo]:
    clock, sink, eng, echo = make(start_on_note=True)
    eng.submit(ControlEvent(0, Control.START))
    eng.run_until(1_000 * MS)
    return clock, sink, eng, echo


def test_a_start_arms_and_the_first_note_starts_step_0_at_its_time() -> None:
    clock, sink, eng, echo = armed_engine()
    assert not clock.running and build_status(eng)["armed"] == 1
    assert echo.calls == [] and sink.of("beat") == []
    eng.submit(NoteEvent(T_NOTE, 67, 90, "osc"))
    eng.run_until(T_NOTE + 4 * P)
    assert clock.running and clock.due(0) == T_NOTE
    assert build_status(eng)["armed"] == 0
    # step 0 heard the note and answered it after the chord grace, on the performer's own phase
    assert [c[1:3] for c in sink.of("on")] == [(T_NOTE + G, 67)]
    assert [c[1:] for c in sink.of("beat")][:2] == [(T_NOTE, 0, 0), (T_NOTE + 4 * P, 0, 1)]
    assert eng.stats.counters.late_amended == 0 and eng.stats.counters.misses == 0


def test_a_note_off_does_not_start_and_a_stop_disarms() -> None:
    clock, sink, eng, _echo = armed_engine()
    eng.submit(NoteEvent(1_100 * MS, 67, 0, "osc"))
    eng.run_until(1_150 * MS)
    assert not clock.running
    eng.submit(ControlEvent(1_150 * MS, Control.STOP))
    eng.run_until(1_200 * MS)
    eng.submit(NoteEvent(T_NOTE, 67, 90, "osc"))
    eng.run_until(T_NOTE + 4 * P)
    assert not clock.running and build_status(eng)["armed"] == 0
    assert sink.of("on") == []


def test_a_start_while_playing_stops_releases_and_rearms() -> None:
    clock, sink, eng, _echo = armed_engine()
    eng.submit(NoteEvent(T_NOTE, 67, 90, "osc"))
    eng.run_until(T_NOTE + 2 * P)
    assert sink.sounding
    t_restart = T_NOTE + 2 * P + 10 * MS
    eng.submit(ControlEvent(t_restart, Control.START))
    eng.run_until(t_restart + 1_000 * MS)
    assert not clock.running and not sink.sounding and build_status(eng)["armed"] == 1
    t2 = t_restart + 1_037 * MS
    eng.submit(NoteEvent(t2, 69, 90, "osc"))
    eng.run_until(t2 + P)
    assert clock.due(0) == t2 and (t2 + G, 69) in [c[1:3] for c in sink.of("on")]


def test_a_continue_arms_and_resumes_from_the_stopped_step_on_the_note() -> None:
    clock, sink, eng, _echo = armed_engine()
    eng.submit(NoteEvent(T_NOTE, 67, 90, "osc"))
    eng.run_until(T_NOTE + 6 * P + MS)
    eng.submit(ControlEvent(T_NOTE + 6 * P + MS, Control.STOP))
    eng.run_until(T_NOTE + 8 * P)
    assert not clock.running
    eng.submit(ControlEvent(T_NOTE + 8 * P, Control.CONTINUE))
    eng.run_until(T_NOTE + 20 * P)
    assert not clock.running and build_status(eng)["armed"] == 1
    t2 = T_NOTE + 20 * P + 33 * MS
    eng.submit(NoteEvent(t2, 72, 90, "osc"))
    eng.run_until(t2 + P)
    assert clock.running and clock.start_step == 7 and clock.due(7) == t2
    assert (t2 + G, 72) in [c[1:3] for c in sink.of("on")]


def test_without_it_a_start_starts_the_clock_at_once() -> None:
    clock, _sink, eng, _echo = make()
    eng.submit(ControlEvent(0, Control.START))
    eng.run_until(1_000 * MS)
    assert clock.running and build_status(eng)["armed"] == 0
