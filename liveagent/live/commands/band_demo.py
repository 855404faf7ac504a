"""`liveagent demo --band satb`: what the band's demo writes once the melody has been played.

The session itself is the solo demo's (`demo.py`: a real `serve --band satb`, the melody sent over OSC, an
independent receiver): this module turns what the receiver heard into the band's files. Each voice is read
from its own address, ``/liveagent/out/VOICE/note`` (the v1 ``/liveagent/out/note`` carries a copy of the
bass for v1 clients and is not counted again), into ``duet.mid`` (the performer's soprano, alto, tenor and
bass: a track, channel and string instrument each), ``pianoroll.png`` (a colour per voice), ``duet.wav``
(FluidSynth, when installed) and ``timing.json``: the emission lateness at the receiver of every voice and
of all of them with the beats (each note and beat is meant for a grid point), and the server's misses.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from liveagent.music.tokens import Grid, Note

log = logging.getLogger(__name__)

VOICES: tuple[str, ...] = ("alto", "tenor", "bass")
"""The band's voices, top-down (voice index 0 = alto)."""
BANDS: dict[str, tuple[str, ...]] = {"satb": VOICES}
"""``--band`` names: the voices under the performer's soprano."""

Message = tuple[int, str, list[Any]]
"""A received OSC message: (arrival ns on perf_counter_ns, address, arguments)."""


def voice_address(voice: str) -> str:
    """The OSC address a band voice's notes arrive on: ``/liveagent/out/VOICE/note i:pitch i:velocity``."""
    return f"/liveagent/out/{voice}/note"


def voice_events(
    messages: Iterable[Message], t0_ns: int, step_ns: float, until: int, voices: Sequence[str] = VOICES
) -> dict[str, list[tuple[int, int, int]]]:
    """Each voice's received (step, pitch, velocity) note events (velocity 0 = off), before ``until``."""
    by_address = {voice_address(v): v for v in voices}
    out: dict[str, list[tuple[int, int, int]]] = {v: [] for v in voices}
    for t, address, params in messages:
        voice = by_address.get(address)
        if voice is not None and t < until and len(params) == 2:
            out[voice].append((round((t - t0_ns) / step_ns), int(params[0]), int(params[1])))
    return out


def voice_emissions(
    messages: Iterable[Message], until: int, voices: Sequence[str] = VOICES
) -> dict[str, list[int]]:
    """Each voice's emission arrival times before ``until``: every note message but the note-off repeats of
    the safety net (a note-off for a pitch whose last message in that voice was already a note-off)."""
    by_address = {voice_address(v): v for v in voices}
    out: dict[str, list[int]] = {v: [] for v in voices}
    last_vel: dict[tuple[str, Any], Any] = {}
    for t, address, params in messages:
        voice = by_address.get(address)
        if voice is None or t >= until or len(params) != 2:
            continue
        key = (voice, params[0])
        repeat = params[1] == 0 and last_vel.get(key) == 0
        last_vel[key] = params[1]
        if not repeat:
            out[voice].append(t)
    return out


@dataclass(frozen=True)
class BandRun:
    """What the demo's session left: the melody, the grid the server announced, what the receiver heard
    and the server's last status."""

    out: Path
    melody_name: str
    melody: Sequence[Note]
    grid: Grid
    count_in: int
    bpm: float
    policy: str | None
    band: str
    messages: Sequence[Message]
    t0_ns: int
    step_ns: float
    t_stop: int
    end_step: int
    cold_start_s: float
    sent_lateness_ns: Sequence[int]
    final: dict[str, Any]


def _num(v: object) -> str:
    return f"{v:.0f}" if isinstance(v, int | float) else str(v)


def _render(midi_path: Path, wav_path: Path) -> tuple[str | None, str]:
    """duet.wav through FluidSynth with the file's own string quartet; a missing FluidSynth or soundfont, or
    a failed rendering, is said and never fails the demo."""
    from liveagent.live.commands.render import (
        SOPRANO_PROGRAM,
        RenderError,
        RenderUnavailableError,
        render_wav,
    )

    try:
        rms = render_wav(midi_path, wav_path, performer=SOPRANO_PROGRAM)
    except RenderUnavailableError as e:
        return None, f"no duet.wav: {e}"
    except RenderError as e:
        log.warning("rendering the band failed: %s", e)
        return None, f"no duet.wav: {e}"
    instruments = "soprano (performer): violin, alto: viola, tenor: cello, bass: contrabass"
    return str(wav_path), f"{wav_path}  ({instruments}; RMS {rms:.3f})"


