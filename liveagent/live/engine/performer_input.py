"""The performer's input on the engine thread: note events, the transport they start (``start_on_note``)
and the finalizing of performer steps into the policy's view.

Functions of the :class:`~liveagent.live.engine.loop.Engine`'s state, split out of loop.py (as
:mod:`liveagent.live.engine.control` holds the control events) and called only on the engine thread (the one
that owns the state). Performer onsets are quantized to the nearest step (an onset just before T_k belongs
to step k) and folded into the observation (:class:`~liveagent.music.features.StreamingObservation`,
preallocated, updated in place) when that step's window is final. A transport start or stop (the clock's
epoch changed, or the performer's first note started an armed transport) restarts the performer's line
with the session, so it lives here too.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from liveagent.live.engine.clocks import InternalClock
from liveagent.live.engine.state import DECIDE, NO_STEP
from liveagent.live.events import Control, InputError, NoteEvent
from liveagent.music.features import hears_current_step
from liveagent.music.tokens import REST

if TYPE_CHECKING:
    from liveagent.live.engine.state import EngineState


def on_note(eng: EngineState, ev: NoteEvent) -> None:
    """A performer note-on or note-off: checked, recorded, then added to its nearest step (a note-on that
    arrives after follow timing closed its step is amended into that step instead)."""
    pitch, vel = ev.pitch, ev.velocity
    if not (0 <= pitch <= 127 and 0 <= vel <= 127):
        eng._input_error(InputError(ev.t_ns, ev.source, f"note out of range: {pitch} {vel}"))
        return
    if eng.recorder is not None:
        eng.recorder.performer_note(ev.t_ns, pitch, vel)
    if vel > 0:
        eng.stats.counters.notes_in += 1
        alpha = eng.config.velocity_follow
        eng._vel_ema += alpha * (vel - eng._vel_ema)
    if vel > 0 and eng._armed is not None:
        start_on_note(eng, ev.t_ns)
    perf = eng.performer
    clock = eng.clock
    if eng._k is None or not clock.running:
        perf.live_note(pitch, vel)
        return
    j = math.floor(clock.step_at(ev.t_ns) + 0.5)
    if vel > 0:
        if eng._lead is not None:  # the performer leads: the grid moves toward them
            eng._lead.note_on(ev.t_ns, j, j != eng._offset_step)
        if j != eng._offset_step:  # the performer's timing against the grid (the follow window's input)
            eng._offset_step = j
            eng.follow.observe(ev.t_ns - clock.due(j))
        closed = j == perf.next_step - 1 and j >= eng._run_start
        if closed and hears_current_step(eng.view.policy.meta.mode):
            # Follow timing closed step j before this onset arrived: it belongs to step j all the same.
            eng.view.amend_performer(j, perf.amend(pitch))
            eng._silent = 0  # the performer plays: the next step may answer
            eng.stats.counters.late_amended += 1
            eng.follow.update()  # no answer waits on this note: widen the window now
            return
    late = perf.late
    perf.add(j, pitch, vel, ev.t_ns)
    eng.stats.counters.late_inputs += perf.late - late


def start_on_note(eng: EngineState, t_ns: int) -> None:
    """``start_on_note``: the armed transport starts on this note-on, its first step (0, or where a stop
    left off) due at the note's time; the note then belongs to that step like any onset."""
    clock = eng.clock
    assert isinstance(clock, InternalClock)  # only internal clocks arm (control.arm)
    if eng._armed == Control.CONTINUE:
        clock.cont(t_ns, on_beat=True)  # the performer comes back in on a beat; a stop lands anywhere
    else:
        clock.start(t_ns)
    eng._armed = None
    eng.board.dirty = True
    transport_changed(eng, eng._now())


def finalize_performer(eng: EngineState, upto: int) -> None:
    """Finalize performer steps ``< upto``, push their tokens and count the performer's silence (the
    scalar form of :func:`~liveagent.music.sampling.count_silence`)."""
    perf = eng.performer
    silent = eng._silent
    while perf.next_step < upto:
        j = perf.next_step
        tok = perf.finalize()
        eng.view.push_performer(j, tok)
        silent = silent + 1 if tok == REST else 0
    eng._silent = silent


def transport_changed(eng: EngineState, now: int) -> None:
    """The clock started or stopped: notes off, then a new session (recorded) or the performer's keys off."""
    clock = eng.clock
    eng._epoch = clock.epoch
    eng.release_all()
    eng.steer.settle(eng.view.policy)
    if clock.running:
        start_session(eng, clock.start_step)
        if eng.recorder is not None:
            eng.recorder.tempo(now, clock.bpm)
            eng._recorded_bpm = clock.bpm
            eng.recorder.event(now, "start", step=clock.start_step, bpm=clock.bpm)
    elif eng._k is not None:
        eng._k = None
        eng.performer.notes_off()  # a key held across a stop would be a phantom in the next run
        if eng.recorder is not None:
            eng.recorder.event(now, "stop")
        eng._bar_work = True


def start_session(eng: EngineState, start: int) -> None:
    """A session from step ``start``: the policy's view, the performer's line and the lead start afresh."""
    eng.view.restart(start)
    eng.performer.restart(start)
    if eng._lead is not None:
        eng._lead.restart()
    eng._k = start
    eng._phase = DECIDE
    eng._last_step = start - 1
    eng._beat_k = start
    eng._offset_step = NO_STEP
    eng._run_start = start
    eng._silent = eng.grid.steps_per_bar  # the gate opens on the performer's first note
