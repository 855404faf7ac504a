"""``start_on_note`` (``serve --start-on-note``): a start arms the transport; the performer's first note-on
starts it, step 0 (the downbeat) at that note's time, so the agent plays on the performer's phase.

On a ManualClock with the follow-mode echo policy of follow_helpers (it plays back what it hears)."""

from __future__ import annotations

import math

import pytest

from liveagent.live.engine.clocks import ManualClock
from liveagent.live.engine.loop import Engine
from liveagent.live.engine.status import build_status
from liveagent.live.events import Control, ControlEvent, NoteEvent
from tests.live.engine_helpers import FakeSink
from tests.live.follow_helpers import MS, Echo, G, P, make, play

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


def test_a_continue_arms_and_resumes_on_the_next_beat_on_the_note() -> None:
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
    # stopped after step 6: the performer comes back in on the next beat, step 8 (not mid-beat step 7)
    assert clock.running and clock.start_step == 8 and clock.due(8) == t2
    assert (t2 + G, 72) in [c[1:3] for c in sink.of("on")]


def test_without_it_a_start_starts_the_clock_at_once() -> None:
    clock, _sink, eng, _echo = make()
    eng.submit(ControlEvent(0, Control.START))
    eng.run_until(1_000 * MS)
    assert clock.running and build_status(eng)["armed"] == 0


def performer_at(bpm: float, beats: int, t0: int = T_NOTE) -> list[tuple[int, int, int]]:
    """Quarter notes at ``bpm`` (the performer's own tempo), each held 3/4 of a beat."""
    beat = round(60e9 / bpm)
    out = []
    for i in range(beats):
        out += [(t0 + i * beat, 60 + i % 12, 90), (t0 + i * beat + beat * 3 // 4, 60 + i % 12, 0)]
    return out


def drift_run(follow_tempo: bool, bpm: float) -> tuple[ManualClock, Engine]:
    clock, _sink, eng, _echo = make(start_on_note=True, follow_tempo=follow_tempo)
    eng.submit(ControlEvent(0, Control.START))
    eng.run_until(1_000 * MS)
    play(eng, performer_at(bpm, 32), T_NOTE + 33 * round(60e9 / bpm))
    return clock, eng


def test_follow_tempo_keeps_a_performer_3_percent_fast_on_the_beat() -> None:
    clock, eng = drift_run(True, 128.75)  # the engine's --bpm is 125: 3 % faster
    c = eng.stats.counters
    assert c.late_amended == 0 and c.answered == 32 and c.misses == 0, c
    assert abs(clock.bpm - 128.75) < 0.5, clock.bpm
    # the same performer on a grid that does not follow: a sixteenth away after ~8 beats, answers go late
    clock, eng = drift_run(False, 128.75)
    c = eng.stats.counters
    assert c.answered <= 28 and c.late_amended >= 3 and clock.bpm == 125.0, c


def test_follow_onset_is_a_damped_loop_bounded_around_the_tempo_set() -> None:
    clock = ManualClock(bpm=100)
    clock.start(at_ns=0)
    beat = 600 * MS / 1.03
    errs = []
    for n in range(32):
        t = round(n * beat)
        j = math.floor(clock.step_at(t) + 0.5)
        errs.append(abs(t - clock.due(j)))
        clock.follow_onset(t, j, phase_gain=0.3, tempo_gain=0.3)
    assert max(errs) < 40 * MS and max(errs[16:]) < 5 * MS, [e / MS for e in errs]
    t, bpms = round(31 * beat), []
    for n in range(120):  # a long ritardando, beats 0.4 % longer each: followed down to -10 %, no further
        t += round(600 * MS * 1.004**n)
        clock.follow_onset(t, math.floor(clock.step_at(t) + 0.5), phase_gain=0.3, tempo_gain=0.3)
        bpms.append(clock.bpm)
    assert min(bpms) == pytest.approx(100 / 1.1) and bpms[30] < 95, bpms  # the period at +10 %
    clock.set_tempo(140.0)  # a tempo set by hand waits for its bar line; onsets do not move the grid before
    pending = clock.due(10_000)
    clock.follow_onset(
        clock.now() + 50 * MS, math.floor(clock.step_at(clock.now())), phase_gain=1, tempo_gain=1
    )
    assert clock.due(10_000) == pending


def test_a_pickup_a_sixteenth_before_the_downbeat_moves_the_beat_to_the_performers() -> None:
    """The first note (a pickup) starts step 0; the performer's beats then fall on every step 1 (the "e"):
    after four of them the grid moves a step later, and from then on their beats are serve's beats."""
    clock, _sink, eng, _echo = make(start_on_note=True, follow_tempo=True)
    eng.submit(ControlEvent(0, Control.START))
    eng.run_until(1_000 * MS)
    beat = 4 * P
    notes = [(T_NOTE, 71, 90), (T_NOTE + P // 2, 71, 0)]
    onsets = [T_NOTE + P + i * beat for i in range(16)]
    for t in onsets:
        notes += [(t, 72, 90), (t + beat * 3 // 4, 72, 0)]
    play(eng, notes, onsets[-1] + beat)
    positions = [round(clock.step_at(t)) % 4 for t in onsets[8:]]
    assert positions == [0] * 8, positions
    st = build_status(eng)
    assert st["lead_beat_moves"] == 1 and st["misses"] == 0 and st["skipped"] == 0, st
    assert eng.stats.counters.answered == 17, eng.stats.counters


def test_an_eighth_note_line_never_moves_the_beat() -> None:
    clock, _sink, eng, _echo = make(start_on_note=True, follow_tempo=True)
    eng.submit(ControlEvent(0, Control.START))
    eng.run_until(1_000 * MS)
    onsets = [T_NOTE + i * 2 * P for i in range(32)]
    play(eng, [(t, 60 + i % 5, 90) for i, t in enumerate(onsets)], onsets[-1] + 4 * P)
    assert build_status(eng)["lead_beat_moves"] == 0
    assert [round(clock.step_at(t)) % 4 for t in onsets[-4:]] == [0, 2, 0, 2]
