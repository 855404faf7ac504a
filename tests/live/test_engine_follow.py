"""Follow timing on a ManualClock: answers on the onset (after the chord grace), holds at the window, late
onsets amended into their own step, misses, a swap into follow timing, the MIDI clock, and chords sent note
by note. The follow window itself (its controls, its adaptation, what it catches under jitter) is in
test_engine_follow_window.py; the shared helpers in follow_helpers.py."""

from __future__ import annotations

import numpy as np

from liveagent.live.engine.clocks import ManualClock
from liveagent.live.engine.loop import Engine, EngineConfig
from liveagent.live.events import Control, ControlEvent, NoteEvent
from liveagent.music.tokens import HOLD, REST, onset
from tests.live.engine_helpers import FakeSink, script_policy
from tests.live.follow_helpers import (
    MS,
    PITCHES,
    T0,
    WMAX,
    Echo,
    G,
    P,
    assert_notes_paired,
    decision_time,
    due,
    make,
    melody,
    on_times,
    play,
)


def test_on_the_grid_every_onset_is_answered_at_once_and_holds_wait_the_window() -> None:
    clock, sink, eng, echo = make()
    clock.start(at_ns=T0)
    steps = list(range(4, 68, 4))
    play(eng, melody(steps, [0] * len(steps), PITCHES[: len(steps)]), due(70))
    c = eng.stats.counters
    assert c.answered == len(steps) and c.misses == 0 and c.late_amended == 0 and c.late_inputs == 0
    assert eng.follow.window_ns == 3 * MS  # never late: the minimum
    ons = on_times(sink)
    for k, p in zip(steps, PITCHES, strict=False):
        assert due(k) + G in ons[p]  # answered the chord grace after the onset's arrival, on the grid
    assert set(eng.stats.answer_ns.values().tolist()) == {G}
    warm = steps[7]  # the 8th onset: until it was measured the window is the maximum
    for k in range(70):
        wait = decision_time(echo, k) - due(k)
        hold = WMAX if k < warm else 3 * MS
        assert wait == (G if k in steps else hold), k  # a hold or rest waits exactly the window
    assert_notes_paired(eng, sink)


def test_ten_ms_late_every_onset_answered_and_a_later_one_is_amended_into_its_own_step() -> None:
    clock, sink, eng, echo = make()
    clock.start(at_ns=T0)
    steps = list(range(4, 68, 4))
    events = melody(steps, [10 * MS] * len(steps), PITCHES[: len(steps)])
    events += [(due(68) + 25 * MS, 80, 90), (due(71), 80, 0)]  # then one onset 25 ms late
    play(eng, events, due(74))
    c = eng.stats.counters
    assert c.answered == len(steps) and c.late_inputs == 0 and c.misses == 0
    ons = on_times(sink)
    for k, p in zip(steps, PITCHES, strict=False):
        assert due(k) + 10 * MS + G in ons[p]  # answered on arrival (+ the chord grace)
    # The window: the maximum until 8 onsets were measured, then p95 of the offsets + 2 ms; the onset 25 ms
    # late (below) widened it: p95 of 16 x 10 ms and one 25 ms is 10 + 0.2 x 15 = 13 ms, + 2.
    assert eng.follow.window_ns == 15 * MS and eng.follow.adaptive
    for k in range(steps[7] + 1, 68):
        if k not in steps:
            assert decision_time(echo, k) - due(k) == 12 * MS, k  # holds are not delayed beyond it
    # The onset 25 ms late came after step 68 was closed: folded into step 68, a HOLD at 69.
    assert c.late_amended == 1
    assert eng.view.performer_token(68) == onset(80) and eng.view.performer_token(69) == HOLD
    assert echo.calls[68][1][-1] == REST  # step 68 was decided without it
    assert echo.calls[69][1][-2:] == [onset(80), HOLD]  # what the policy heard at step 69: no phantom onset
    assert 80 not in ons  # never answered with a strike off its step
    st = eng.status()
    assert st["late_amended"] == 1 and st["follow_adaptive"] is True and st["follow_onsets"] == 17
    assert st["answer_p50_us"] == G / 1000 and st["follow_offset_p50_ms"] == 10.0
    assert st["follow_window_ms"] == 15.0 and st["follow_window_us"] == 15_000
    assert st["answered_pct"] == round(100 * 16 / 17, 1)  # 16 answered, one amended
    assert_notes_paired(eng, sink)


