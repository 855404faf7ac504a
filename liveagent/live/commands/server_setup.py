"""What the live server checks and builds before it runs: the flags that must agree, the policy (with the
default's fallback), the band's voices, the clock, the MIDI configuration and the automatic lead time; and
:func:`realtime_thread`, the SCHED_FIFO block the engine (and the benchmarks) start in.

Apart from :mod:`~liveagent.live.commands.server`, which wires these into a running machine and shuts it
down, because each is a function of the configuration and the policy alone (no thread, no socket, no port):
a wrong flag fails here with a :class:`~liveagent.live.commands.serve_config.ServeError` saying what to
change, before anything is opened, and the benchmarks load a policy and run real-time the way ``serve``
does without building a server.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator

from liveagent.live.commands.serve_config import CLOCKS, DEFAULT_POLICY, ServeConfig, ServeError
from liveagent.live.engine.clocks import Clock, InternalClock, OscTransportClock
from liveagent.live.engine.midi_clock import MidiClockFollower
from liveagent.live.engine.policy import Policy, PolicyError, load_policy, resolve_policy_path
from liveagent.live.events import ControlEvent
from liveagent.live.io.midi_config import MidiConfig
from liveagent.music.band import BANDS
from liveagent.music.features import hears_current_step
from liveagent.music.tokens import Grid

__all__ = [
    "AUTO_LEAD_MAX_MS",
    "AUTO_LEAD_MIN_MS",
    "auto_lead",
    "check_band",
    "check_clock_flags",
    "make_clock",
    "midi_config",
    "realtime_thread",
    "resolve_policy",
]

log = logging.getLogger(__name__)

AUTO_LEAD_MIN_MS = 5.0
AUTO_LEAD_MAX_MS = 20.0


def check_band(policy: Policy, band: str, channels: tuple[int, ...]) -> tuple[str, ...]:
    """The voices ``--band`` asks for, checked against the policy (a band policy needs ``--band``, and
    ``--band`` a band policy of the same voices) and the channels; ServeError says what to change."""
    spec = policy.meta.band
    if not band:
        if spec is not None:
            raise ServeError(
                f"policy {policy.name} plays a band ({', '.join(spec.voices)}): add --band "
                f"{next((n for n, v in BANDS.items() if v == spec.voices), 'NAME')}"
            )
        return ()
    if band not in BANDS:
        raise ServeError(f"--band must be one of {', '.join(BANDS)}, got {band!r}")
    if spec is None:
        raise ServeError(f"--band {band}: policy {policy.name} plays one line (use --policy band)")
    if spec.voices != BANDS[band]:
        raise ServeError(
            f"--band {band} is {', '.join(BANDS[band])}, policy {policy.name} plays {spec.voices}"
        )
    if len(channels) != len(spec.voices) or len(set(channels)) != len(channels):
        raise ServeError(f"--band-channels needs {len(spec.voices)} distinct channels, got {len(channels)}")
    return spec.voices


def resolve_policy(name: str) -> tuple[Policy, str]:
    """Load the policy; "default" falls back to "rules" (with a warning) when export/default.onnx is absent.

    Returns the policy and a warning text ("" when none). A file that exists but breaks the contract is
    an error, never a silent fallback.
    """
    if name == DEFAULT_POLICY:
        try:
            resolve_policy_path(DEFAULT_POLICY)
        except PolicyError:
            warning = "policy 'default' (export/default.onnx) not found: falling back to 'rules'"
            log.info("%s", warning)
            return load_policy("rules"), warning
    return load_policy(name), ""


@contextlib.contextmanager
def realtime_thread(priority: int) -> Iterator[bool]:
    """Run the block with the calling thread at SCHED_FIFO ``priority`` (threads started inside inherit it).

    Measured on a loaded 2-core machine: a sleep+spin wake-up p99 of ~4 ms under SCHED_OTHER drops to a few
    microseconds under SCHED_FIFO. Yields whether it worked; always restores normal scheduling after.
    """
    ok = False
    if priority > 0 and hasattr(os, "sched_setscheduler"):
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
            ok = True
        except OSError as e:
            log.info("real-time scheduling unavailable (%s): running at normal priority", e)
    try:
        yield ok
    finally:
        if ok:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))


def check_clock_flags(cfg: ServeConfig) -> None:
    """The clock is one we have, and the flags that need an internal clock are not given with another."""
    if cfg.clock not in CLOCKS:
        raise ServeError(f"--clock must be one of {', '.join(CLOCKS)}, got {cfg.clock!r}")
    if cfg.start_on_note and cfg.clock not in ("internal", "osc"):
        raise ServeError(
            f"--start-on-note needs --clock internal or osc (with {cfg.clock}, the master starts)"
        )
    if cfg.follow_tempo and cfg.clock not in ("internal", "osc"):
        raise ServeError(
            f"--follow-tempo needs --clock internal or osc (with {cfg.clock}, the master keeps the tempo)"
        )


def auto_lead(policy: Policy, grid: Grid, bpm: float) -> float:
    """Lead time for ``policy``: time 30 decisions now (cold-start cost: 30 policy calls)."""
    import numpy as np

    from liveagent.live.engine.policy_view import observation_for
    from liveagent.music.sampling import Sampler, range_mask

    obs = observation_for(policy)
    sampler, mask = Sampler(), range_mask(policy.meta.pitch_min, policy.meta.pitch_max)
    times = []
    for _ in range(30):
        t0 = time.perf_counter_ns()
        sampler.sample(policy(obs), mask)
        times.append(time.perf_counter_ns() - t0)
    # A band's decision is one call per voice, in turn (each hears the voices decided before it).
    calls = policy.meta.band.size if policy.meta.band is not None else 1
    p99_ms = calls * float(np.percentile(times[5:], 99)) / 1e6
    step_ms = grid.step_seconds(bpm) * 1e3
    if hears_current_step(policy.meta.mode):
        return AUTO_LEAD_MIN_MS  # follow timing does not decide ahead of the grid
    lead = max(AUTO_LEAD_MIN_MS, 2.0 * p99_ms + 1.0, min(AUTO_LEAD_MAX_MS, step_ms / 4))
    lead = min(lead, step_ms / 2)
    log.info("policy %s decides in up to %.2f ms: lead %.1f ms", policy.name, p99_ms, lead)
    return round(lead, 2)


def make_clock(cfg: ServeConfig, grid: Grid, wake: Callable[[ControlEvent], None]) -> Clock:
    """The clock ``--clock`` names (``wake``: where a Link clock sends the engine's wake-ups)."""
    if not 20.0 <= cfg.bpm <= 400.0:
        raise ServeError(f"--bpm must be in 20..400, got {cfg.bpm}")
    if cfg.clock == "midi":
        return MidiClockFollower(grid, initial_bpm=cfg.bpm)
    if cfg.clock == "osc":
        return OscTransportClock(cfg.bpm, grid)
    if cfg.clock == "link":
        from liveagent.live.engine.link_clock import LinkUnavailableError, make_link_clock

        if cfg.link_bpm is not None and not 20.0 <= cfg.link_bpm <= 999.0:
            raise ServeError(f"--link-bpm must be in 20..999, got {cfg.link_bpm}")
        try:
            return make_link_clock(grid, cfg.bpm, propose_bpm=cfg.link_bpm, wake=wake)
        except (LinkUnavailableError, RuntimeError) as e:
            raise ServeError(str(e)) from e
    return InternalClock(cfg.bpm, grid)


def midi_config(cfg: ServeConfig, band: tuple[str, ...]) -> MidiConfig:
    """The MIDI ports' configuration from the flags (the band's channels only when a band plays)."""
    try:
        return MidiConfig(
            api=cfg.midi_api,
            in_port=cfg.midi_in,
            out_port=cfg.midi_out,
            virtual=cfg.virtual,
            client_name=cfg.midi_name,
            in_channels=cfg.midi_channels,
            out_channel=cfg.midi_out_channel,
            band_channels=cfg.band_channels if band else (),
            thru=cfg.midi_thru,
            clock_out=cfg.midi_clock_out,
            style_cc=cfg.style_cc,
        )
    except ValueError as e:
        raise ServeError(str(e)) from e
