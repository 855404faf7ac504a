"""A flood of /policy requests loads one policy at a time: the first, then the newest that waited."""

from __future__ import annotations

from liveagent.live.engine.clocks import ManualClock
from liveagent.live.engine.loop import Engine, EngineConfig
from liveagent.live.engine.policy import Policy
from liveagent.live.events import Control, ControlEvent
from liveagent.music.tokens import HOLD, onset
from tests.live.engine_helpers import FakeSink, script_policy


def test_policy_flood_loads_the_first_and_the_newest_only() -> None:
    clock = ManualClock(bpm=125)
    sink = FakeSink()
    eng = Engine(
        script_policy(default=HOLD, tokens={0: onset(40)}, name="old"),
        sink,
        clock,
        EngineConfig(lead_ms=2.0, load_in_thread=False),
        now=clock.now,
    )
    loaded: list[str] = []
    policies = {n: script_policy(default=onset(45), name=n) for n in "abcd"}

    def loader(name: str) -> Policy:
        loaded.append(name)
        return policies[name]

    eng.policy_loader = loader
    t0 = clock.time() + 1_000_000
    clock.start(at_ns=t0)
    for name in "abcd":  # all arrive before the engine drains its queue
        eng.submit(ControlEvent(t0, Control.POLICY, text=name))
    eng.run_until(clock.due(40))
    assert loaded == ["a", "d"]  # b and c were superseded while a loaded
    assert eng.policy.name == "d" and eng.stats.counters.swaps == 2
    errors = [str(c) for c in sink.of("error")]
    assert any("'b' superseded by 'c'" in e for e in errors)
    assert any("'c' superseded by 'd'" in e for e in errors)
    eng.close()
    assert sink.sounding == {}
