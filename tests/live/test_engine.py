"""The engine on a ManualClock: exact schedules, misses and fallbacks, quantization, swaps, transport."""

from __future__ import annotations

import time

import numpy as np
import pytest

from liveagent.live.engine.clocks import (
    InternalClock,
    ManualClock,
    ManualTime,
    OscTransportClock,
)
from liveagent.live.engine.loop import Engine, EngineConfig
from liveagent.live.engine.midi_clock import MidiClockFollower
from liveagent.live.engine.policy import CallablePolicy, OnnxPolicy, PolicyError, PolicyMeta
from liveagent.live.events import Control, ControlEvent, InputError, NoteEvent
from liveagent.music.features import ObservationBuffers
from liveagent.music.tokens import HOLD, REST, VOCAB_SIZE, onset
from tests.live.engine_helpers import FakeSink, script_policy, tiny_onnx_bytes

MS = 1_000_000
P = 120 * MS  # one 16th at 125 BPM
T0 = 1_000 * MS
LEAD = 5 * MS


def due(k: int) -> int:
    return T0 + k * P


def make(
    policy: object, clock: ManualClock | None = None, **cfg: object
) -> tuple[ManualClock, FakeSink, Engine]:
    clock = clock or ManualClock(bpm=125)
    sink = FakeSink(now=clock.time)
    cfg.setdefault("lead_ms", LEAD / MS)
    # These tests are about the schedule, with script policies that play without a performer: the
    # silence gate (no agent note before the performer's first) is off; tests/live/test_engine_silence.py
    # tests it.
    cfg.setdefault("waits_for_performer", False)
    config = EngineConfig(**cfg)  # type: ignore[arg-type]
    eng = Engine(policy, sink, clock, config)  # type: ignore[arg-type]
    return clock, sink, eng


def notes(sink: FakeSink) -> list[tuple[object, ...]]:
    return [c for c in sink.calls if c[0] in ("on", "off")]


def test_decides_at_due_minus_lead_and_emits_at_due() -> None:
    decided: list[int] = []
    clock = ManualClock(bpm=125)
    pol = script_policy(
        {0: onset(40), 1: HOLD, 2: onset(43), 3: REST}, on_call=lambda n: decided.append(clock.time())
    )
    clock, sink, eng = make(pol, clock)
    clock.start(at_ns=T0)
    eng.run_until(due(4) + 1)
    assert decided == [due(k) - LEAD for k in range(5)]
    assert notes(sink) == [
        ("on", due(0), 40, 80),
        ("off", due(2), 40),
        ("on", due(2), 43, 80),
        ("off", due(3), 43),
    ]
    assert [c[1:] for c in sink.of("beat")] == [(due(0), 0, 0), (due(4), 0, 1)]
    snap = eng.stats.snapshot()
    assert snap["misses"] == 0 and snap["steps"] == 5 and snap["notes_out"] == 2


def test_slow_decision_is_a_miss_with_fallback_and_no_late_note() -> None:
    clock = ManualClock(bpm=125)

    def slow(n: int) -> None:
        if n in (2, 5):
            clock.time.advance(LEAD + 3 * MS)  # the policy overruns T_k by 3 ms

    pol = script_policy(
        {0: onset(40), 1: HOLD, 2: onset(47), 4: REST, 5: onset(50)}, default=HOLD, on_call=slow
    )
    clock, sink, eng = make(pol, clock)
    clock.start(at_ns=T0)
    eng.run_until(due(7))
    # Step 2: note sounding -> fallback HOLD (nothing sent, 47 never played);
    # step 5: silence -> fallback REST (50 never played).
    assert notes(sink) == [("on", due(0), 40, 80), ("off", due(4), 40)]
    assert eng.stats.counters.misses == 2
    assert eng.stats.counters.decisions == 6  # steps 0,1,3,4,6,7 decided in time


def test_wakeup_several_steps_late_skips_without_a_burst() -> None:
    pol = script_policy(default=HOLD, tokens={0: onset(40)})
    clock, sink, eng = make(pol, max_note_steps=100)
    clock.start(at_ns=T0)
    eng.run_until(due(1))
    clock.time.set(due(5) + 3 * MS)  # the engine was stalled for four steps
    eng.step_once()
    c = eng.stats.counters
    assert c.skipped == 3 and c.misses == 4  # steps 2..4 skipped, step 5 fallback at once
    assert sink.of("on") == [("on", due(0), 40, 80)]  # no burst of late notes
    assert len(sink.of("beat")) == 1  # step 4's beat is not sent late either
    eng.run_until(due(7))
    assert eng.status()["step"] == 7


