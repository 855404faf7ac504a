"""`liveagent bench --band satb`: the band's live figures beside the solo default's, in one run.

A band step is three decisions in a row (bass, tenor, alto, each hearing the voices decided before it),
so everything the solo bench measures is measured again for the band, side by side:

- decision latency of a whole band step (fill + policy + sampling per voice, through the engine's own
  :class:`~liveagent.live.engine.policy_view.PolicyView`) against one solo decision, in this process;
- emission lateness at an independent receiver listening on every voice's address
  (``/liveagent/out/VOICE/note``) of a real ``serve --band satb``, per voice and pooled, with a performer on
  the grid; follow timing answers the performer, so the figure includes the chord grace
  (``--follow-chord-ms``, 3 ms) and the three decisions: each run is repeated with the grace off, so the
  engine + I/O part is visible on its own;
- the most bands one process holds at the tempo without a miss (each an Engine playing the band policy,
  a performer's melody fed to every engine: a band rests under a silent soprano), against the most solo
  engines under the same performer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from liveagent.live.commands.bench import BenchConfig, _lateness_run, bench_decision, bench_floor
from liveagent.live.io.osc_out import band_note_address
from liveagent.live.io.receiver import OscReceiver, lateness_ns, summarize_us

CHORD0 = ("--follow-chord-ms", "0")
"""The serve flags of the runs without the chord grace."""


def note_times(rx: OscReceiver, address: str, t_start: int, t_end: int) -> list[int]:
    """Arrival times of the note messages on ``address`` inside ``[t_start, t_end]``, without the repeats
    of the note-off safety net (a note-off for a pitch whose last message there was a note-off), as
    :func:`~liveagent.live.io.receiver.emission_times` does for the v1 address."""
    out: list[int] = []
    last_vel: dict[Any, Any] = {}
    for t, a, p in list(rx.messages):
        if a != address or len(p) != 2:
            continue
        repeat = p[1] == 0 and last_vel.get(p[0]) == 0
        last_vel[p[0]] = p[1]
        if not repeat and t_start <= t <= t_end:
            out.append(t)
    return out


def voices_lateness(
    rx: OscReceiver, voices: tuple[str, ...], t_start: int, t_end: int, t0: int, step: float
) -> dict[str, Any]:
    """Lateness (arrival - T_k) of each voice's notes on its own address, and of all voices pooled."""
    per: dict[str, Any] = {}
    pooled: list[int] = []
    for v in voices:
        times = note_times(rx, band_note_address(v), t_start, t_end)
        per[v] = summarize_us(lateness_ns(times, t0, step))
        pooled += times
    return {"voices_lateness_us": per, "band_lateness_us": summarize_us(lateness_ns(pooled, t0, step))}


# ---------------------------------------------------------------------------------------------- decision


def band_decision(cfg: BenchConfig) -> dict[str, Any]:
    """A whole band step (every voice in the band's order) ``cfg.decisions`` times, and the solo policy's
    decision as `bench --only decision` measures it, in the same run."""
    from liveagent.live.commands.server_setup import realtime_thread, resolve_policy
    from liveagent.live.engine.config import EngineConfig
    from liveagent.live.engine.policy_view import PolicyView
    from liveagent.music.sampling import Sampler, SamplerConfig
    from liveagent.music.tokens import Grid

    policy, _ = resolve_policy(cfg.band_policy)
    m = policy.meta
    if m.band is None:
        raise ValueError(f"policy {policy.name} plays one line, not a band")
    ecfg = EngineConfig()
    view = PolicyView(policy, Grid(m.steps_per_beat, m.beats_per_bar), ecfg)
    view.restart(0)
    sampler = Sampler(SamplerConfig(ecfg.temperature, ecfg.top_p, ecfg.seed))
    n = cfg.decisions
    perf = np.random.default_rng(0).integers(0, 130, size=n + 64)
    total = np.empty(n, dtype=np.int64)
    per_voice = np.empty((m.band.size, n), dtype=np.int64)
    _band_loop(view, sampler, perf[:50], np.empty(50, dtype=np.int64), np.empty((m.band.size, 50), np.int64))
    view.restart(0)
    with realtime_thread(cfg.rt_priority) as rt:  # as `serve` runs its engine thread
        notes = _band_loop(view, sampler, perf[:n], total, per_voice)
    summary = summarize_us(total.astype(np.float64))
    band: dict[str, Any] = {
        "policy": policy.name,
        "voices": list(m.band.voices),
        "order": list(m.band.order),
        "realtime": rt,
        "onsets_per_voice": dict(zip(m.band.voices, notes, strict=True)),
        **summary,
        "per_voice_us": {
            v: summarize_us(per_voice[i].astype(np.float64)) for i, v in enumerate(m.band.voices)
        },
    }
    solo = bench_decision(cfg)
    return {"band": band, "solo": solo, "band_over_solo_p50": _ratio(summary["p50"], solo["p50"])}


