"""The follow window on a ManualClock: the controls and config that fix or free it, its percentile, clamp
and ring, the OSC address, and what the adaptive window catches under jitter or from a late performer.
Answers, late onsets, misses and chords are in test_engine_follow.py; the shared helpers in
follow_helpers.py."""

from __future__ import annotations

import math

import numpy as np
import pytest

from liveagent.live.engine.clocks import ManualClock
from liveagent.live.engine.follow import FollowWindow
from liveagent.live.engine.loop import Engine, EngineConfig
from liveagent.live.events import Control, ControlEvent
from liveagent.live.io.osc import MessageError, decode
from tests.live.engine_helpers import FakeSink
from tests.live.follow_helpers import (
    MS,
    PITCHES,
    T0,
    WMAX,
    Echo,
    G,
    assert_notes_paired,
    decision_time,
    due,
    make,
    melody,
    play,
)


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