def test_onsets_quantize_to_nearest_step() -> None:
    seen: list[list[int]] = []

    def fn(obs: ObservationBuffers) -> np.ndarray:
        seen.append(obs.performer[0, -3:].tolist())
        return np.zeros((1, VOCAB_SIZE), dtype=np.float32)

    pol = CallablePolicy(fn, PolicyMeta(window=8))
    clock, _sink, eng = make(pol)
    clock.start(at_ns=T0)
    eng.run_until(due(2) - 20 * MS)
    eng.submit(NoteEvent(due(2) - 20 * MS, 60, 100))  # just before T_2 -> step 2
    eng.run_until(due(3) + 50 * MS)
    eng.submit(NoteEvent(due(3) + 50 * MS, 60, 0))  # release inside step 3's window
    eng.submit(NoteEvent(due(3) + 55 * MS, 64, 90))  # 55 ms after T_3 (P/2 = 60 ms) -> step 3
    eng.run_until(due(4) + 70 * MS)
    eng.submit(NoteEvent(due(4) + 70 * MS, 64, 0))  # 70 ms after T_4 -> step 5
    eng.run_until(due(7))
    # Anticipate mode: deciding step k sees performer steps k-3..k-1.
    assert seen[3] == [REST, REST, onset(60)]
    assert seen[4] == [REST, onset(60), onset(64)]
    assert seen[5] == [onset(60), onset(64), HOLD]
    assert seen[6] == [onset(64), HOLD, REST]
    assert eng.stats.counters.notes_in == 2


def test_onset_after_the_decision_moves_to_the_open_step() -> None:
    pol = script_policy(default=REST)
    clock, _sink, eng = make(pol, lead_ms=80)  # lead longer than half a step
    clock.start(at_ns=T0)
    eng.run_until(due(3) - 55 * MS)  # step 3 already decided (at T_3 - 80 ms)
    eng.submit(NoteEvent(due(3) - 55 * MS, 60, 100))  # nearest is step 3, whose window is still open
    eng.run_until(due(4) + 55 * MS)
    assert eng.stats.counters.late_inputs == 0
    eng.submit(NoteEvent(due(4) + 55 * MS, 62, 100))  # nearest step 4: finalized at T_5 - 80 ms -> step 5
    eng.run_until(due(7))
    assert eng.stats.counters.late_inputs == 1


def test_react_policy_uses_follow_timing_and_react_delay_fixes_the_window() -> None:
    seen: list[tuple[int, int]] = []
    clock = ManualClock(bpm=125)

    def fn(obs: ObservationBuffers) -> np.ndarray:
        seen.append((clock.time(), int(obs.performer[0, -1])))
        out = np.zeros((1, VOCAB_SIZE), dtype=np.float32)
        out[0, int(obs.performer[0, -1])] = 1.0  # echo what it just heard
        return out

    pol = CallablePolicy(fn, PolicyMeta(window=4, mode="react"))
    clock, sink, eng = make(pol, clock, react_delay_ms=3.0)  # the old spelling: a fixed 3 ms window
    assert eng.follow.window_ns == 3 * MS and not eng.follow.adaptive
    clock.start(at_ns=T0)
    eng.run_until(due(2) + 1 * MS)
    eng.submit(NoteEvent(due(2) + 1 * MS, 55, 100))  # 1 ms late for step 2: answered on arrival + 3 ms
    eng.run_until(due(4))
    assert seen[1] == (due(1) + 3 * MS, REST)  # nothing played: decided when the window closed
    assert seen[2] == (due(2) + 4 * MS, onset(55))  # the 3 ms chord grace after the onset
    assert seen[3] == (due(3) + 3 * MS, HOLD)
    assert ("on", due(2) + 4 * MS, 55, 82) in sink.calls
    assert eng.stats.counters.misses == 0 and eng.stats.counters.answered == 1
    assert eng.status()["timing"] == "follow"


def test_swap_at_bar_line_releases_the_note_first() -> None:
    old = script_policy(default=HOLD, tokens={0: onset(40)}, name="old")
    new_calls: list[int] = []
    clock = ManualClock(bpm=125)
    new = script_policy(
        default=onset(45), name="new", window=4, on_call=lambda n: new_calls.append(clock.time())
    )
    clock, sink, eng = make(old, clock, load_in_thread=False)
    eng.policy_loader = lambda name: new if name == "new" else (_ for _ in ()).throw(PolicyError("nope"))
    clock.start(at_ns=T0)
    eng.run_until(due(5))
    eng.submit(ControlEvent(due(5), Control.POLICY, text="new"))
    eng.run_until(due(16) + 1)
    assert eng.policy is new and eng.stats.counters.swaps == 1
    assert new_calls[3] == due(16) - LEAD  # three warm-up calls in the loader, then step 16
    ons_offs = notes(sink)
    assert ons_offs[-2:] == [("off", due(16) - LEAD, 40), ("on", due(16), 45, 80)]
    assert sink.sounding == {45: 80}
    # A policy that fails to load leaves the current one and says why.
    eng.submit(ControlEvent(due(16) + 1, Control.POLICY, text="broken"))
    eng.run_until(due(33))
    assert eng.policy is new
    assert any("not loaded, keeping new: nope" in str(c[2]) for c in sink.of("error"))
    eng.close()
    assert sink.sounding == {}