def _band_loop(view: Any, sampler: Any, perf: Any, total: Any, per_voice: Any) -> list[int]:
    """The engine's ``decide_band`` (follow timing: step k heard first; anticipate: after) then
    ``push_band``, timed per voice; returns the onsets each voice played (the policy must actually play
    for the figure to mean much)."""
    from liveagent.music.features import hears_current_step
    from liveagent.music.sampling import resolve_hold
    from liveagent.music.tokens import ONSET_BASE, REST

    band = view.band
    size = band.size
    order = band.order_index
    tokens = np.zeros(size, dtype=np.int64)
    tok_buf = np.empty(1, dtype=np.int64)
    sounding = [False] * size
    onsets = [0] * size
    hears = hears_current_step(view.policy.meta.mode)
    for k in range(total.shape[0]):
        if hears:
            view.push_performer(k, int(perf[k]))
        t0 = time.perf_counter_ns()
        t = t0
        for v in order:
            tok = int(sampler.sample(view.band_logits(k, v, tokens), view.band_masks[v], out=tok_buf)[0])
            tokens[v] = resolve_hold(tok, sounding[v])
            t1 = time.perf_counter_ns()
            per_voice[v, k] = t1 - t
            t = t1
        total[k] = t - t0
        for v in range(size):
            tok = int(tokens[v])
            if tok >= ONSET_BASE:
                sounding[v] = True
                onsets[v] += 1
            elif tok == REST:
                sounding[v] = False
        view.push_band(k, tokens)
        if not hears:
            view.push_performer(k, int(perf[k]))
    return onsets


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b > 0 else None


# ---------------------------------------------------------------------------------------------- lateness


def band_osc(cfg: BenchConfig) -> dict[str, Any]:
    """Receiver lateness of a real ``serve --band`` and of the solo policy's serve, each with the chord
    grace as configured and without it (``--follow-chord-ms 0``)."""
    band_cfg = replace(cfg, policy=cfg.band_policy, serve_args=(*cfg.serve_args, "--band", cfg.band))
    voices = _voices(cfg.band)

    def heard(rx: OscReceiver, t_start: int, t_end: int, t0: int, step: float) -> dict[str, Any]:
        return voices_lateness(rx, voices, t_start, t_end, t0, step)

    runs: dict[str, Any] = {
        "band": _lateness_run(band_cfg, extra=heard),
        "band_chord0": _lateness_run(band_cfg, *CHORD0, extra=heard),
        "solo": _lateness_run(cfg),
        "solo_chord0": _lateness_run(cfg, *CHORD0),
    }
    runs["target_band_p99_us"] = 500.0
    return runs


def _voices(band: str) -> tuple[str, ...]:
    from liveagent.music.band import BANDS

    if band not in BANDS:
        raise ValueError(f"unknown band {band!r} (known: {', '.join(BANDS)})")
    return tuple(BANDS[band])


# ---------------------------------------------------------------------------------------------- agents


def band_agents(cfg: BenchConfig) -> dict[str, Any]:
    """The most bands (each an Engine playing the band policy, three voices) one process holds at the
    tempo with zero misses, and the most solo engines; both with a performer, so that the bands play."""
    from liveagent.live.commands.bench_agents import max_agents

    kw: dict[str, Any] = {"bpm": cfg.bpm, "seconds": cfg.agents_s, "limit": cfg.max_agents, "performer": True}
    return {"band": max_agents(cfg.band_policy, **kw), "solo": max_agents(cfg.policy, **kw)}


BAND_SECTIONS: dict[str, Callable[[BenchConfig], dict[str, Any]]] = {
    "decision": band_decision,
    "osc": band_osc,
    "floor": bench_floor,
    "agents": band_agents,
}
"""The sections of ``bench --band`` (``--only`` picks among them)."""
