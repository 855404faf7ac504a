"""The engine's control events and policy swaps: mute, panic, temperature, status requests, and policies
loaded off the engine thread then swapped in at a bar line.

Functions of the :class:`~liveagent.live.engine.loop.Engine`'s state, split out of engine.py and called only
on the engine thread (the one that owns the state), except the loader thread :func:`start_load` starts, which
only loads and posts the result back through the engine's queue as a
:class:`~liveagent.live.engine.config.PolicyLoaded`.
"""

from __future__ import annotations

import logging
import math
import threading
from typing import TYPE_CHECKING

from liveagent.live.engine.band import check_swap
from liveagent.live.engine.clocks import InternalClock
from liveagent.live.engine.config import PolicyLoaded
from liveagent.live.engine.policy_contract import PolicyError
from liveagent.live.engine.policy_view import HISTORY, check_grid, load_for_swap, loader_thread_main
from liveagent.live.events import Control, ControlEvent, InputError
from liveagent.live.style_rules import StyleError, StyleRequest

if TYPE_CHECKING:
    from liveagent.live.engine.state import EngineState

log = logging.getLogger(__name__)


def on_control(eng: EngineState, ev: ControlEvent) -> None:
    """A control event: the clock's first (transport), then the engine's own."""
    kind = ev.kind
    if kind == Control.STOP or kind == Control.PERFORMER_NOTES_OFF:
        performer_notes_off(eng, ev.t_ns)
        if kind == Control.PERFORMER_NOTES_OFF:
            return
    clock = eng.clock
    if eng.config.start_on_note and isinstance(clock, InternalClock) and arm(eng, clock, kind):
        return
    if eng.clock.handle(ev):
        # A tempo that applies at once is recorded now; one for the next bar, at that bar (housekeeping).
        changed = abs(eng.clock.bpm - eng._recorded_bpm) >= 0.25
        if kind == Control.TEMPO and eng.recorder is not None and changed:
            eng.recorder.tempo(ev.t_ns, eng.clock.bpm)
            eng._recorded_bpm = round(eng.clock.bpm, 2)
        return
    if kind == Control.TEMPERATURE:
        t = ev.value
        if not (math.isfinite(t) and 0.0 <= t <= 10.0):
            eng._input_error(InputError(ev.t_ns, "control", f"temperature out of range: {t}", ev.reply_to))
            return
        eng._sampler = eng._sampler.with_temperature(float(t))
    elif kind == Control.FOLLOW:
        try:
            eng.follow.fix(ev.value)
        except ValueError as e:
            eng._input_error(InputError(ev.t_ns, "control", str(e), ev.reply_to))
            return
        if eng.recorder is not None:
            fixed = eng.follow.fixed_ns
            eng.recorder.event(ev.t_ns, "follow", window_ms=0.0 if fixed is None else round(fixed / 1e6, 2))
    elif kind == Control.MUTE:
        eng.muted = bool(ev.value)
        if eng.muted:
            eng.release_all()
    elif kind == Control.PANIC:
        eng.release_all()
        eng.sink.all_notes_off()
        eng.performer.clear_held()
    elif kind == Control.STYLE or kind == Control.MOOD:
        on_style(eng, ev)
    elif kind == Control.POLICY:
        start_load(eng, ev.text, ev.reply_to)
    elif kind == Control.STATUS:  # answered from the next snapshot, built in slack time
        eng.board.request_reply(ev.reply_to)
    elif kind == Control.SHUTDOWN:
        eng._shutdown = True
    elif kind in (Control.TEMPO, Control.BEAT, Control.CLOCK_TICK, Control.SONG_POSITION):
        pass  # transport events this clock does not follow (e.g. /tempo while slaved to MIDI clock)
    else:  # START/STOP/CONTINUE are every clock's business; anything else is new to this engine
        log.debug("ignored control %s", kind)


def arm(eng: EngineState, clock: InternalClock, kind: Control) -> bool:
    """``start_on_note``: a start (or a continue while stopped) arms the transport; the performer's first
    note-on starts it (:func:`~liveagent.live.engine.performer_input.on_note`). A stop disarms (and stops).
    Returns whether the event was consumed here."""
    if kind == Control.STOP:
        eng._armed = None
        return False  # the clock stops as usual
    if kind == Control.START or (kind == Control.CONTINUE and not clock.running):
        if clock.running:
            clock.stop()  # a start while playing: stop, wait for the performer's next first note
        eng._armed = kind
        return True
    return False


