"""The control-desk session shared by the solo and the band tests: mutes, panics, policy swaps and stops
aimed at T_k - 0.5 ms (inside serve's spin before step k), then every check on what the receiver heard."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.live.receiver_notes import before_first_burst, overlaps
from tests.live.serve_helpers import ServeProcess
from tests.review9.stage import (
    SPB,
    Stage,
    beats_of,
    check_beats,
    check_panicked,
    check_silenced,
    doubles,
    match_recording,
    notes_at,
    osc,
    summary,
)

log = logging.getLogger(__name__)


@dataclass
class DeskResult:
    """What a control-desk session found."""

    problems: list[str] = field(default_factory=list)
    in_flight: dict[str, list[int]] = field(default_factory=lambda: {"mute": [], "stop": [], "restart": []})
    """Per mute / stop / restart: the note-ons (every address) of step k still sent after the control.

    Measured (240 BPM, 16 mutes a run): aimed 0.5 ms before T_k, every mute whose step k struck a note
    let that note out, before and after ``_emit_due`` alike (the same steps: the OSC thread waits out the
    engine's spin for the GIL, switch interval 0.5 ms); aimed 0.9 ms before, 4-6 of 16 in both builds."""
    status: dict[str, Any] = field(default_factory=dict)
    """The status just before the final stop."""


def run_desk(
    sp: ServeProcess, record: Path, voice_of: dict[str, str | None], swaps: list[str], rounds: int
) -> DeskResult:
    """Play the session on ``sp`` (recording into ``record``), then check every address of ``voice_of``
    (address -> the recording's voice field). ``swaps``: the policies asked for, one per swap."""
    res = DeskResult()
    restarts: list[int] = []
    st = Stage(sp)
    g = st.regrid()
    k0 = g.k_after(time.perf_counter_ns() + 20_000_000, SPB, 0)
    st.play(k0, k0 + 2 * SPB)  # the performer opens the silence gate
    for i in range(rounds):
        k = st.next_k(rem=1 + i % 3)
        g = st.grid
        unmute = (g.t(k + 3) + round(g.step / 2), osc("/liveagent/mute", 0))
        st.aim("mute", k, osc("/liveagent/mute", 1), k + 6, after=unmute)
    for i in range(rounds):
        k = st.next_k(rem=1 + i % 3)
        st.aim("panic", k, osc("/liveagent/panic"), k + 4)
    for name in swaps:
        k = st.next_k(rem=0, mod=16)
        st.aim("policy", k, osc("/liveagent/policy", name), k + 20)
    for i in range(max(2, rounds - 2)):
        k = st.next_k(rem=1 + i % 3)
        g = st.grid
        start = (g.t(k + 4) + round(g.step / 2), osc("/liveagent/start"))
        ep = st.aim("stop", k, osc("/liveagent/stop"), k + 4, after=start)
        restarts.append(ep.t_after)
        g = st.regrid(valid_from=ep.t_after)
        k1 = g.k_after(time.perf_counter_ns() + 10_000_000, SPB, 0)
        st.play(k1, k1 + 2 * SPB)
    for i in range(2):  # a restart (/start while playing) aimed at the spin: notes released, beats from 0
        k = st.next_k(rem=1 + i % 3)
        ep = st.aim("restart", k, osc("/liveagent/start"), k + 1)
        restarts.append(ep.t_sent)
        g = st.regrid(valid_from=ep.t_sent)
        ep.t_after = g.t(0)
        k1 = g.k_after(time.perf_counter_ns() + 10_000_000, SPB, 0)
        st.play(k1, k1 + 2 * SPB)
    time.sleep(0.2)
    res.status = sp.status()
    sp.send("/liveagent/stop")
    time.sleep(0.3)
    rc = sp.terminate()
    if rc != 0:
        res.problems.append(f"serve exited {rc}: {''.join(sp.stderr)[-1500:]}")
    heard = {a: notes_at(sp.rx, a) for a in voice_of}
    beats = beats_of(sp.rx)
    for ep in st.episodes:
        if ep.kind in ("mute", "stop", "restart"):
            n_all = 0
            for address, events in heard.items():
                p, n = check_silenced(st, events, ep, address)
                res.problems += p
                n_all += n
            res.in_flight[ep.kind].append(n_all)
            if ep.kind in ("stop", "restart"):
                t_check = ep.grid.t(ep.k) + round(ep.grid.step / 2)
                late = [b for t, b in beats if t_check < t < ep.t_after]
                if late:
                    res.problems.append(f"stop k={ep.k}: beats {late} after the stop")
        elif ep.kind == "panic":
            for address, events in heard.items():
                res.problems += check_panicked(events, ep, address)
    res.problems += check_beats(st, beats, restarts)
    for address, events in heard.items():
        res.problems += doubles(st, events, address)
        ov = overlaps(events)
        if ov:
            res.problems.append(f"{address}: note-ons over a sounding note: {ov[:4]}")
        left = before_first_burst(events)
        if left:
            res.problems.append(f"{address}: left sounding at the end: {left}")
    rec = match_recording(record, heard, voice_of)
    res.problems += rec.problems
    log.info(
        "aim error us %s; in flight after mute %s, after stop %s, after restart %s; "
        "misses %s skipped %s swaps %s; "
        "notes heard %s, matched in the recording %d; arrival - recorded ms: note-ons %s, all (min) %.3f; "
        "lateness p50/p99 us %s/%s; beats %d",
        summary([e / 1000 for e in st.aim_errors_ns]),
        res.in_flight["mute"],
        res.in_flight["stop"],
        res.in_flight["restart"],
        res.status["misses"],
        res.status["skipped"],
        res.status["swaps"],
        {a.split("/")[-2]: sum(1 for e in ev if e[2] > 0) for a, ev in heard.items()},
        rec.matched,
        summary(rec.on_delay_ms),
        min(rec.delay_ms, default=0.0),
        res.status["lateness_p50_us"],
        res.status["lateness_p99_us"],
        len(beats),
    )
    return res
