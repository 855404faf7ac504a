"""Shared helpers of the follow-timing tests (test_engine_follow, test_engine_follow_window,
test_start_on_note): a ManualClock at 125 BPM, the echo policy that plays back what it hears, and a way to
play a performer's note events into the engine at their times."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from liveagent.live.engine.clocks import ManualClock
from liveagent.live.engine.loop import Engine, EngineConfig
from liveagent.live.engine.policy import CallablePolicy, PolicyMeta
from liveagent.live.events import NoteEvent
from liveagent.music.features import ObservationBuffers
from liveagent.music.tokens import VOCAB_SIZE
from tests.live.engine_helpers import FakeSink

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
