"""The engine plays a band: every voice decided in the band's order inside one step, each hearing the
voices decided before it; each voice on its own route; every note of every voice released on stop, mute,
panic and exit by the engine itself; a band is swapped only for a band. ManualClock, a scripted band
policy (logic), then the shipped band policy through onnxruntime."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from liveagent.live.engine.clocks import ManualClock
from liveagent.live.engine.loop import Engine, EngineConfig
from liveagent.live.engine.policy import CallablePolicy, OnnxPolicy, PolicyMeta
from liveagent.live.events import Control, ControlEvent, NoteEvent
from liveagent.music.band import BandBuffers, BandSpec
from liveagent.music.features import ObservationBuffers
from liveagent.music.tokens import VOCAB_SIZE, onset
from tests.live.engine_helpers import FakeSink, script_policy

MS = 1_000_000
SPEC = BandSpec.named("satb")
ROOT = {0: 67, 1: 60, 2: 48}
"""The scripted band: each voice strikes a fixed pitch (alto G4, tenor C4, bass C3)."""


@dataclass
class BandSink(FakeSink):
    """A FakeSink that also records each band voice's notes and what each voice sounds."""

    voices: dict[int, dict[int, int]] = field(default_factory=lambda: {0: {}, 1: {}, 2: {}})
    band_calls: list[tuple[str, int, int]] = field(default_factory=list)

    def band_note_on(self, voice: int, pitch: int, velocity: int) -> None:
        assert pitch not in self.voices[voice], f"double note-on {voice} {pitch}"
        self.voices[voice][pitch] = velocity
        self.band_calls.append(("on", voice, pitch))

    def band_note_off(self, voice: int, pitch: int) -> None:
        assert self.voices[voice].pop(pitch, None) is not None, f"note-off without note-on {voice} {pitch}"
        self.band_calls.append(("off", voice, pitch))

    def sounding_voices(self) -> dict[int, list[int]]:
        return {v: sorted(p) for v, p in self.voices.items() if p}


