"""A band's step on the engine thread: every voice decided in the band's order, then all emitted.

Functions of the engine's state (as :mod:`~liveagent.live.engine.control` is), called by the loop in place of
the solo decision and emission when the policy plays a band (:mod:`~liveagent.live.engine.band`). The step's
tokens live in ``_band_tokens`` (top-down, preallocated): a voice decided earlier in the step is heard by the
ones after it, and all are emitted together.
"""

from __future__ import annotations

from collections.abc import Callable

from liveagent.live.engine.state import EngineState
from liveagent.music.sampling import resolve_hold
from liveagent.music.tokens import HOLD, ONSET_BASE, REST

NO_OFFS: list[int] = []
"""No note-offs for a voice this step (shared, never mutated)."""


def decide_band(eng: EngineState, k: int) -> None:
    """Every voice of the band for step k, in the band's order: each hears the voices decided before it in
    this step. A voice whose policy call fails holds or rests (counted, reported)."""
    view = eng.view
    band = view.band
    assert band is not None
    tokens = eng._band_tokens
    closed = eng._silent >= eng._gate_steps
    failed = False
    for v in band.order_index:
        tr = eng.band_trackers[v]
        try:
            tok = int(
                eng._sampler.sample(view.band_logits(k, v, tokens), view.band_masks[v], out=eng._tok)[0]
            )
        except Exception as e:  # any policy failure: the voice holds or rests, the band plays on
            failed = True
            eng._error(
                f"policy {view.policy.name} failed at step {k} ({band.voices[v]}): {type(e).__name__}: {e}",
                None,
            )
            tok = HOLD if tr.sounding else REST
        if closed:
            tok = REST  # the silence gate, as for a solo line
        tokens[v] = resolve_hold(tok, bool(tr.sounding))
    if failed:
        eng.stats.counters.policy_errors += 1
    else:
        eng.stats.counters.decisions += 1
    eng._token = int(tokens[-1])


def emit_band(eng: EngineState, k: int, *, send: bool, then: Callable[[int], object] | None = None) -> int:
    """Play step k's token of every voice (note-offs first, each on its own route) and advance. Every
    voice's token is resolved first and every voice sent in one pass, the recording after (``then(t_emit)``
    between the two, as in :func:`~liveagent.live.engine.steps.emit_step`): the voices leave together."""
    tokens = eng._band_tokens
    trackers = eng.band_trackers
    for v, tr in enumerate(trackers):
        tr.tick()
        tokens[v] = eng._playable(int(tokens[v]), tr)
    vel = eng._velocity()
    t_emit = eng._now()
    offs = eng._band_offs
    for v, tr in enumerate(trackers):
        tok = int(tokens[v])
        if tok == REST:
            offs[v] = tr.release_all() if tr.sounding else NO_OFFS
        elif tok >= ONSET_BASE:
            offs[v] = tr.release_all()
            tr.note_on(tok - ONSET_BASE, vel)
        else:
            offs[v] = NO_OFFS
    if then is not None:
        then(t_emit)
    for v in range(len(trackers)):
        eng._record_offs(offs[v], t_emit, voice=v)
        tok = int(tokens[v])
        if tok >= ONSET_BASE:
            eng.stats.counters.notes_out += 1
            if eng.recorder is not None:
                eng.recorder.agent_note(t_emit, tok - ONSET_BASE, vel, voice=v)
    if send:
        eng.stats.lateness_ns.add(t_emit - eng.clock.open_time(k))
    eng.view.push_band(k, tokens)
    return eng._advance(k, t_emit)