def test_jittered_performer_answered_on_arrival_or_amended_never_restruck() -> None:
    rng = np.random.default_rng(7)
    steps = list(range(4, 4 + 4 * 48, 4))
    offsets = [int(x) for x in np.clip(rng.normal(0.0, 15.0, len(steps)), -55, 55) * MS]
    pitches = [PITCHES[i % 8] + 12 * (i % 3) for i in range(len(steps))]  # a new pitch at every onset
    clock, sink, eng, _echo = make()
    clock.start(at_ns=T0)
    windows: dict[int, int] = {}
    for k, off, p in zip(steps, offsets, pitches, strict=True):
        windows[k] = eng.follow.window_ns  # the window in force when this onset is awaited
        play(eng, [(due(k) + off, p, 90), (due(k + 3) + off, p, 0)], due(k + 3) + off)
    eng.run_until(due(steps[-1] + 6))
    c = eng.stats.counters
    amended = 0
    for i, (k, off, p) in enumerate(zip(steps, offsets, pitches, strict=True)):
        mine = [t for t in on_times(sink).get(p, []) if due(k) - P // 2 <= t < due(k + 4) - P // 2]
        if off >= windows[k]:  # after its window: amended into step k, no note for it at all
            amended += 1
            assert mine == [], (i, off)
            assert eng.view.performer_token(k) == onset(p) and eng.view.performer_token(k + 1) == HOLD
        elif off + G < -WMAX:  # very early: answered at T_k - the maximum window
            assert mine == [due(k) - WMAX], (i, off)
        elif off + G <= windows[k]:
            assert mine == [due(k) + off + G], (i, off)  # answered on arrival + the chord grace
        else:  # just inside the window: the grace is cut at its close + half the 5 ms budget
            assert len(mine) == 1 and due(k) + off < mine[0] <= due(k) + off + G, (i, off)
    assert amended == c.late_amended and 0 < amended < len(steps) // 4
    assert c.answered == len(steps) - amended and c.misses == 0
    # The window tracks p95 of the offsets it could catch (positive, at most 50 ms) among the last 32
    # onsets, + 2 ms, clamped to 3..50 ms.
    last = np.asarray(offsets[-32:], dtype=np.float64)
    pos = last[(last > 0) & (last <= WMAX)]
    expect = min(WMAX, max(3 * MS, round(float(np.percentile(pos, 95))) + 2 * MS))
    assert abs(eng.follow.window_ns - expect) <= 1 and 3 * MS <= eng.follow.window_ns <= WMAX
    assert eng.follow.window_ns > 10 * MS  # sd 15 ms: well above the minimum
    assert_notes_paired(eng, sink)


def test_early_player_is_answered_before_the_grid_but_not_before_the_earliest_moment() -> None:
    clock, sink, eng, echo = make()
    clock.start(at_ns=T0)
    steps = list(range(4, 44, 4))
    offs = [-20 * MS] * len(steps)
    offs[2], offs[9] = -55 * MS, -2 * MS  # (still nearest step 12: a step is 120 ms)
    play(eng, melody(steps, offs, PITCHES[: len(steps)]), due(48))
    ons = on_times(sink)
    for k, off, p in zip(steps, offs, PITCHES, strict=False):
        if k == 12:
            assert ons[p] == [due(12) - WMAX]  # 55 ms early: held back to T_k - follow_window_max_ms
        else:
            assert due(k) + off + G in ons[p], k
    assert decision_time(echo, 11) == due(11) + WMAX < decision_time(echo, 12)  # step 11 came first
    assert sorted(eng.stats.answer_ns.values().tolist()) == [G] * 9 + [5 * MS]
    assert eng.follow.window_ns == 3 * MS and eng.stats.counters.late_amended == 0  # never late
    assert decision_time(echo, 43) == due(43) + 3 * MS
    assert eng.stats.lateness_ns.values().min() == -WMAX  # lateness stays relative to the grid
    # Beats stay on the grid although the steps that open them were played early.
    beats = [int(c[1]) for c in sink.of("beat")]  # type: ignore[call-overload]
    assert beats[:12] == [due(4 * b) for b in range(12)]
    assert_notes_paired(eng, sink)


def test_fast_tempo_keeps_the_steps_in_order_and_the_window_within_half_a_step() -> None:
    clock = ManualClock(bpm=400)  # 37.5 ms steps
    clock, sink, eng, echo = make(clock, follow_window_ms=30.0)
    p = clock.period_ns()
    clock.start(at_ns=T0)
    events = []
    for i, k in enumerate(range(2, 40, 2)):
        t = T0 + round(k * p) - 17 * MS  # early: inside step k, before step k-1's (capped) window closed
        events += [(t, 60 + i % 12, 90), (t + round(p), 60 + i % 12, 0)]
    play(eng, events, T0 + round(42 * p))
    times = [t for t, _ in echo.calls]
    assert times == sorted(times) and len(times) == 42  # steps 0..41
    for k in range(1, 40, 2):  # performer holds: decided when the window, capped to half a step, closed
        assert times[k] - (T0 + round(k * p)) == round(p * 0.5), k
    assert eng.stats.counters.answered == 19 and eng.stats.counters.misses == 0
    assert_notes_paired(eng, sink)


def test_onsets_later_than_the_maximum_window_are_all_amended_and_do_not_stretch_the_window() -> None:
    clock, sink, eng, echo = make()
    clock.start(at_ns=T0)
    steps = list(range(4, 52, 4))
    play(eng, melody(steps, [55 * MS] * len(steps), PITCHES[: len(steps)]), due(54))
    c = eng.stats.counters
    # No window up to the 50 ms maximum would catch an onset 55 ms late: holds do not wait for them.
    assert eng.follow.window_ns == 3 * MS
    assert decision_time(echo, 51) == due(51) + 3 * MS
    assert c.late_amended == len(steps) and c.answered == 0 and c.late_inputs == 0
    assert eng.status()["answered_pct"] == 0.0
    assert sink.of("on") == []  # the echo heard every onset on its own step, after it: nothing re-struck
    for k in steps:
        assert eng.view.performer_token(k) >= onset(0) and eng.view.performer_token(k + 1) == HOLD
        assert echo.calls[k + 1][1][-2:] == [eng.view.performer_token(k), HOLD]
    assert_notes_paired(eng, sink)


def test_late_onset_more_than_a_step_behind_goes_to_the_next_open_step() -> None:
    clock, _sink, eng, echo = make()
    clock.start(at_ns=T0)
    eng.run_until(due(6) + 55 * MS)  # steps up to 6 decided (a 50 ms window: nothing measured yet)
    eng.submit(NoteEvent(due(4) + 10 * MS, 60, 90))  # stamped in step 4, handled only now (stalled input)
    eng.run_until(due(8))
    c = eng.stats.counters
    assert c.late_inputs == 1 and c.late_amended == 0
    assert eng.view.performer_token(7) == onset(60)  # moved to the next open step, as before
    assert echo.calls[7][0] == due(7) + WMAX  # and it does not time that step: it arrived for step 4
    assert eng.stats.counters.answered == 0


def test_wakeup_after_window_and_tolerance_is_a_miss_with_fallback() -> None:
    clock, sink, eng, echo = make()
    clock.start(at_ns=T0)
    play(eng, [(due(2), 60, 90)], due(3))
    assert on_times(sink) == {60: [due(2) + G]}
    clock.time.set(due(3) + WMAX + 4 * MS)  # woke up 4 ms after step 3's window closed: still in time
    eng.step_once()
    assert eng.stats.counters.misses == 0 and eng.stats.counters.decisions == 4
    eng.run_until(due(4))
    clock.time.set(due(4) + WMAX + 6 * MS)  # stalled past T_4 + the (50 ms) window + the 5 ms budget
    eng.step_once()
    c = eng.stats.counters
    assert c.misses == 1 and c.decisions == 4  # steps 0..3 decided, step 4 missed
    assert 60 in sink.sounding  # the fallback while a note sounds is HOLD
    eng.run_until(due(6))
    assert c.misses == 1 and echo.calls[4][0] == due(5) + WMAX  # step 5: on time again (warm-up window)
    assert_notes_paired(eng, sink)


def test_slow_decision_past_the_deadline_is_a_miss() -> None:
    clock = ManualClock(bpm=125)
    calls = {"n": 0}

    def slow(n: int) -> None:
        calls["n"] = n
        if n == 3:
            clock.time.advance(40 * MS)

    pol = script_policy({2: onset(50), 3: onset(55)}, default=HOLD, mode="follow", on_call=slow)
    sink = FakeSink(now=clock.time)
    # Nothing measured: a 50 ms window. No performer: the silence gate is off (it would rest the script).
    eng = Engine(pol, sink, clock, EngineConfig(warmup_calls=0, waits_for_performer=False))
    clock.start(at_ns=T0)
    eng.run_until(due(5))
    assert sink.of("on") == [("on", due(2) + WMAX, 50, 80)]  # 55 never played late
    assert eng.stats.counters.misses == 1 and eng.stats.counters.decisions == 4  # steps 0, 1, 2, 4


def test_swap_at_the_bar_line_into_a_react_policy_switches_to_follow_timing() -> None:
    clock = ManualClock(bpm=125)
    old = script_policy(default=REST, name="old")
    echo = Echo(clock.time, mode="react")
    sink = FakeSink(now=clock.time)
    eng = Engine(old, sink, clock, EngineConfig(warmup_calls=0, load_in_thread=False, lead_ms=5))
    clock.start(at_ns=T0)
    eng.run_until(due(5))
    eng.swap_policy(echo.policy)
    play(eng, [(due(16) + 4 * MS, 67, 90), (due(18), 67, 0)], due(20))
    assert eng.policy is echo.policy and eng.status()["timing"] == "follow"
    assert echo.calls[0][0] == due(16) + 4 * MS + G  # the new policy's first step: decided on the onset
    assert [c[1:3] for c in sink.of("on")] == [(due(16) + 4 * MS + G, 67)]
    assert echo.calls[1][0] == due(17) + WMAX  # a hold: the window (the maximum, 1 onset measured)
    assert eng.stats.counters.answered == 1 and eng.stats.counters.late_amended == 0
    assert_notes_paired(eng, sink)


def test_midi_clock_follow_waits_for_the_tick_then_the_window() -> None:
    from liveagent.live.engine.clocks import ManualTime
    from liveagent.live.engine.midi_clock import MidiClockFollower

    t = ManualTime(0)
    clock = MidiClockFollower(now=t)
    echo = Echo(t, "follow")
    sink = FakeSink(now=t)
    eng = Engine(echo.policy, sink, clock, EngineConfig(warmup_calls=0, follow_window_ms=5.0))
    tick = round(60e9 / (120 * 24))  # 120 BPM: a 16th = 6 ticks = 125 ms
    eng.submit(ControlEvent(0, Control.START))
    eng.step_once()
    tick_at = [1 * MS + i * tick for i in range(6 * 6)]
    onset_at = tick_at[12] - 4 * MS  # step 2's onset, 4 ms before its tick
    for i, ti in enumerate(tick_at):
        if i == 12:
            eng.run_until(onset_at)
            eng.submit(NoteEvent(onset_at, 64, 90))
        eng.run_until(ti)
        eng.submit(ControlEvent(ti, Control.CLOCK_TICK))
        eng.step_once()
    times = [c[0] for c in echo.calls]
    assert times[0] == tick_at[0] + 5 * MS and times[1] == tick_at[6] + 5 * MS  # tick + window
    assert times[2] == onset_at + G  # the onset decided step 2 before its tick
    assert [c[1:3] for c in sink.of("on")] == [(onset_at + G, 64)]
    assert [int(c[1]) for c in sink.of("beat")] == [tick_at[0], tick_at[24]]  # type: ignore[call-overload]
    assert eng.stats.counters.misses == 0 and eng.stats.counters.answered == 1


CHORD = (60, 64, 67)


def _chord_run(order: tuple[int, ...], gap_ns: int, **cfg: object) -> tuple[list[tuple[object, ...]], Engine]:
    """A chord every 4th step, its note-ons sent one per message ``gap_ns`` apart in ``order``, 2 ms late."""
    clock, sink, eng, _echo = make(**cfg)
    clock.start(at_ns=T0)
    events = []
    for k in range(4, 40, 4):
        for i, p in enumerate(order):
            events += [(due(k) + 2 * MS + i * gap_ns, p, 90), (due(k + 2) + i * gap_ns, p, 0)]
    play(eng, events, due(42))
    return [c[1:3] for c in sink.of("on")], eng


def test_a_chord_sent_note_by_note_is_heard_whole_whatever_the_arrival_order() -> None:
    """Review M2: a keyboard or a patch sends a chord as one note-on per message, a few hundred us apart.
    With the chord grace the policy hears the whole chord (its skyline: the top note) whatever the order;
    without it (``follow_chord_ms=0``) it heard the first note only, so the answer depended on the order."""
    gap = 700_000  # 0.7 ms between the messages of one chord
    runs = {order: _chord_run(order, gap) for order in ((60, 64, 67), (67, 64, 60), (64, 60, 67))}
    played = {order: notes for order, (notes, _eng) in runs.items()}
    first = next(iter(played.values()))
    assert all(notes == first for notes in played.values()), played  # reproducible
    assert [p for _, p in first] == [67] * 9  # the echo answered the chord's top note
    # answered the grace after the chord's LAST note (a spread chord is heard whole)
    assert [t for t, _ in first] == [due(k) + 2 * MS + 2 * gap + G for k in range(4, 40, 4)]
    for _notes, eng in runs.values():
        c = eng.stats.counters
        assert c.answered == 9 and c.late_amended == 0 and eng.status()["answered_pct"] == 100.0
        assert set(eng.stats.answer_ns.values().tolist()) == {2 * gap + G}  # from the first note
        assert_notes_paired(eng, eng.sink)  # type: ignore[arg-type]
    # The grace off: the first note decides, the rest is amended; the answer depends on the order.
    off = {order: _chord_run(order, gap, follow_chord_ms=0.0) for order in ((60, 64, 67), (67, 64, 60))}
    assert [p for _, p in off[(60, 64, 67)][0]] == [60] * 9 and [p for _, p in off[(67, 64, 60)][0]] == [
        67
    ] * 9
    assert off[(60, 64, 67)][1].stats.counters.late_amended == 18
    assert off[(60, 64, 67)][1].status()["answered_pct"] == round(100 * 9 / 27, 1)


def test_chord_grace_runs_past_the_window_close_but_never_past_half_the_budget() -> None:
    """A chord whose first note arrives just before the window closes is still heard whole (the grace
    may run past the close, from the chord's latest note), but the decision never waits beyond the close +
    half the 5 ms budget."""
    clock, sink, eng, echo = make(follow_window_ms=10.0)
    clock.start(at_ns=T0)
    play(
        eng, [(due(4) + 9 * MS, 60, 90), (due(4) + 11 * MS, 67, 90), (due(6), 60, 0), (due(6), 67, 0)], due(5)
    )
    # the grace runs from the chord's last note (11 ms), capped at the close + half the budget (12.5 ms)
    assert decision_time(echo, 4) == due(4) + 12_500_000 and echo.calls[4][1][-1] == onset(67)
    play(eng, [(due(8) + 9_800_000, 62, 90), (due(8) + 13 * MS, 65, 90), (due(9), 62, 0)], due(12))
    assert decision_time(echo, 8) == due(8) + 12_500_000  # 9.8 + 3 capped at 10 + 2.5 ms
    assert echo.calls[8][1][-1] == onset(62)  # 65 came after the decision: amended
    assert eng.view.performer_token(8) == onset(65) and eng.stats.counters.late_amended == 1
    assert eng.stats.counters.misses == 0 and eng.stats.counters.answered == 2
    assert_notes_paired(eng, sink)


def test_a_chord_spread_wider_than_the_grace_is_heard_whole() -> None:
    """A musician's review: three keys 2.7 ms apart (5.4 ms from first to last), melody on top. With the
    grace from the first note the policy heard the middle note; from the latest note it hears the top.
    The grace still stops at the window's close + half the budget: with a solo engine's 5 ms budget and
    the window adapted to this on-grid player (4 ms), a chord spread over more than ~4.5 ms loses its
    last key; a band's budget (5 ms per voice, 15 ms) is what this run gives it."""
    notes, eng = _chord_run((60, 64, 67), 2_700_000, follow_budget_ms=15.0)
    assert [p for _, p in notes] == [67] * 9 and eng.stats.counters.late_amended == 0
    assert_notes_paired(eng, eng.sink)  # type: ignore[arg-type]