class ScriptedBand:
    """Strikes each voice's pitch on the performer's onsets, holds otherwise; records what each call saw."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, list[int]]] = []
        self._out = np.zeros((1, VOCAB_SIZE), dtype=np.float32)
        meta = PolicyMeta(window=4, mode="follow", band=SPEC)
        self.policy = CallablePolicy(self._fn, meta, "scripted-band")

    def _fn(self, obs: ObservationBuffers) -> np.ndarray:
        assert isinstance(obs, BandBuffers)
        v = int(obs.voice[0])
        self.calls.append((v, obs.others[0, :, -1].tolist()))
        self._out.fill(0.0)
        self._out[0, onset(ROOT[v]) if obs.performer[0, -1] >= 2 else 1] = 1.0
        return self._out


def make(policy: CallablePolicy | OnnxPolicy) -> tuple[ManualClock, BandSink, Engine]:
    clock = ManualClock(bpm=120)
    sink = BandSink(now=clock.time)
    eng = Engine(policy, sink, clock, EngineConfig(warmup_calls=0))
    clock.start(at_ns=1_000 * MS)
    return clock, sink, eng


def play(eng: Engine, clock: ManualClock, pitches: list[int], late_ms: float = 4.0) -> None:
    """A quarter note per beat (4 steps), a few ms behind the grid, released before the next."""
    for i, p in enumerate(pitches):
        t = clock.due(4 * i + 4) + int(late_ms * MS)
        eng.run_until(t)
        eng.submit(NoteEvent(t, p, 90, "osc"))
        eng.run_until(t + 3 * clock.period_ns())
        eng.submit(NoteEvent(t + 3 * clock.period_ns(), p, 0, "osc"))


def test_voices_are_decided_bass_first_each_hearing_the_ones_before_it() -> None:
    band = ScriptedBand()
    clock, sink, eng = make(band.policy)
    play(eng, clock, [72, 74, 76, 77])
    eng.run_until(clock.due(24))
    order = [v for v, _ in band.calls]
    assert len(order) % 3 == 0 and order[:6] == [2, 1, 0, 2, 1, 0]
    # The step the performer's first onset is answered: the tenor hears the bass's onset of this step,
    # the alto hears both; the bass, first, hears none of this step's decisions.
    first = next(i for i in range(0, len(band.calls), 3) if band.calls[i + 1][1][2] >= 2)
    _, tenor_call, alto_call = band.calls[first : first + 3]
    assert tenor_call[1][2] == onset(ROOT[2]) and alto_call[1][2] == onset(ROOT[2])
    assert alto_call[1][1] == onset(ROOT[1])
    assert eng.stats.counters.decisions == len(order) // 3  # one band decision per step
    ons = {v: [p for k, vv, p in sink.band_calls if k == "on" and vv == v] for v in range(3)}
    assert all(ons[v] and set(ons[v]) == {ROOT[v]} for v in range(3)), ons
    assert sink.of("on") == []  # nothing on the solo route
    eng.close()
    assert sink.sounding_voices() == {}


def test_stop_mute_and_panic_release_every_voice() -> None:
    for control in (Control.STOP, Control.MUTE, Control.PANIC):
        band = ScriptedBand()
        clock, sink, eng = make(band.policy)
        play(eng, clock, [72, 74])
        t = clock.due(10)
        eng.run_until(t)
        assert len(sink.sounding_voices()) == 3, (control, sink.sounding_voices())
        n_all_off = len(sink.of("all_off"))
        eng.submit(ControlEvent(t, control, value=1.0))
        eng.run_until(t + 2 * MS)
        # Released one by one by the engine (PANIC adds an all-notes-off after them).
        assert sink.sounding_voices() == {}, control
        offs = [c for c in sink.band_calls if c[0] == "off"]
        assert len(offs) >= 3
        assert len(sink.of("all_off")) == n_all_off + (1 if control == Control.PANIC else 0)
        eng.close()


def test_a_band_is_swapped_only_for_a_band() -> None:
    band = ScriptedBand()
    clock, sink, eng = make(band.policy)
    eng.swap_policy(script_policy(window=4, mode="follow"), "solo")
    eng.run_until(clock.due(8))
    assert eng.view.policy.name == "scripted-band"
    assert any("plays a band" in str(c[2]) or "band" in str(c[2]) for c in sink.of("error"))
    eng.close()


def test_the_shipped_band_plays_three_voices_in_their_ranges() -> None:
    policy = OnnxPolicy.load("band")
    assert policy.meta.band is not None
    clock, sink, eng = make(policy)
    melody = [72, 74, 76, 77, 79, 77, 76, 74, 72, 71, 72, 74, 76, 74, 72, 72]
    play(eng, clock, melody)
    eng.run_until(clock.due(4 * len(melody) + 8))
    ons = {v: [p for k, vv, p in sink.band_calls if k == "on" and vv == v] for v in range(3)}
    for v, (lo, hi) in enumerate(policy.meta.band.ranges):
        assert len(ons[v]) >= 4 and all(lo <= p <= hi for p in ons[v]), (v, ons[v], (lo, hi))
    # Upper voices above lower ones on average (no crossed band).
    means = [float(np.mean(ons[v])) for v in range(3)]
    assert means[0] > means[1] > means[2], means
    assert eng.stats.counters.misses == 0
    eng.close()
    assert sink.sounding_voices() == {}


def test_the_shipped_band_under_human_timing_neither_misses_nor_restrikes() -> None:
    """The same melody on the grid and played like a human (10 ms late, jittered sd 12 ms, clipped to
    -20..40 ms): the late onsets are amended into their own steps, so the band plays about as many notes."""
    melody = [72, 74, 76, 77, 79, 77, 76, 74, 72, 71, 72, 74, 76, 74, 72, 72] * 2
    rng = np.random.default_rng(3)
    counts = []
    for offsets in ([0.0] * len(melody), list(np.clip(10 + rng.normal(0, 12, len(melody)), -20, 40))):
        policy = OnnxPolicy.load("band")
        clock, sink, eng = make(policy)
        for i, (p, off) in enumerate(zip(melody, offsets, strict=True)):
            t = clock.due(4 * i + 4) + int(off * MS)
            eng.run_until(t)
            eng.submit(NoteEvent(t, p, 90, "osc"))
            t_off = clock.due(4 * i + 7) + int(off * MS)
            eng.run_until(t_off)
            eng.submit(NoteEvent(t_off, p, 0, "osc"))
        eng.run_until(clock.due(4 * len(melody) + 8))
        assert eng.stats.counters.misses == 0
        counts.append(sum(1 for k, _, _ in sink.band_calls if k == "on"))
        eng.close()
        assert sink.sounding_voices() == {}
    grid, human = counts
    assert grid > 0 and abs(human - grid) <= 0.25 * grid, counts
