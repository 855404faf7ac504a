"""A step's decision and emission on the engine thread: the policy run (or the fallback token), the silence
gate, and the token played.

Functions of the engine's state (as :mod:`~liveagent.live.engine.control` and
:mod:`~liveagent.live.engine.band_steps` are), split out of loop.py, which decides when a step is decided and
emitted (the two timings); a band's step goes to :mod:`~liveagent.live.engine.band_steps` from here.
"""

from __future__ import annotations

from collections.abc import Callable

from liveagent.live.engine.band_steps import NO_OFFS, decide_band, emit_band
from liveagent.live.engine.performer_input import finalize_performer
from liveagent.live.engine.state import EngineState
from liveagent.music.sampling import resolve_hold
from liveagent.music.tokens import HOLD, ONSET_BASE, REST


def fallback(eng: EngineState) -> int:
    """The token played without a decision: HOLD while a note sounds and the gate is open, else REST
    (for a band, every voice's own, into the step's tokens; the lowest voice's is returned)."""
    closed = eng._silent >= eng._gate_steps
    for v, tr in enumerate(eng.band_trackers):
        eng._band_tokens[v] = HOLD if tr.sounding and not closed else REST
    if closed:
        return REST
    return HOLD if eng.tracker.sounding else REST


def decide_step(eng: EngineState, k: int, *, hears: bool) -> None:
    """Run the policy for step k (having heard the performer's step k when ``hears``)."""
    t0 = eng._now()
    finalize_performer(eng, k + 1 if hears else k)
    if eng.steer.gliding:  # a style change glides over a bar: this step's z, in place
        eng.steer.step(eng.view.policy, k)
    if eng.band_trackers:
        decide_band(eng, k)
        eng.stats.decision_ns.add(eng._now() - t0)
        return
    try:
        tok = int(eng._sampler.sample(eng.view.logits(k), eng.view.mask, out=eng._tok)[0])
        eng.stats.counters.decisions += 1
    except Exception as e:
        eng.stats.counters.policy_errors += 1
        eng._error(f"policy {eng.view.policy.name} failed at step {k}: {type(e).__name__}: {e}", None)
        tok = fallback(eng)
    if eng._silent >= eng._gate_steps:
        # The silence gate (as :func:`~liveagent.music.sampling.silence_gate` in `liveagent eval`): no
        # note before the performer's first nor after a bar of performer silence; a sounding one ends.
        tok = REST
    tok = resolve_hold(tok, bool(eng.tracker.sounding))
    eng._token = tok
    eng.stats.decision_ns.add(eng._now() - t0)


def miss_step(eng: EngineState, k: int, now: int, *, emit: bool) -> None:
    """No decision for step k in time (or a skipped step): the fallback token, counted as a miss; played
    only when ``emit`` (a skipped step is not sent late)."""
    eng.stats.counters.misses += 1
    finalize_performer(eng, k)
    emit_step(eng, k, fallback(eng), now, send=emit)


def emit_step(
    eng: EngineState, k: int, tok: int, now: int, *, send: bool, then: Callable[[int], object] | None = None
) -> int:
    """Play step k's token (note-offs first; a band: every voice's token in ``_band_tokens``) and
    advance; returns the emission time. ``then(t_emit)`` runs right after the sends (the loop sends the
    step's beat there), before the bookkeeping: what the receiver hears at T_k waits for nothing else."""
    if eng.band_trackers:
        return emit_band(eng, k, send=send, then=then)
    tr = eng.tracker
    tr.tick()
    tok = eng._playable(tok, tr)
    t_emit = eng._now()
    offs = NO_OFFS  # shared, never mutated: no list per step
    pitch = vel = -1
    if tok == REST:
        if tr.sounding:
            offs = tr.release_all()
    elif tok >= ONSET_BASE:
        pitch, vel = tok - ONSET_BASE, eng._velocity()
        offs = tr.release_all()
        tr.note_on(pitch, vel)
    if then is not None:
        then(t_emit)
    eng._record_offs(offs, t_emit)
    if pitch >= 0:
        eng.stats.counters.notes_out += 1
        if eng.recorder is not None:
            eng.recorder.agent_note(t_emit, pitch, vel)
    if send:
        eng.stats.lateness_ns.add(t_emit - eng.clock.open_time(k))
    eng.view.push_agent(k, tok)
    return eng._advance(k, t_emit)