def on_style(eng: EngineState, ev: ControlEvent) -> None:
    """``/liveagent/style``, ``/liveagent/mood``, the MIDI pad: validated against the policy playing
    (:func:`~liveagent.live.engine.style.resolve`; a bad one is a counted input error, nothing changes), then
    a glide over one bar from the next step to decide (at once while stopped)."""
    if ev.kind == Control.MOOD:
        request = StyleRequest(mood=ev.text)
    else:
        request = StyleRequest(values=ev.values)
    running = eng._k is not None and eng.clock.running
    policy = eng.view.policy
    try:
        eng.steer.change(policy, request, eng._k if running else None, eng.grid.steps_per_bar)
    except StyleError as e:
        eng._input_error(InputError(ev.t_ns, "style", str(e), ev.reply_to))
        return
    if eng.recorder is not None:
        eng.recorder.event(ev.t_ns, "style", mood=request.label(), values=list(request.values))


def performer_notes_off(eng: EngineState, t_ns: int) -> None:
    """Release the performer's held keys (All Notes Off, All Sound Off, Reset, Stop): at once while
    stopped, else at the step the message arrived in, after the notes that came before it."""
    clock = eng.clock
    if eng._k is None or not clock.running:
        eng.performer.notes_off()
    else:
        eng.performer.notes_off(math.floor(clock.step_at(t_ns) + 0.5))


def start_load(eng: EngineState, name: str, reply_to: tuple[str, int] | None) -> None:
    """Load a policy on a "policy-loader" thread (or inline, ``load_in_thread=False``); the result comes
    back through the engine's queue as a :class:`PolicyLoaded`.

    One load at a time: a flood of ``/policy`` messages must not start a thread each (every load competes
    with the engine for the GIL). While one is in flight the newest request waits; older waiting ones are
    dropped with an error to their sender.
    """
    if eng._loading:
        if eng._queued_load is not None:
            dropped, dropped_to = eng._queued_load
            eng._error(f"policy {dropped!r} superseded by {name!r} before it could load", dropped_to)
        eng._queued_load = (name, reply_to)
        return
    eng._loading = True
    args = (eng.policy_loader, name, reply_to, eng._queue.put, eng._now)
    if eng.config.load_in_thread:
        threading.Thread(target=loader_thread_main, args=args, name="policy-loader", daemon=True).start()
    else:
        load_for_swap(*args)


def on_loaded(eng: EngineState, ev: PolicyLoaded) -> None:
    """A loaded policy: checked against the grid and config, then pending until the next bar line (at
    once while stopped). A policy that fails a check is reported and the current one kept."""
    if ev.from_loader:
        eng._loading = False
        if eng._queued_load is not None:  # the newest request that waited for this load
            name, reply_to = eng._queued_load
            eng._queued_load = None
            start_load(eng, name, reply_to)
    current = eng.view.policy.name
    if ev.policy is None:
        eng.stats.counters.swaps_refused += 1
        eng._error(f"policy {ev.name!r} not loaded, keeping {current}: {ev.error}", ev.reply_to)
        return
    try:
        check_grid(ev.policy, eng.grid)
        check_swap(eng.view.policy, ev.policy)
        eng.view.mask_for(ev.policy)
        eng.view.band_masks_for(ev.policy)
    except PolicyError as e:
        eng.stats.counters.swaps_refused += 1
        eng._error(f"policy {ev.name!r} not swapped in, keeping {current}: {e}", ev.reply_to)
        return
    if ev.policy.meta.window > HISTORY // 2:
        eng.stats.counters.swaps_refused += 1
        eng._error(f"policy {ev.name!r} window {ev.policy.meta.window} too long for the engine", ev.reply_to)
        return
    eng._pending_policy = ev.policy
    if eng._k is None or not eng.clock.running:
        swap_pending(eng, eng._now())


def swap_pending(eng: EngineState, now: int) -> None:
    """Swap in the pending policy at a bar line: notes off first, then rebuild the observation."""
    policy = eng._pending_policy
    if policy is None:
        return
    eng._pending_policy = None
    eng.release_all()
    old = eng.view.policy.name
    eng.view.swap(policy, eng._k, eng.performer.next_step)
    eng.stats.counters.swaps += 1
    style_note = eng.steer.bind(policy)  # the style asked for, re-applied to the new policy (or ignored)
    if style_note:
        log.info("policy %s: style %s", policy.name, style_note)
    log.info("policy %s -> %s", old, policy.name)
    if eng.recorder is not None:
        eng.recorder.event(now, "policy", name=policy.name, previous=old, step=eng._k)