def test_swap_to_onnx_policy_with_other_window() -> None:
    old = script_policy(default=REST, window=4)
    clock, sink, eng = make(old, load_in_thread=False)
    clock.start(at_ns=T0)
    eng.run_until(due(3))
    eng.swap_policy(OnnxPolicy.from_bytes(tiny_onnx_bytes(window=16), name="echo"))
    eng.run_until(due(15))
    eng.submit(NoteEvent(due(15), 62, 100))
    eng.run_until(due(17))
    assert eng.policy.name == "echo"
    # The echo policy repeats the performer's last step: its 16-step window was rebuilt from history.
    assert sink.of("on") == [("on", due(16), 62, 82)]
    assert eng.stats.counters.policy_errors == 0 and eng.stats.counters.misses == 0


def test_grid_mismatch_refused() -> None:
    pol = CallablePolicy(lambda o: np.zeros((1, 130), np.float32), PolicyMeta(steps_per_beat=3))
    with pytest.raises(PolicyError, match="grid"):
        make(pol)


def test_mute_panic_and_temperature() -> None:
    pol = script_policy(default=onset(48))
    clock, sink, eng = make(pol)
    clock.start(at_ns=T0)
    eng.run_until(due(1) + 1)
    eng.submit(ControlEvent(due(1) + 1, Control.MUTE, 1.0))
    eng.run_until(due(4))
    assert sink.sounding == {}
    assert all(int(c[1]) <= due(1) + 1 for c in notes(sink))  # type: ignore[call-overload]
    eng.submit(ControlEvent(due(4), Control.MUTE, 0.0))
    eng.run_until(due(6))
    assert 48 in sink.sounding
    eng.submit(ControlEvent(due(6), Control.PANIC))
    eng.step_once()
    assert sink.sounding == {} and sink.of("all_off")
    eng.submit(ControlEvent(due(6), Control.TEMPERATURE, 0.7))
    eng.submit(ControlEvent(due(6), Control.TEMPERATURE, float("nan")))
    eng.step_once()
    assert eng.status()["temperature"] == 0.7 and eng.stats.counters.input_errors == 1


def test_stop_releases_and_start_restarts_at_step_zero() -> None:
    pol = script_policy(default=HOLD, tokens={0: onset(40), 6: onset(41)})
    clock, sink, eng = make(pol, ManualClock(bpm=125, preroll_ms=10))
    clock.start(at_ns=T0)
    eng.run_until(due(2))
    eng.submit(ControlEvent(due(2), Control.STOP))
    eng.run_until(due(10))
    assert sink.sounding == {} and notes(sink) == [("on", due(0), 40, 80), ("off", due(2), 40)]
    eng.submit(ControlEvent(due(10), Control.START))
    eng.run_until(due(20))
    t0 = due(10) + 10 * MS  # START + preroll
    assert sink.of("beat")[-1][1:] == (t0 + 8 * P, 0, 2)
    assert ("on", t0 + 3 * P, 41, 80) in sink.calls  # call 6 -> step 3 of the new run


def test_tempo_change_at_the_bar_line() -> None:
    pol = script_policy(default=REST)
    clock, sink, eng = make(pol)
    clock.start(at_ns=T0)
    eng.run_until(due(5))
    eng.submit(ControlEvent(due(5), Control.TEMPO, 150.0))  # 100 ms steps from bar 1 on
    eng.run_until(due(16) + 8 * 100 * MS)
    beats = [c[1] for c in sink.of("beat")]
    assert beats == [due(0), due(4), due(8), due(12), due(16), due(16) + 400 * MS, due(16) + 800 * MS]


