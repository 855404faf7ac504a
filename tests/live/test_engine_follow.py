"""Follow timing on a ManualClock: answers on the onset (after the chord grace), holds at the window, late
onsets amended into their own step, the adaptive window, misses, beats on the grid, the controls that fix
or free the window, chords sent note by note, and what the window catches under jitter."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from liveagent.live.engine.clocks import ManualClock
from liveagent.live.engine.follow import FollowWindow
from liveagent.live.engine.loop import Engine, EngineConfig
from liveagent.live.engine.policy import CallablePolicy, PolicyMeta
from liveagent.live.events import Control, ControlEvent, NoteEvent
from liveagent.live.io.osc import MessageError, decode
from liveagent.music.features import ObservationBuffers
from liveagent.music.tokens import HOLD, REST, VOCAB_SIZE, onset
from tests.live.engine_helpers import FakeSink, script_policy

MS = 1_000_000
P = 120 * MS  # one 16th at 125 BPM
T0 = 1_000 * MS
G = 3 * MS
"""The chord grace (``follow_chord_ms``, default 3 ms): an onset is answered this long after it arrives."""
WMAX = 50 * MS
"""The adaptive window's maximum (``follow_window_max_ms``, default 50 ms): the window until 8 onsets are
measured, and the earliest an early onset is answered (T_k - this)."""


def due(k: int) -> int:
    return T0 + k * P


class Echo:
    """A follow-mode policy that plays the performer's current step back (ONSET -> the same onset, HOLD ->
    HOLD, REST -> REST) and records, per call, the time and the performer window it saw."""

    def __init__(self, now: Callable[[], int], mode: str = "follow", window: int = 4) -> None:
        self.now = now
        self.calls: list[tuple[int, list[int]]] = []
        self._out = np.zeros((1, VOCAB_SIZE), dtype=np.float32)
        meta = PolicyMeta(window=window, mode=mode)  # type: ignore[arg-type]
        self.policy = CallablePolicy(self._fn, meta, "echo")

    def _fn(self, obs: ObservationBuffers) -> np.ndarray:
        self.calls.append((self.now(), obs.performer[0].tolist()))
        self._out.fill(0.0)
        self._out[0, int(obs.performer[0, -1])] = 1.0
        return self._out


def make(
    clock: ManualClock | None = None, mode: str = "follow", **cfg: object
) -> tuple[ManualClock, FakeSink, Engine, Echo]:
    clock = clock or ManualClock(bpm=125)
    echo = Echo(clock.time, mode)
    sink = FakeSink(now=clock.time)
    cfg.setdefault("warmup_calls", 0)
    eng = Engine(echo.policy, sink, clock, EngineConfig(**cfg))  # type: ignore[arg-type]
    return clock, sink, eng, echo


def play(eng: Engine, events: list[tuple[int, int, int]], end: int) -> None:
    """Submit ``(t_ns, pitch, velocity)`` events at their times (the engine runs in between), then run on."""
    for t, pitch, vel in sorted(events):
        eng.run_until(t)
        eng.submit(NoteEvent(t, pitch, vel, "osc"))
    eng.run_until(end)


def melody(
    steps: list[int], offsets_ns: list[int], pitches: list[int], hold: int = 3
) -> list[tuple[int, int, int]]:
    """Note-on at ``due(k) + offset`` for each step, note-off ``hold`` steps later (same offset)."""
    out = []
    for k, off, p in zip(steps, offsets_ns, pitches, strict=True):
        out += [(due(k) + off, p, 90), (due(k + hold) + off, p, 0)]
    return out


def on_times(sink: FakeSink) -> dict[int, list[int]]:
    """Agent note-on times by pitch."""
    out: dict[int, list[int]] = {}
    for c in sink.of("on"):
        out.setdefault(int(c[2]), []).append(int(c[1]))  # type: ignore[call-overload]
    return out


def decision_time(echo: Echo, k: int) -> int:
    """When step k was decided (the echo policy is called once per decided step, from step 0)."""
    return echo.calls[k][0]


def assert_notes_paired(eng: Engine, sink: FakeSink) -> None:
    eng.close()
    assert sink.sounding == {} and sink.double_on == 0 and sink.orphan_off == 0


PITCHES = [60, 62, 64, 65, 67, 69, 71, 72] * 6


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


def test_follow_control_fixes_and_frees_the_window_and_bad_values_are_counted() -> None:
    clock, sink, eng, echo = make()
    clock.start(at_ns=T0)
    eng.submit(ControlEvent(T0, Control.FOLLOW, 8.0))
    eng.run_until(due(3))
    assert not eng.follow.adaptive and decision_time(echo, 2) == due(2) + 8 * MS
    st = eng.status()
    assert st["follow_window_ms"] == 8.0 and st["follow_adaptive"] is False and st["timing"] == "follow"
    for bad in (-1.0, math.nan, math.inf, 1e9, 1e-42, 0.05):  # a tiny window would round to nothing
        eng.submit(ControlEvent(due(3), Control.FOLLOW, bad))
    eng.run_until(due(4))
    assert eng.stats.counters.input_errors == 6 and eng.follow.window_ns == 8 * MS
    errors = sink.of("error")
    assert len(errors) == 1 and "follow window" in str(errors[0][2])  # rate limited: one report
    eng.submit(ControlEvent(due(4), Control.FOLLOW, 0.0))
    eng.run_until(due(6))
    assert eng.follow.adaptive and decision_time(echo, 5) == due(5) + WMAX  # nothing measured yet
    assert eng.stats.counters.misses == 0


def test_config_window_and_react_delay_alias_and_validation() -> None:
    assert EngineConfig().follow_window_ms == 0.0
    assert EngineConfig().follow_window_percentile == 95.0 and EngineConfig().follow_chord_ms == 3.0
    assert EngineConfig(follow_window_ms=0.1, follow_chord_ms=0.0).follow_window_ms == 0.1
    assert EngineConfig(follow_window_ms=12.0).follow_window_ms == 12.0
    assert EngineConfig(react_delay_ms=5.0).follow_window_ms == 5.0
    for bad in (
        {"follow_budget_ms": -1.0},
        {"follow_window_ms": -1.0},
        {"follow_window_ms": math.nan},
        {"follow_window_ms": 500.0},
        {"follow_window_ms": 0.05},
        {"follow_chord_ms": -1.0},
        {"follow_chord_ms": math.nan},
        {"follow_chord_ms": 31.0},
        {"follow_window_min_ms": 60.0},  # above the maximum
        {"follow_window_max_ms": 1000.0},
        {"follow_window_percentile": 0.0},
        {"follow_window_onsets": 0},
        {"follow_window_warmup_onsets": 33},
        {"react_delay_ms": -3.0},
    ):
        with pytest.raises(ValueError):
            EngineConfig(**bad)  # type: ignore[arg-type]


def test_follow_window_percentile_clamp_and_ring() -> None:
    w = FollowWindow()
    assert w.update() == WMAX and w.adaptive and w.percentile == 95.0  # nothing measured: the maximum
    for x in (-20, -10, -5):
        w.observe(x * MS)
    assert w.update() == WMAX  # fewer than 8 onsets measured: still the maximum
    w = FollowWindow(warmup=3)
    for x in (-20, -10, -5):
        w.observe(x * MS)
    assert w.update() == 3 * MS  # early onsets only: the minimum
    for x in (4, 6, 8, 10, 12, 14, 16, 18, 20, 22):
        w.observe(x * MS)
    # p95 of the 10 positive offsets (linear interpolation: 21.1 ms) + 2 ms
    assert w.update() == round(21.1 * MS) + 2 * MS
    assert w.offset_p50_ns == 10 * MS  # the median of all 13
    for _ in range(32):  # the ring forgets: 32 onsets 49 ms late push it to the clamp
        w.observe(49 * MS)
    assert w.update() == WMAX
    for _ in range(32):  # 32 onsets 60 ms late: no window up to the maximum catches them, none waits
        w.observe(60 * MS)
    assert w.update() == 3 * MS and w.offset_p50_ns == 60 * MS
    w.fix(7.5)
    assert w.window_ns == 7_500_000 and not w.adaptive and w.adaptive_ns == 3 * MS
    w.fix(0)
    assert w.adaptive and w.window_ns == 3 * MS
    for bad in (-0.1, math.nan, 101.0, 1e-42, 0.05, 0.0999):
        with pytest.raises(ValueError):
            w.fix(bad)
    w.fix(float(np.float32(4.12)))  # what OSC (32-bit floats) makes of 4.12: 4.119999885559082
    assert w.window_ns == 4_120_000 and w.snapshot()["follow_window_ms"] == 4.12
    assert w.snapshot()["follow_window_us"] == 4120
    w.fix(0.1)
    assert w.window_ns == 100_000 and w.snapshot()["follow_window_ms"] == 0.1
    with pytest.raises(ValueError):
        FollowWindow(size=4, warmup=5)  # would never leave its warm-up
    w2 = FollowWindow(min_ms=0.0, max_ms=50.0, margin_ms=0.0, percentile=50.0, size=4, warmup=4)
    for x in (1, 2, 3, 4, 100, 100):
        w2.observe(x * MS)
    assert w2.update() == round(3.5 * MS)  # last four: 3, 4, 100, 100 -> p50 of 3 and 4 (100 > 50 ms)
    w3 = FollowWindow(min_ms=0.0, max_ms=50.0, margin_ms=0.0, percentile=50.0, size=4, warmup=4)
    for x in (1, 2, 60, 70, 45, 48):
        w3.observe(x * MS)
    assert w3.update() == round(46.5 * MS)  # last four: 45, 48, 60, 70 -> p50 of 45 and 48


def test_osc_follow_address_decodes_and_rejects_bad_values() -> None:
    ev = decode("/liveagent/follow", [12.5], 3, None)
    assert isinstance(ev, ControlEvent) and ev.kind is Control.FOLLOW and ev.value == 12.5
    assert decode("/liveagent/follow", [0], 3, None).value == 0.0  # type: ignore[union-attr]
    assert decode("/liveagent/follow", [0.1], 3, None).value == 0.1  # type: ignore[union-attr]
    for params, kind in (
        ([-1.0], "range"),
        ([1e6], "range"),
        ([1e-42], "range"),  # would round to a 0 ns window that reads like "adaptive"
        ([0.0999], "range"),
        ([math.nan], "nonfinite"),
        (["fast"], "type"),
        ([], "arity"),
        ([1.0, 2.0], "arity"),
    ):
        with pytest.raises(MessageError) as e:
            decode("/liveagent/follow", params, 3, None)
        assert e.value.kind == kind, params


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


def test_a_performer_alternately_on_time_and_later_than_the_maximum_does_not_hold_the_holds_back() -> None:
    """Review M3: onsets later than the window's maximum are amended whatever the window, so they must not
    stretch it: the holds wait for what the window can catch (5 ms late + 2), not 50 ms for nothing."""
    clock, sink, eng, echo = make()
    clock.start(at_ns=T0)
    steps = list(range(4, 100, 4))
    offs = [(5 if i % 2 == 0 else 55) * MS for i in range(len(steps))]
    play(eng, melody(steps, offs, PITCHES[: len(steps)]), due(102))
    c = eng.stats.counters
    assert eng.follow.window_ns == 7 * MS  # p95 of the 5 ms offsets (the 55 ms ones are out of reach) + 2
    warm = steps[8]
    for k in range(warm, 100):
        if k % 4:
            assert decision_time(echo, k) - due(k) == 7 * MS, k  # a hold: the window, not 50 ms
    assert c.answered == len(steps) // 2 and c.late_amended == len(steps) // 2 and c.misses == 0
    assert eng.status()["answered_pct"] == 50.0
    # On time and 55 ms late: nothing positive the window could catch, so the minimum.
    clock, sink, eng, echo = make()
    clock.start(at_ns=T0)
    offs = [(0 if i % 2 == 0 else 55) * MS for i in range(len(steps))]
    play(eng, melody(steps, offs, PITCHES[: len(steps)]), due(102))
    assert eng.follow.window_ns == 3 * MS and decision_time(echo, 99) == due(99) + 3 * MS
    assert_notes_paired(eng, sink)


def _jitter_run(
    percentile: float, seed: int, n: int = 400, sd_ms: float = 15.0, mean_ms: float = 0.0, **cfg: object
) -> dict[str, float]:
    """A performer with normal onset jitter (mean ``mean_ms``, sd ``sd_ms``) on a note every 4th step, on a
    ManualClock: answered_pct, the share of the late onsets caught, the mean wait of the held steps, and
    the window at the end."""
    rng = np.random.default_rng(seed)
    clock, _sink, eng, echo = make(follow_window_percentile=percentile, **cfg)
    clock.start(at_ns=T0)
    steps = list(range(4, 4 + 4 * n, 4))
    offsets = [round(x * MS) for x in np.clip(rng.normal(mean_ms, sd_ms, n), -55, 55)]
    events = []
    for i, (k, off) in enumerate(zip(steps, offsets, strict=True)):
        p = PITCHES[i % 8] + 12 * (i % 3)
        events += [(due(k) + off, p, 90), (due(k + 3) + off, p, 0)]
    play(eng, events, due(steps[-1] + 4))
    c = eng.stats.counters
    late = [o for o in offsets[16:] if o > 0]  # past the warm-up
    waits = [decision_time(echo, k) - due(k) for k in range(steps[8], steps[-1]) if k % 4]
    amended_late = c.late_amended  # every amended onset is a late one (early ones are always answered)
    return {
        "answered_pct": float(eng.status()["answered_pct"]),
        "late_caught_pct": 100.0 * (1 - amended_late / max(1, len(late))),
        "hold_wait_ms": float(np.mean(waits)) / MS,
        "misses": float(c.misses),
        "window_ms": eng.follow.window_ns / MS,
        "answer_p50_ms": float(np.median(eng.stats.answer_ns.values())) / MS if c.answered else math.nan,
    }


def test_p95_window_catches_more_onsets_under_jitter_than_p90_for_a_few_ms_on_holds() -> None:
    """Review M3: under sd-15 ms jitter the p90 + 2 ms window answered fewer onsets; the default p95
    answers more, and holds wait a few ms longer. Measured over 4 x 400 onsets with the 50 ms maximum: p90
    answered 94.3 % (87.8 % of the late onsets), holds waited 24.4 ms on average; p95 96.2 % (91.8 %),
    28.1 ms. (With the former 30 ms maximum: p90 92.7 %, 21.4 ms; p95 94.4 %, 23.7 ms.)"""
    assert EngineConfig().follow_window_percentile == 95.0
    runs = {q: [_jitter_run(q, seed) for seed in range(4)] for q in (90.0, 95.0)}
    fig = {q: {k: round(float(np.mean([r[k] for r in rs])), 2) for k in rs[0]} for q, rs in runs.items()}
    print(f"jitter sd 15 ms, 4 x 400 onsets: p90 {fig[90.0]}; p95 {fig[95.0]}")
    assert fig[95.0]["answered_pct"] > fig[90.0]["answered_pct"] + 0.5, fig
    assert fig[95.0]["late_caught_pct"] > fig[90.0]["late_caught_pct"] + 1.0, fig
    assert fig[95.0]["answered_pct"] >= 93.5, fig
    assert 0 < fig[95.0]["hold_wait_ms"] - fig[90.0]["hold_wait_ms"] < 5.0, fig
    assert fig[90.0]["misses"] == fig[95.0]["misses"] == 0, fig


def test_a_performer_40_ms_late_is_heard_in_time_with_the_50_ms_maximum() -> None:
    """Review: a performer systematically 40 ms late (sd 5 ms; normal for a human against a machine's grid)
    was never heard in time with the former 30 ms maximum: each onset came after its step's window had
    closed and was amended (answered 0.2-1 %). With the 50 ms default the window converges to about 48 ms
    (p95 of the catchable offsets + 2 ms, clamped to 50) and 95-96 % of the onsets are answered, each
    the chord grace after it arrives. An on-grid performer still gets the minimum window (3 ms, in
    ``test_on_the_grid_every_onset_is_answered_at_once_and_holds_wait_the_window``)."""
    assert EngineConfig().follow_window_max_ms == 50.0
    runs = {
        mx: [
            _jitter_run(95.0, seed, n=200, sd_ms=5.0, mean_ms=40.0, follow_window_max_ms=mx)
            for seed in range(4)
        ]
        for mx in (30.0, 50.0)
    }
    fig = {mx: {k: round(float(np.mean([r[k] for r in rs])), 2) for k in rs[0]} for mx, rs in runs.items()}
    print(f"40 ms late, sd 5 ms, 4 x 200 onsets: max 30 ms {fig[30.0]}; max 50 ms {fig[50.0]}")
    assert fig[30.0]["answered_pct"] < 5.0, fig
    assert fig[50.0]["answered_pct"] >= 95.0, fig
    for r in runs[50.0]:
        assert 45.0 <= r["window_ms"] <= 50.0 and r["answered_pct"] >= 93.0, r
        assert r["answer_p50_ms"] == G / MS and r["misses"] == 0, r


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


def test_fixed_window_from_a_32_bit_osc_float_is_recorded_and_reported_as_asked() -> None:
    """Review L2: OSC floats are 32-bit (4.12 arrives as 4.119999885559082); the window is kept to 10 us,
    so the status and the session recording say 4.12, and the status has the exact integer too."""
    events: list[tuple[str, dict[str, object]]] = []

    class Rec:
        def performer_note(self, t_ns: int, pitch: int, velocity: int) -> None: ...
        def agent_note(self, t_ns: int, pitch: int, velocity: int) -> None: ...
        def tempo(self, t_ns: int, bpm: float) -> None: ...
        def event(self, t_ns: int, kind: str, **fields: object) -> None:
            events.append((kind, fields))

        def flush(self) -> None: ...
        def close(self) -> None: ...

    clock = ManualClock(bpm=125)
    echo = Echo(clock.time)
    eng = Engine(echo.policy, FakeSink(), clock, EngineConfig(warmup_calls=0), recorder=Rec())
    clock.start(at_ns=T0)
    ev = decode("/liveagent/follow", [float(np.float32(4.12))], T0, None)
    eng.submit(ev)
    eng.run_until(due(3))
    assert ("follow", {"window_ms": 4.12}) in events
    st = eng.status()
    assert (
        st["follow_window_ms"] == 4.12 and st["follow_window_us"] == 4120 and st["follow_adaptive"] is False
    )
    assert decision_time(echo, 2) == due(2) + 4_120_000


def test_a_chord_spread_wider_than_the_grace_is_heard_whole() -> None:
    """A musician's review: three keys 2.7 ms apart (5.4 ms from first to last), melody on top. With the
    grace from the first note the policy heard the middle note; from the latest note it hears the top.
    The grace still stops at the window's close + half the budget: with a solo engine's 5 ms budget and
    the window adapted to this on-grid player (4 ms), a chord spread over more than ~4.5 ms loses its
    last key; a band's budget (5 ms per voice, 15 ms) is what this run gives it."""
    notes, eng = _chord_run((60, 64, 67), 2_700_000, follow_budget_ms=15.0)
    assert [p for _, p in notes] == [67] * 9 and eng.stats.counters.late_amended == 0
    assert_notes_paired(eng, eng.sink)  # type: ignore[arg-type]
