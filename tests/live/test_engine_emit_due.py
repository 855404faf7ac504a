"""The end-of-spin fast path (``Engine._emit_due``): an anticipated step leaves before the housekeeping.

It must change no note, no beat and no time, and must stand aside when anything waits in the queue (a /mute
that arrived during the spin is handled before the step goes out). Played on a manual clock, the same melody
through the normal loop and through the loop with the fast path at every emission wake-up.
"""

from __future__ import annotations

import numpy as np

from liveagent.live.engine.clocks import ManualClock, ManualTime
from liveagent.live.engine.loop import Engine, EngineConfig
from liveagent.live.engine.policy import OnnxPolicy
from liveagent.live.engine.status import slack_time
from liveagent.live.events import Control, ControlEvent, NoteEvent
from tests.live.engine_helpers import FakeSink

MS = 1_000_000
MELODY = [67, 69, 71, 72, 74, 72, 71, 69, 67, 66, 67, 69, 71, 0, 69, 67]


def _run_to(eng: Engine, t_end: int, fast: bool, fired: list[int]) -> None:
    """``Engine.run_until``, plus the fast path where ``_wait`` calls it: at an emission wake-up."""
    now = eng._now
    assert isinstance(now, ManualTime)
    while True:
        wake = eng._service()
        slack_time(eng, wake, check=False)
        if wake > t_end:
            break
        now.set(max(wake, now()))
        if fast and eng._emit_wake:
            k = eng._k
            eng._emit_due()
            if eng._k != k:
                fired.append(int(k or 0))
    now.set(max(now(), t_end))


class _Recorder:
    """Writes what the engine records into the sink's call list: the order of sends and bookkeeping."""

    def __init__(self, calls: list[tuple[object, ...]]) -> None:
        self.calls = calls

    def performer_note(self, t_ns: int, pitch: int, velocity: int) -> None:
        pass

    def agent_note(self, t_ns: int, pitch: int, velocity: int, voice: int = 0) -> None:
        self.calls.append(("rec", t_ns, pitch, velocity))

    def tempo(self, t_ns: int, bpm: float) -> None:
        pass

    def event(self, t_ns: int, kind: str, **fields: object) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def _play(fast: bool, record: bool = False) -> tuple[list[tuple[object, ...]], list[int]]:
    clock = ManualClock(bpm=240)
    sink = FakeSink(now=clock.time)
    cfg = EngineConfig(warmup_calls=1, seed=3)
    rec = _Recorder(sink.calls) if record else None
    eng = Engine(OnnxPolicy.load("anticipate"), sink, clock, cfg, recorder=rec)
    clock.start(at_ns=1_000 * MS)
    rng = np.random.default_rng(5)
    fired: list[int] = []
    for i, p in enumerate(MELODY):
        t = clock.due(4 * i + 4) + int(rng.normal(4.0, 8.0) * MS)
        t_off = t + int(3 * clock.period_ns())
        _run_to(eng, t, fast, fired)
        if p:
            eng.submit(NoteEvent(t, p, 90, "osc"))
        _run_to(eng, t_off, fast, fired)
        if p:
            eng.submit(NoteEvent(t_off, p, 0, "osc"))
    _run_to(eng, clock.due(4 * len(MELODY) + 8), fast, fired)
    assert eng.stats.counters.misses == 0
    eng.close()
    return [c for c in sink.calls if c[0] in ("on", "off", "beat", "rec")], fired


def test_fast_path_changes_no_note_beat_or_time() -> None:
    slow, none = _play(fast=False)
    fast, fired = _play(fast=True)
    assert not none
    assert len(fired) >= 60  # it did the emissions (~72 steps), not the normal loop
    assert sum(1 for c in fast if c[0] == "on") >= 8
    assert fast == slow


def test_a_beat_leaves_right_behind_its_step_notes() -> None:
    """On a beat step the beat follows the step's note-off/note-on, before their recording: the sends of
    a step come first, its bookkeeping after."""
    for fast in (False, True):
        calls, _ = _play(fast=fast, record=True)
        beats_after_on = 0
        for i, c in enumerate(calls):
            if c[0] == "on" and i + 1 < len(calls) and calls[i + 1][0] == "beat":
                assert calls[i + 1][1] == c[1]  # same time: the same step
                assert calls[i + 2][0] == "rec"  # the recording after the beat
                beats_after_on += 1
            if c[0] == "rec" and c[3] > 0:
                assert calls[i - 1][0] in ("on", "beat", "rec")
        assert beats_after_on >= 5


def test_fast_path_stands_aside_when_something_is_queued() -> None:
    """A /mute queued during the spin: the step does not go out on the fast path; the loop handles the mute
    first and the muted step plays nothing."""
    clock = ManualClock(bpm=240)
    sink = FakeSink(now=clock.time)
    eng = Engine(OnnxPolicy.load("anticipate"), sink, clock, EngineConfig(warmup_calls=1, seed=3))
    clock.start(at_ns=1_000 * MS)
    fired: list[int] = []
    for i, p in enumerate(MELODY[:6]):
        t = clock.due(4 * i + 4)
        _run_to(eng, t - 1, True, fired)
        eng.submit(NoteEvent(t - 1, p, 90, "osc"))
        _run_to(eng, t + 3 * int(clock.period_ns()), True, fired)
        eng.submit(NoteEvent(eng._now(), p, 0, "osc"))
    assert any(c[0] == "on" for c in sink.calls)
    # run to the emission wake-up of the next step, queue a mute, then try the fast path
    now = eng._now
    assert isinstance(now, ManualTime)
    while True:
        wake = eng._service()
        slack_time(eng, wake, check=False)
        now.set(max(wake, now()))
        if eng._emit_wake and eng.clock.opened(int(eng._k or 0), now()):
            break
    k = eng._k
    n_calls = len(sink.calls)
    eng.submit(ControlEvent(now(), Control.MUTE, 1.0))
    eng._emit_due()
    assert eng._k == k
    assert len(sink.calls) == n_calls  # nothing sent on the fast path
    eng._service()  # the normal loop: the mute first, then the step, silent
    assert eng._k != k
    assert not [c for c in sink.calls[n_calls:] if c[0] == "on"]
    assert not sink.sounding
    eng.close()