def test_max_note_length_and_velocity_follows_performer() -> None:
    pol = script_policy(default=HOLD, tokens={0: onset(40), 10: onset(42)})
    clock, sink, eng = make(pol, max_note_steps=4, velocity_follow=1.0, velocity_scale=0.5)
    clock.start(at_ns=T0)
    eng.run_until(due(9))
    # Held past 4 steps: re-struck (its note-off reaches the synth), default velocity before any input.
    assert notes(sink) == [("on", due(0), 40, 80), ("off", due(4), 40), ("on", due(4), 40, 80),
                           ("off", due(8), 40), ("on", due(8), 40, 80)]  # fmt: skip
    eng.submit(NoteEvent(due(9), 60, 120))
    eng.run_until(due(10))
    assert sink.of("on")[-1] == ("on", due(10), 42, 60)


def test_input_errors_are_counted_and_reported_at_a_limited_rate() -> None:
    pol = script_policy(default=REST)
    clock, sink, eng = make(pol)
    for i in range(50):
        eng.submit(InputError(clock.time(), "osc", f"bad {i}", ("127.0.0.1", 9)))
    eng.submit(NoteEvent(clock.time(), 200, 10))
    eng.step_once()
    assert eng.stats.counters.input_errors == 51
    assert len(sink.of("error")) == 1 and sink.of("error")[0][3] == ("127.0.0.1", 9)
    clock.time.advance(1_100 * MS)
    eng.run_until(clock.time() + 1)
    errs = sink.of("error")
    assert len(errs) == 2 and "and 49 more" in str(errs[1][2])
    assert eng.stats.input_errors_by_kind["osc"] == 50


def test_policy_exception_falls_back_and_keeps_time() -> None:
    def boom(n: int) -> None:
        if n == 2:
            raise RuntimeError("kaboom")

    pol = script_policy(default=HOLD, tokens={0: onset(40)}, on_call=boom)
    clock, sink, eng = make(pol)
    clock.start(at_ns=T0)
    eng.run_until(due(5))
    assert eng.stats.counters.policy_errors == 1 and 40 in sink.sounding
    assert any("kaboom" in str(c[2]) for c in sink.of("error"))


def test_status_reply_goes_to_the_asker() -> None:
    pol = script_policy(default=REST)
    clock, sink, eng = make(pol)
    clock.start(at_ns=T0)
    eng.run_until(due(17))
    eng.submit(ControlEvent(due(17), Control.STATUS, reply_to=("127.0.0.1", 5555)))
    eng.run_until(due(17) + 30 * MS)  # answered in slack time, from the next published snapshot
    (_, _, fields, reply) = sink.of("status")[0]
    assert reply == ("127.0.0.1", 5555)
    assert isinstance(fields, dict) and fields["bar"] == 1 and fields["beat"] == 0 and fields["bpm"] == 125.0


@pytest.mark.timeout(30)
def test_real_thread_runs_and_cleans_up() -> None:
    sink = FakeSink(now=time.perf_counter_ns)
    clock = InternalClock(bpm=240, preroll_ms=20)
    pol = OnnxPolicy.from_bytes(tiny_onnx_bytes(window=8), name="echo")
    eng = Engine(pol, sink, clock, EngineConfig(lead_ms=3))
    eng.start()
    eng.submit(ControlEvent(time.perf_counter_ns(), Control.START))
    for i in range(6):
        eng.submit(NoteEvent(time.perf_counter_ns(), 50 + i, 100))
        time.sleep(0.05)
    eng.stop()
    assert eng.stats.counters.steps > 0
    assert sink.sounding == {} and sink.calls[-1][0] == "all_off"
    assert sink.double_on == 0 and sink.orphan_off == 0


def test_midi_clock_emits_on_the_tick_that_opens_the_step() -> None:
    t = ManualTime(0)
    clock = MidiClockFollower(now=t)
    decided: list[int] = []
    pol = script_policy(
        default=HOLD, tokens={0: onset(40), 2: onset(43)}, on_call=lambda n: decided.append(t())
    )
    sink = FakeSink(now=t)
    eng = Engine(pol, sink, clock, EngineConfig(lead_ms=5, max_note_steps=100, waits_for_performer=False))
    tick = round(60e9 / (120 * 24))  # 120 BPM: a 16th = 6 ticks = 125 ms
    eng.submit(ControlEvent(0, Control.START))
    eng.step_once()
    assert decided == [0]  # step 0 decided at once: its tick may come any moment
    jitter = [0, 300_000, -200_000, 100_000, 0, -300_000]
    for i in range(6 * 4):  # four steps of ticks, 1 ms late each, with jitter
        ti = 1 * MS + i * tick + jitter[i % 6]
        eng.run_until(ti)
        eng.submit(ControlEvent(ti, Control.CLOCK_TICK))
        eng.step_once()
    tick_of = {k: 1 * MS + 6 * k * tick for k in range(4)}
    assert sink.of("on") == [("on", tick_of[0], 40, 80), ("on", tick_of[2], 43, 80)]
    assert ("off", tick_of[2], 40) in sink.calls
    assert eng.stats.counters.misses == 0
    # Decisions for steps 1..3 at the predicted T_k - lead, within the jitter of the tick times.
    for k in (1, 2, 3):
        assert abs(decided[k] - (tick_of[k] - 5 * MS)) < 1 * MS
    # The ticks stop: freewheel at the last tempo, then stop after a bar; the note is released.
    last = 1 * MS + 23 * tick
    eng.run_until(last + round(1.2 * 24 * 4 * tick))
    assert not clock.running and sink.sounding == {}
    assert eng.stats.counters.steps > 4  # freewheeled steps were played


