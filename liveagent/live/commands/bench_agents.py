"""How many engines one process holds at a tempo (240 BPM in sixteenths) with zero misses.

Each agent is a full :class:`~liveagent.live.engine.loop.Engine` on its own thread with its own internal
clock, its own policy instance and a real OSC sink (to a socket nobody reads, so the kernel absorbs the
output); with no performer, each leads (``waits_for_performer=False``) so that its notes go out as before.
A band policy makes each agent a band (its voices decided one after another in each step, each on its own
OSC address); a trial counts only if the agents played notes (``notes_out``), else the figure means nothing.
A band trained under a soprano rests under silence, so ``performer=True`` plays every agent a melody on the
grid (one note per beat, as the lateness runs' performer), fed from a thread of this process.
The count doubles until an agent misses a step, then bisects between the last clean and the first missing
count. Automatic gc is frozen and off for the whole run, as each engine would do alone.
"""

from __future__ import annotations

import gc
import socket
import sys
import threading
import time
from typing import Any

import numpy as np

from liveagent.live.commands.server_setup import realtime_thread, resolve_policy
from liveagent.live.engine.clocks import InternalClock
from liveagent.live.engine.config import EngineConfig
from liveagent.live.engine.loop import Engine
from liveagent.live.events import Control, ControlEvent, NoteEvent
from liveagent.live.io.osc import OscSink, OscSinkConfig
from liveagent.music.tokens import Grid


def run_trial(
    policy_name: str,
    n: int,
    bpm: float,
    seconds: float,
    rt_priority: int = 20,
    switch_ms: float = 0.5,
    spin_ms: float = 1.0,
    lead_ms: float = 5.0,
    performer: bool = False,
) -> dict[str, Any]:
    old_switch = sys.getswitchinterval()
    sink_rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink_rx.bind(("127.0.0.1", 0))
    out = ("127.0.0.1", sink_rx.getsockname()[1])
    engines: list[Engine] = []
    sinks: list[OscSink] = []
    try:
        for _ in range(n):
            policy, _ = resolve_policy(policy_name)
            m = policy.meta
            clock = InternalClock(bpm, Grid(m.steps_per_beat, m.beats_per_bar), preroll_ms=200.0)
            voices = m.band.voices if m.band is not None else ()
            sink = OscSink(OscSinkConfig(out=out, band=voices))
            sinks.append(sink)
            # Nobody plays to these agents: without the silence gate off they would rest, and the sinks'
            # output (part of each step's cost) would not be measured.
            ecfg = EngineConfig(gc_freeze=False, spin_ms=spin_ms, lead_ms=lead_ms, waits_for_performer=False)
            engines.append(Engine(policy, sink, clock, ecfg))
        gc.collect()
        gc.freeze()
        gc.disable()
        sys.setswitchinterval(switch_ms / 1000.0)
        with realtime_thread(rt_priority):  # engine threads inherit SCHED_FIFO, as in `serve`
            for e in engines:
                e.start()
        time.sleep(0.3)
        t = time.perf_counter_ns()
        for e in engines:
            e.submit(ControlEvent(t, Control.START))
        stop = threading.Event()
        if performer:
            threading.Thread(
                target=_perform, args=(engines, stop), name="bench-performer", daemon=True
            ).start()
        time.sleep(seconds)
        stop.set()
        misses = [e.stats.counters.misses for e in engines]
        steps = [e.stats.counters.steps for e in engines]
        notes = [e.stats.counters.notes_out for e in engines]
        late = np.concatenate([e.stats.lateness_ns.values() for e in engines]).astype(np.float64)
        dec = np.concatenate([e.stats.decision_ns.values() for e in engines]).astype(np.float64)
    finally:
        for e in engines:
            e.stop()
        for s in sinks:
            s.close()
        sink_rx.close()
        gc.unfreeze()
        gc.enable()
        sys.setswitchinterval(old_switch)
    return {
        "agents": n,
        "misses": int(sum(misses)),
        "steps": int(sum(steps)),
        "notes_out": int(sum(notes)),
        "silent_agents": sum(1 for c in notes if c == 0),
        "lateness_p99_us": round(float(np.percentile(late, 99)) / 1e3, 1) if late.size else None,
        "decision_p99_us": round(float(np.percentile(dec, 99)) / 1e3, 1) if dec.size else None,
    }


def _perform(engines: list[Engine], stop: threading.Event) -> None:
    """An arpeggio, a note per beat held three steps, to every engine on the first engine's grid (the
    others' grids are a few microseconds apart: they handled the same START)."""
    clock = engines[0].clock
    while not clock.running and not stop.is_set():
        time.sleep(0.005)
    pitches = (72, 76, 79, 84, 79, 76)
    spb = clock.grid.steps_per_beat
    k = spb * (int(clock.step_at(time.perf_counter_ns())) // spb + 1)
    j = 0
    while not stop.is_set():
        p = pitches[j % len(pitches)]
        for due, vel in ((clock.due(k), 90), (clock.due(k + spb - 1), 0)):
            while (d := due - time.perf_counter_ns()) > 0 and not stop.is_set():
                time.sleep(min(d / 1e9, 0.05))
            now = time.perf_counter_ns()
            for e in engines:
                e.submit(NoteEvent(now, p, vel, "osc"))
        k += spb
        j += 1


def max_agents(
    policy: str,
    *,
    bpm: float = 240.0,
    seconds: float = 6.0,
    limit: int = 64,
    lead_ms: float = 20.0,
    spin_ms: float = 0.0,
    performer: bool = False,
) -> dict[str, Any]:
    """Doubling then bisection. Many engines deciding at the same instants share one GIL, so the default
    here is a longer lead (20 ms of a 62.5 ms step) and no spinning (a spinning engine holds the GIL)."""
    trials: list[dict[str, Any]] = []

    def trial(policy: str, n: int, bpm: float, seconds: float) -> dict[str, Any]:
        return run_trial(policy, n, bpm, seconds, lead_ms=lead_ms, spin_ms=spin_ms, performer=performer)

    ok, bad = 0, 0
    n = 1
    while n <= limit:
        r = trial(policy, n, bpm, seconds)
        trials.append(r)
        if _clean(r):
            ok = n
            n *= 2
        else:
            bad = n
            break
    if ok == 0:
        return {
            "max_agents_zero_misses": 0,
            "bpm": bpm,
            "lead_ms": lead_ms,
            "performer": performer,
            "trials": trials,
        }
    while bad and bad - ok > 1 and len(trials) < 10:
        mid = (ok + bad) // 2
        r = trial(policy, mid, bpm, seconds)
        trials.append(r)
        if _clean(r):
            ok = mid
        else:
            bad = mid
    return {
        "max_agents_zero_misses": ok,
        "bpm": bpm,
        "seconds_per_trial": seconds,
        "lead_ms": lead_ms,
        "spin_ms": spin_ms,
        "performer": performer,
        "trials": trials,
    }


def _clean(trial: dict[str, Any]) -> bool:
    """No miss, and every agent stepped and played (a silent agent costs less than a playing one)."""
    return trial["misses"] == 0 and trial["steps"] > 0 and trial["silent_agents"] == 0