def finish_band(run: BandRun) -> int:
    """Write the band's duet, piano roll, sound and timing report into ``run.out`` and print a summary."""
    from liveagent.live.commands.duet import agent_notes, plot_band_piano_roll, write_band_midi
    from liveagent.live.io.osc import OUT_BEAT
    from liveagent.live.io.receiver import follow_window_ms, lateness_ns, summarize_us

    voices = BANDS[run.band]
    final = run.final
    events = voice_events(run.messages, run.t0_ns, run.step_ns, run.t_stop, voices)
    parts = {v: agent_notes(events[v]) for v in voices}
    soprano = [Note(n.start + run.count_in, n.length, n.pitch, n.velocity) for n in run.melody]
    out = run.out
    midi_path = write_band_midi(out / "duet.mid", soprano, parts, run.bpm, run.grid)
    title = f"{run.melody_name} · band {run.band} · policy {run.policy} · {run.bpm:g} BPM"
    png_path = plot_band_piano_roll(out / "pianoroll.png", soprano, parts, run.grid, title=title)
    wav_path, sound_note = _render(midi_path, out / "duet.wav")
    emitted = voice_emissions(run.messages, run.t_stop, voices)
    beats = [t for t, a, _ in run.messages if a == OUT_BEAT and t < run.t_stop]
    by_voice = {v: summarize_us(lateness_ns(emitted[v], run.t0_ns, run.step_ns)) for v in voices}
    every = [t for v in voices for t in emitted[v]] + beats
    overall = summarize_us(lateness_ns(every, run.t0_ns, run.step_ns))
    report = {
        "melody": run.melody_name,
        "band": run.band,
        "voices": list(voices),
        "policy": run.policy,
        "bpm": run.bpm,
        "bars": run.end_step // run.grid.steps_per_bar,
        "cold_start_s": round(run.cold_start_s, 3),
        "performer_notes": len(run.melody),
        "voice_notes": {v: len(parts[v]) for v in voices},
        "beats_received": len(beats),
        "emission_lateness_at_receiver_us": overall,
        "emission_lateness_by_voice_us": by_voice,
        "performer_send_lateness_us": summarize_us(np.asarray(run.sent_lateness_ns, dtype=np.float64)),
        "misses": final.get("misses"),
        "steps": final.get("steps"),
        "decision_latency_us": {q: final.get(f"decision_{q}_us") for q in ("p50", "p99", "max")},
        "server_lateness_us": {q: final.get(f"lateness_{q}_us") for q in ("p50", "p99")},
        "timing": final.get("timing"),
        "answer_latency_us": {q: final.get(f"answer_{q}_us") for q in ("p50", "p95", "p99", "max")},
        "late_amended": final.get("late_amended"),
        "answered_pct": round(float(final.get("answered_pct", 0.0)), 1),
        "follow_window_ms": follow_window_ms(final),
        "input_errors": final.get("input_errors"),
        "files": {"duet": str(midi_path), "pianoroll": str(png_path), "sound": wav_path},
    }
    (out / "timing.json").write_text(json.dumps(report, indent=2) + "\n")
    counts = ", ".join(f"{len(parts[v])} {v}" for v in voices)
    print()  # the monitor leaves the cursor at the end of its panel
    print(f"duet:       {midi_path}  ({len(run.melody)} soprano (performer) notes, {counts})")
    print(f"piano roll: {png_path}")
    print(f"sound:      {sound_note}")
    print(f"timing:     {out / 'timing.json'}")
    print(
        f"emission lateness at the receiver: p50 {overall['p50']:.0f} us, p99 {overall['p99']:.0f} us, "
        f"max {overall['max']:.0f} us over {overall['n']} emissions; misses {final.get('misses')}; "
        f"decision latency p50 {_num(final.get('decision_p50_us'))} us, "
        f"p99 {_num(final.get('decision_p99_us'))} us"
    )
    for v in voices:
        s = by_voice[v]
        print(f"  {v:<6} p50 {s['p50']:.0f} us, p99 {s['p99']:.0f} us, max {s['max']:.0f} us over {s['n']}")
    return 0