def test_range_and_scale_masks_shape_the_choice() -> None:
    prefs = np.zeros((1, VOCAB_SIZE), dtype=np.float32)
    prefs[0, onset(61)] = 3.0  # C#4: out of C major
    prefs[0, onset(72)] = 2.5  # C5: in the scale, above the range below
    prefs[0, onset(60)] = 2.0  # C4
    pol = CallablePolicy(lambda obs: prefs, PolicyMeta(window=4))
    for cfg, expect in (
        ({}, 61),
        ({"scale": (0, 2, 4, 5, 7, 9, 11)}, 72),
        ({"scale": (0, 2, 4), "pitch_max": 64}, 60),
    ):
        clock, sink, eng = make(pol, **cfg)
        clock.start(at_ns=T0)
        eng.run_until(due(0))
        assert sink.of("on")[0][2] == expect, cfg


def test_realtime_gc_freezes_and_restores() -> None:
    import gc

    from liveagent.live.engine.runtime_gc import RealtimeGC

    assert gc.isenabled()
    with RealtimeGC() as rgc:
        assert not gc.isenabled() and gc.get_freeze_count() > 0
        rgc.collect(0)
        assert rgc.collections == 1
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_miss_tolerance_plays_a_slightly_late_decision() -> None:
    clock = ManualClock(bpm=125)

    def slow(n: int) -> None:
        if n == 1:
            clock.time.advance(LEAD + 1 * MS)  # 1 ms past T_1

    pol = script_policy({1: onset(50)}, default=REST, on_call=slow)
    clock, sink, eng = make(pol, clock, miss_tolerance_ms=2.0)
    clock.start(at_ns=T0)
    eng.run_until(due(3))
    assert sink.of("on") == [("on", due(1) + 1 * MS, 50, 80)]
    assert eng.stats.counters.misses == 0
    assert eng.stats.lateness_ns.values().max() == 1 * MS


def test_osc_beat_pulse_moves_the_emission_grid() -> None:
    t = ManualTime(0)
    clock = OscTransportClock(bpm=125, now=t, preroll_ms=0)
    pol = script_policy(default=REST)
    sink = FakeSink(now=t)
    eng = Engine(pol, sink, clock, EngineConfig(lead_ms=5))
    eng.submit(ControlEvent(0, Control.START))
    eng.run_until(4 * P + 7 * MS)
    eng.submit(ControlEvent(4 * P + 7 * MS, Control.BEAT, -1.0))  # the sender's beat 1 came 7 ms later
    eng.run_until(9 * P)
    assert [c[1] for c in sink.of("beat")] == [0, 4 * P, 8 * P + 7 * MS]
    assert eng.stats.counters.misses == 0
    # A pulse naming beat 3 while the grid is at step 9: the grid jumps to it, the steps in between are
    # skipped (counted), never played late.
    eng.run_until(9 * P + 7 * MS + 10 * MS)
    eng.submit(ControlEvent(t(), Control.BEAT, 3.0))  # beat 3 of the bar = step 12, now
    eng.run_until(14 * P)
    assert [c[1:] for c in sink.of("beat")][-2:] == [(9 * P + 17 * MS, 0, 3), (13 * P + 17 * MS, 1, 0)]
    assert eng.stats.counters.skipped == 2  # steps 10 and 11


def test_empty_pitch_range_is_a_policy_error_at_start_and_refused_on_swap() -> None:
    narrow = script_policy(default=REST, pitch_min=36, pitch_max=48)
    with pytest.raises(PolicyError, match=r"pitch range 60\.\.48 is empty"):
        make(narrow, pitch_min=60)
    ok = script_policy(default=REST, pitch_min=60, pitch_max=80, name="ok")
    _clock, sink, eng = make(ok, pitch_min=60, load_in_thread=False)
    eng.swap_policy(narrow, "narrow")
    eng.step_once()
    assert eng.policy is ok and "pitch range 60..48 is empty" in str(sink.of("error")[0][2])
