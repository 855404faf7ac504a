"""A tempo change reaches the session recording at the bar line where it takes effect."""

from __future__ import annotations

from liveagent.live.engine.clocks import ManualClock
from liveagent.live.engine.loop import Engine, EngineConfig
from liveagent.live.events import Control, ControlEvent
from liveagent.music.tokens import HOLD, onset
from tests.live.engine_helpers import FakeSink, script_policy


class TempoRecorder:
    """Keeps the tempo calls; everything else a recorder does is ignored here."""

    def __init__(self) -> None:
        self.tempi: list[tuple[int, float]] = []

    def performer_note(self, t_ns: int, pitch: int, velocity: int) -> None: ...

    def agent_note(self, t_ns: int, pitch: int, velocity: int) -> None: ...

    def tempo(self, t_ns: int, bpm: float) -> None:
        self.tempi.append((t_ns, bpm))

    def event(self, t_ns: int, kind: str, **fields: object) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


def test_tempo_change_at_the_next_bar_is_recorded_at_that_bar() -> None:
    clock = ManualClock(bpm=125)
    rec = TempoRecorder()
    eng = Engine(
        script_policy(default=HOLD, tokens={0: onset(40)}),
        FakeSink(),
        clock,
        EngineConfig(lead_ms=2.0, load_in_thread=False),
        now=clock.now,
        recorder=rec,
    )
    clock.start(at_ns=clock.time() + 1_000_000)
    eng.run_until(clock.due(5))
    eng.submit(ControlEvent(clock.time(), Control.TEMPO, value=90.0))
    bar = clock.due(16)  # the bar line, fixed before the new tempo applies after it
    eng.run_until(clock.due(20))
    assert clock.bpm == 90.0
    assert rec.tempi[0][1] == 125.0  # the session's start
    assert rec.tempi[1:] == [(bar, 90.0)]
    eng.close()
