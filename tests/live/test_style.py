"""Steering the style: the rules of a request (liveagent/live/style_rules.py), the glide's math, the engine
applying /liveagent/style and /liveagent/mood over one bar (ManualClock: exact steps, no real time), and the
MIDI pad CCs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from liveagent.live.engine.clocks import ManualClock
from liveagent.live.engine.loop import Engine, EngineConfig
from liveagent.live.engine.policy import CallablePolicy, OnnxPolicy, PolicyMeta
from liveagent.live.engine.style import Glide, StyleSteer
from liveagent.live.events import Control, ControlEvent, NoteEvent
from liveagent.live.io import osc
from liveagent.live.style_rules import StyleError, StyleRequest, check_values, resolve
from liveagent.music.features import ObservationBuffers
from liveagent.music.tokens import HOLD, VOCAB_SIZE, onset
from tests.live.engine_helpers import FakeSink, script_policy

ORIGIN = (0.1, -0.2)
PC1 = (1.0, 0.5)
PC2 = (-0.5, 2.0)
MOODS = {"neutral": (0.1, -0.2), "busy": (0.9, -1.1), "calm": (-0.3, 0.4)}


def style_meta(dim: int = 2, axes: bool = True) -> PolicyMeta:
    moods: dict[str, tuple[float, ...]] = dict(MOODS) if dim == 2 else {"neutral": (0.0,) * dim}
    return PolicyMeta(
        window=8,
        style_dim=dim,
        moods=moods,
        style_default="neutral",
        style_axes={"pc1": (ORIGIN, PC1), "pc2": (ORIGIN, PC2)} if axes and dim == 2 else {},
    )


class StylePolicy(CallablePolicy):
    """A numpy policy with a style input: holds its note, and records the z every decision was made with."""

    def __init__(self, meta: PolicyMeta) -> None:
        logits = np.zeros((1, VOCAB_SIZE), dtype=np.float32)
        logits[0, onset(45)] = 1.0
        super().__init__(lambda obs: logits, meta, "stylish")
        self._style = np.asarray(meta.moods[meta.style_default], dtype=np.float32).reshape(1, -1)
        self.seen: list[tuple[float, ...]] = []

    @property
    def style(self) -> np.ndarray:
        return self._style[0]

    def set_style(self, z: object) -> None:
        arr = np.asarray(z, dtype=np.float32).reshape(-1)
        if arr.shape[0] != self.meta.style_dim or not np.isfinite(arr).all():
            raise ValueError("bad style")
        self._style[0] = arr

    def __call__(self, obs: ObservationBuffers) -> np.ndarray:
        self.seen.append(tuple(float(v) for v in self._style[0]))
        return super().__call__(obs)


# -- the rules -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("values", "kind", "words"),
    [
        ((), "arity", "got 0"),
        ((0.1, math.nan), "nonfinite", "value 2 is not finite"),
        ((math.inf,), "nonfinite", "value 1 is not finite"),
        ((True, 0.0), "type", "value 1 must be a number"),
        ((0.0, "x"), "type", "value 2 must be a number"),
    ],
)
def test_context_free_rules(values: tuple[object, ...], kind: str, words: str) -> None:
    with pytest.raises(StyleError, match=words) as e:
        check_values(values)
    assert e.value.kind == kind


def test_resolve_pad_maps_onto_the_main_plane() -> None:
    m = style_meta()
    assert resolve(m, StyleRequest(values=(0.0, 0.0))) == pytest.approx(ORIGIN)
    assert resolve(m, StyleRequest(values=(1.0, 0.0))) == pytest.approx((1.1, 0.3))
    assert resolve(m, StyleRequest(values=(-1.0, 0.5))) == pytest.approx((0.1 - 1.0 - 0.25, -0.2 - 0.5 + 1.0))
    assert resolve(m, StyleRequest(mood="busy")) == MOODS["busy"]


@pytest.mark.parametrize(
    ("meta", "request_", "kind", "words"),
    [
        (style_meta(), StyleRequest(values=(1.5, 0.0)), "range", "pad x 1.5 outside -1..1"),
        (style_meta(), StyleRequest(values=(0.0, -1.01)), "range", "pad y -1.01 outside -1..1"),
        (style_meta(), StyleRequest(values=(0.1, 0.2, 0.3)), "arity", "needs 2 \\(pad x y\\) or 2"),
        (
            style_meta(4),
            StyleRequest(values=(0.1, 0.2, 0.3)),
            "arity",
            "needs 4 \\(the latent z; this policy has no pad\\)",
        ),
        (style_meta(4), StyleRequest(values=(0.0, 0.0, 11.0, 0.0)), "range", "latent value 3 = 11 outside"),
        (style_meta(), StyleRequest(mood="nope"), "mood", "unknown mood 'nope' .*busy, calm, neutral"),
        (PolicyMeta(), StyleRequest(mood="busy"), "nostyle", "has no style input"),
        (PolicyMeta(), StyleRequest(values=(0.0, 0.0)), "nostyle", "has no style input"),
    ],
)
def test_resolve_refuses_with_a_precise_error(
    meta: PolicyMeta, request_: StyleRequest, kind: str, words: str
) -> None:
    with pytest.raises(StyleError, match=words) as e:
        resolve(meta, request_, "p")
    assert e.value.kind == kind


def test_shipped_style_policy_pad_corners_are_the_axes_ends() -> None:
    p = OnnxPolicy.load("style")
    (o, d1), (_, d2) = p.meta.style_axes["pc1"], p.meta.style_axes["pc2"]
    z = resolve(p.meta, StyleRequest(values=(1.0, -1.0)))
    assert z == pytest.approx(tuple(a + b - c for a, b, c in zip(o, d1, d2, strict=True)))
    assert set(p.meta.moods) >= {"calm", "busy", "bright", "dark", "neutral"}


def test_osc_decode_applies_the_context_free_rules() -> None:
    ev = osc.decode("/liveagent/style", [0.5, -1], 7, None)
    assert isinstance(ev, ControlEvent) and ev.kind == Control.STYLE and ev.values == (0.5, -1.0)
    ev = osc.decode("/liveagent/mood", [" busy "], 7, None)
    assert isinstance(ev, ControlEvent) and ev.kind == Control.MOOD and ev.text == "busy"
    for params, kind in (([], "arity"), ([float("nan"), 0.0], "nonfinite"), (["a"], "type")):
        with pytest.raises(osc.MessageError) as e:
            osc.decode("/liveagent/style", params, 0, None)
        assert e.value.kind == kind
    with pytest.raises(osc.MessageError, match="mood name"):
        osc.decode("/liveagent/mood", [3.0], 0, None)


# -- the glide's math ---------------------------------------------------------------------------------
def test_glide_is_linear_over_its_steps_by_absolute_step() -> None:
    g = Glide(2)
    start = np.array([0.0, 1.0], dtype=np.float32)
    g.begin(start, (1.6, -0.6), k0=32, steps=16)
    z = g.at(32)
    assert z.tolist() == pytest.approx([0.1, 0.9])
    assert g.at(39).tolist() == pytest.approx([0.8, 0.2])  # steps 33..38 skipped: no slower for it
    assert g.at(40) is z  # written in place: no array per step
    assert g.active
    assert g.at(47).tolist() == pytest.approx([1.6, -0.6]) and not g.active
    assert g.fraction(10) == 0.0 and g.fraction(100) == 1.0


# -- in the engine ------------------------------------------------------------------------------------
def make(policy: CallablePolicy) -> tuple[ManualClock, FakeSink, Engine]:
    clock = ManualClock(bpm=125)  # a step = 120 ms
    sink = FakeSink(now=clock.time)
    cfg = EngineConfig(warmup_calls=0, lead_ms=5, waits_for_performer=False, max_note_steps=1000)
    return clock, sink, Engine(policy, sink, clock, cfg, now=clock.time)


STEP = 120_000_000


def test_a_mood_glides_over_one_bar_and_the_status_says_so() -> None:
    pol = StylePolicy(style_meta())
    clock, sink, eng = make(pol)
    eng.submit(ControlEvent(0, Control.START))
    eng.run_until(4 * STEP - 50_000_000)  # steps 0..3 decided (the next decision: step 4 at T_4 - lead)
    assert len(pol.seen) == 4 and all(z == pytest.approx(MOODS["neutral"]) for z in pol.seen)
    eng.submit(ControlEvent(clock.time(), Control.MOOD, text="busy"))
    eng.run_until(4 * STEP + 8 * STEP - 50_000_000)  # 8 steps into the glide
    st = eng.status()
    assert st["style_mood"] == "busy" and st["style_gliding"] == 1 and st["style_dim"] == 2
    eng.run_until(4 * STEP + 20 * STEP)
    glide = [np.array(z) for z in pol.seen[4:20]]
    a, b = np.array(MOODS["neutral"]), np.array(MOODS["busy"])
    for i, z in enumerate(glide):  # step 4 + i plays (i + 1) / 16 of the way
        assert z == pytest.approx(a + (b - a) * (i + 1) / 16, abs=1e-5), i
    assert all(z == pytest.approx(MOODS["busy"]) for z in pol.seen[19:])
    st = eng.status()
    assert st["style_gliding"] == 0 and st["style"] == "0.90 -1.10"
    # the notes went on as ever: one held note, never cut or doubled by the change
    assert sink.double_on == 0 and sink.orphan_off == 0 and eng.stats.counters.misses == 0
    eng.close()
    assert sink.sounding == {}


def test_bad_requests_are_counted_errors_and_change_nothing() -> None:
    pol = StylePolicy(style_meta())
    _, sink, eng = make(pol)
    for ev in (
        ControlEvent(0, Control.MOOD, text="nope", reply_to=("127.0.0.1", 5)),
        ControlEvent(0, Control.STYLE, values=(2.0, 0.0)),
        ControlEvent(0, Control.STYLE, values=(0.1, 0.2, 0.3)),
    ):
        eng.submit(ev)
    eng.run_until(STEP)
    errors = [c[2] for c in sink.of("error")]
    assert errors and "unknown mood 'nope'" in str(errors[0]) and sink.of("error")[0][3] == ("127.0.0.1", 5)
    assert eng.stats.counters.input_errors == 3 and eng.stats.input_errors_by_kind["style"] == 3
    assert eng.status()["style_mood"] == "neutral"
    # stopped: a good request applies at once, no glide
    eng.submit(ControlEvent(0, Control.STYLE, values=(1.0, 0.0)))
    eng.run_until(2 * STEP)
    st = eng.status()
    assert st["style_mood"] == "custom" and st["style_gliding"] == 0 and st["style"] == "1.10 0.30"


def test_a_policy_without_style_says_so_and_a_swap_reapplies_the_mood() -> None:
    plain = script_policy(default=HOLD)
    _, sink, eng = make(plain)
    eng.submit(ControlEvent(0, Control.MOOD, text="busy"))
    eng.run_until(STEP)
    assert "has no style input" in str(sink.of("error")[0][2])
    st = eng.status()
    assert st["style_dim"] == 0 and st["style"] == ""
    stylish = StylePolicy(style_meta())
    eng.swap_policy(stylish)
    eng.run_until(2 * STEP)
    eng.submit(ControlEvent(0, Control.MOOD, text="calm"))
    eng.run_until(3 * STEP)
    assert eng.status()["style_mood"] == "calm" and tuple(stylish.style) == pytest.approx(MOODS["calm"])
    eng.swap_policy(plain)  # the style is kept, ignored by a policy without the input...
    eng.run_until(4 * STEP)
    assert eng.status()["style_dim"] == 0 and eng.status()["style_mood"] == "calm"
    other = StylePolicy(style_meta())
    eng.swap_policy(other)  # ...and re-applied to the next one that has it
    eng.run_until(5 * STEP)
    assert tuple(other.style) == pytest.approx(MOODS["calm"]) and eng.status()["style_dim"] == 2


def test_a_swap_mid_glide_lands_on_the_target_at_once() -> None:
    steer = StyleSteer(StylePolicy(style_meta()))
    pol = StylePolicy(style_meta())
    steer.bind(pol)
    steer.change(pol, StyleRequest(values=(0.0, 1.0)), k0=0, steps=16)
    steer.step(pol, 3)
    assert steer.gliding
    new = StylePolicy(style_meta())
    assert steer.bind(new) == "" and not steer.gliding
    assert tuple(new.style) == pytest.approx((ORIGIN[0] + PC2[0], ORIGIN[1] + PC2[1]))


def test_performer_notes_still_answer_during_a_glide() -> None:
    pol = StylePolicy(style_meta())
    clock, _, eng = make(pol)
    eng.submit(ControlEvent(0, Control.START))
    eng.run_until(2 * STEP)
    eng.submit(ControlEvent(clock.time(), Control.STYLE, values=(-1.0, 1.0)))
    eng.submit(NoteEvent(clock.time(), 60, 90))
    eng.run_until(30 * STEP)
    assert eng.stats.counters.notes_in == 1 and eng.stats.counters.misses == 0
    assert pol.seen[-1] == pytest.approx((ORIGIN[0] - PC1[0] + PC2[0], ORIGIN[1] - PC1[1] + PC2[1]))


# -- the MIDI pad ---------------------------------------------------------------------------------------
def test_midi_pad_ccs_map_0_127_onto_minus_1_1_on_the_performers_channels() -> None:
    from liveagent.live.io.midi import MidiConfig, MidiIO

    got: list[object] = []
    midi = MidiIO(got.append, MidiConfig(in_channels=(0,)))
    ms = 1_000_000  # the pad's points go out at most every 10 ms (PAD_INTERVAL_NS): these are 20 ms apart
    midi.handle([0xB0, 16, 127], 5 * 20 * ms)  # x = 1
    midi.handle([0xB0, 17, 0], 6 * 20 * ms)  # y = -1, x kept
    midi.handle([0xB1, 16, 0], 7 * 20 * ms)  # channel 2: not the performer's
    midi.handle([0xB0, 1, 64], 8 * 20 * ms)  # the mod wheel: not the pad
    styles = [e for e in got if isinstance(e, ControlEvent)]
    assert [e.values for e in styles] == [(1.0, 0.0), (1.0, -1.0)] and styles[0].kind == Control.STYLE
    assert midi.counters.style_cc == 2 and midi.counters.ignored == 2  # other CCs: ignored, as ever
    midi.handle([0xB0, 16, 64], 9 * 20 * ms)
    assert styles[-1].values == (1.0, -1.0) and got[-1].values[0] == pytest.approx(0.0079, abs=1e-3)  # type: ignore[attr-defined]
    off = MidiIO(got.append, MidiConfig(style_cc=(0, 0)))
    n = len(got)
    off.handle([0xB0, 16, 127], 10)
    assert len(got) == n and off.counters.ignored == 1
    with pytest.raises(ValueError, match="style_cc"):
        MidiConfig(style_cc=(16, 16))


def test_a_streaming_pad_is_coalesced_and_its_last_point_arrives() -> None:
    """A controller streaming pad CCs (10,000 a second) gives the engine at most one point per 10 ms, the
    rest counted as coalesced; the last point goes out when the input idles (flush_pad)."""
    from liveagent.live.io.midi import PAD_INTERVAL_NS, MidiConfig, MidiIO

    got: list[ControlEvent] = []
    midi = MidiIO(got.append, MidiConfig(in_channels=(0,)))  # type: ignore[arg-type]
    t0 = 10**12
    for i in range(1000):  # 0.1 s at 10,000 CC/s, x sweeping up
        midi.handle([0xB0, 16, i * 127 // 999], t0 + i * 100_000)
    assert 10 <= len(got) <= 11, len(got)
    assert midi.counters.style_cc == 1000 and midi.counters.style_cc_coalesced == 1000 - len(got)
    assert got[-1].values[0] < 1.0  # the last CC (x = 1) was coalesced ...
    midi.flush_pad(t0 + 999 * 100_000 + 1)  # too soon: still pending
    midi.flush_pad(t0 + 999 * 100_000 + PAD_INTERVAL_NS)
    assert got[-1].values == (1.0, 0.0) and len(got) <= 12  # ... and arrives once the input idles
    midi.flush_pad(t0 + 10**9)
    assert got[-1].values == (1.0, 0.0) and len(got) <= 12  # nothing pending: nothing sent
