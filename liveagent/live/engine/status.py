"""The engine's slack time: housekeeping, and the status snapshot it publishes for other threads.

Functions of the :class:`~liveagent.live.engine.loop.Engine`'s state, split out of engine.py and called only
on the engine thread (the one that owns the state). Other threads never build a status: they read the
snapshot published here (:meth:`Engine.status`, :meth:`Engine.published_status`); the publication
itself is a :class:`~liveagent.live.engine.stats.StatusBoard` reference swap.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from liveagent.music.features import hears_current_step

if TYPE_CHECKING:
    from liveagent.live.engine.state import EngineState

log = logging.getLogger(__name__)


def build_status(eng: EngineState) -> dict[str, object]:
    """The status, built from the engine's state: the engine thread's job (in slack time)."""
    k = eng._last_step
    grid = eng.grid
    spbar, spbeat = grid.steps_per_bar, grid.steps_per_beat
    policy = eng.view.policy
    out: dict[str, object] = {
        "policy": policy.name,
        "mode": policy.meta.mode,
        "timing": "follow" if hears_current_step(policy.meta.mode) else "anticipate",
        "part": policy.meta.part,
        "step": k,
        "bar": k // spbar if k >= 0 else -1,
        "beat": (k % spbar) // spbeat if k >= 0 else -1,
        "muted": eng.muted,
        "temperature": eng._sampler.config.temperature,
        "velocity": eng._velocity(),
        "sounding": eng.sounding_pitches(),
    }
    band = eng.view.band
    if band is not None:
        out["band"] = ",".join(band.voices)
        for v, tr in zip(band.voices, eng.band_trackers, strict=True):
            out[f"sounding_{v}"] = tr.pitches()
    clock = eng.clock
    out.update(clock.status())
    if clock.running and not clock.external:
        # T_0 and the step period on the system-wide monotonic clock (perf_counter_ns), so a receiver
        # process on this machine can measure emission lateness against the grid; a string because
        # Pd and Max have no 64-bit integers.
        out["grid_t0_ns"] = str(clock.origin_ns(clock.now()))
        out["step_ns"] = round(clock.period_ns(), 1)
    out.update(eng.stats.snapshot())
    eng.follow.update()
    out.update(eng.follow.snapshot())
    out["follow_chord_ms"] = eng.config.follow_chord_ms
    out["waits_for_performer"] = eng.config.waits_for_performer
    out["performer_silent_steps"] = eng._silent
    perf = eng.performer
    out["performer_held"] = len(perf.held)
    out["performer_notes_timed_out"] = perf.timed_out
    out["performer_notes_cleared"] = perf.cleared
    out["waiting"] = eng.waiting
    out["armed"] = int(eng._armed is not None)
    out["follow_tempo"] = int(eng._lead is not None)
    out["lead_beat_moves"] = eng._lead.beat_moves if eng._lead is not None else 0
    out.update(eng.steer.snapshot(policy))
    return out


def publish_status(eng: EngineState, now: int) -> None:
    """Build and publish the status; answer the STATUS requests waiting for it (engine thread)."""
    board = eng.board
    board.publish(eng._build_status(), now)
    for reply_to in board.take_replies():
        eng.sink.status(dict(board.latest), reply_to)


def slack_time(eng: EngineState, wake: int, *, check: bool = True) -> None:
    """Work that waits for slack (``check=False``: tests on a ManualTime): housekeeping, then the
    status snapshot (and the replies waiting for it). Never within ``slack_ms`` of the next deadline,
    and never between a decision and its emission: the snapshot waits for the pass after the emission
    (measured: one built 4.3 ms before an emission preceded 1.7 ms of lateness). Except while the next
    step waits for an external clock's tick past its predicted time: its wake-ups are polls, not deadlines,
    and the status would freeze until the tick (or forever: Start and no tick)."""
    if check and eng._k is not None and eng.clock.waiting_for_tick(eng._k, eng._now()):
        check = False
    if eng._slack_work or eng._bar_work:
        if check and wake - eng._now() < eng._slack_ns:
            return
        housekeeping(eng)
    if eng.emission_pending and check:
        return
    now = eng._now()
    if eng.board.due(now) and not (check and wake - now < eng._slack_ns):
        publish_status(eng, now)


def housekeeping(eng: EngineState) -> None:
    """Slack-time work: the follow window's update, young-generation gc; at bar lines the recorder's
    flush (and followed tempo)."""
    recorder = eng.recorder
    if eng._bar_work and recorder is not None:
        try:
            clock = eng.clock
            # A tempo set for "the next bar" takes effect at this bar line, a followed one drifts: either
            # way the tempo map bends here, at the bar's due time for a clock that knows it.
            if clock.running:
                bpm = round(clock.bpm, 2)
                if abs(bpm - eng._recorded_bpm) >= 0.25:
                    at = eng._now() if clock.external else clock.due(eng._last_step)
                    recorder.tempo(at, bpm)
                    eng._recorded_bpm = bpm
            recorder.flush()
        except Exception:
            log.exception("recorder flush failed")
    eng.follow.update()
    if eng._gc is not None:
        eng._gc.collect(1 if eng._bar_work else 0)
        eng.stats.counters.gc_collections += 1
    eng._slack_work = eng._bar_work = False
    eng.errors.flush(eng._now())
