"""The simulated performer of :mod:`liveagent.env.serve_eval`, and the lines rebuilt from what was heard.

Pure functions, no sockets: a :class:`PerformerTiming` (offset, jitter, wrong notes, all seeded) turns a
performer token line into timed note events (:func:`plan_performance`); the receiver's arrivals are turned
back into token lines on the server's grid (:func:`beat_anchor`, :func:`rebuild_line`, :func:`played_line`)
and paired into answer latencies (:func:`answer_latencies_ns`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from liveagent.music.tokens import (
    HOLD,
    N_PITCHES,
    ONSET_BASE,
    REST,
    Grid,
    Note,
    notes_to_tokens,
    tokens_to_notes,
)

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

WRONG_INTERVALS = (-2, -1, 1, 2)
"""A wrong note is the right one moved by one of these (semitones), drawn uniformly."""
PERFORMER_VELOCITY = 90
MIN_NOTE_NS = 20_000_000
"""A jittered note-off comes at least this long (or half the note, if shorter) after its own onset."""
ONSET_GAP_NS = 1_000_000
"""A jittered onset comes at least this long after the previous note's onset (the line stays in order)."""


# -- the performer's timing -------------------------------------------------------------------------


@dataclass(frozen=True)
class PerformerTiming:
    """How a simulated human performer deviates from the grid (all seeded, reproducible)."""

    offset_ms: float = 0.0
    """Constant lateness of every onset and note-off (negative: early)."""
    jitter_sd_ms: float = 0.0
    """Standard deviation of the normal jitter added to each onset and, independently, to its note-off."""
    wrong_pct: float = 0.0
    """Share of notes (percent) replaced by a wrong pitch (the right one moved by -2, -1, +1 or +2)."""
    seed: int = 0
    """Seed of the jitter and wrong-note draws (each piece draws from ``(seed, piece index)``)."""
    name: str = "custom"
    """The condition's name in the table."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.offset_ms) and abs(self.offset_ms) <= 1000.0):
            raise ValueError(f"offset_ms must be within +-1000, got {self.offset_ms}")
        if not (math.isfinite(self.jitter_sd_ms) and 0.0 <= self.jitter_sd_ms <= 1000.0):
            raise ValueError(f"jitter_sd_ms must be in 0..1000, got {self.jitter_sd_ms}")
        if not (math.isfinite(self.wrong_pct) and 0.0 <= self.wrong_pct <= 100.0):
            raise ValueError(f"wrong_pct must be in 0..100, got {self.wrong_pct}")


PRESETS: dict[str, PerformerTiming] = {
    "grid": PerformerTiming(name="grid"),
    "jitter15": PerformerTiming(jitter_sd_ms=15.0, name="jitter15"),
    "late10_wrong5": PerformerTiming(offset_ms=10.0, wrong_pct=5.0, name="late10_wrong5"),
}
"""The named conditions: on the grid; normal jitter (sd 15 ms, inside the 30-50 ms asynchrony of ensemble
players, Rasch 1979); 10 ms late with 5 % wrong notes."""

_SPEC_KEYS = {"offset": "offset_ms", "jitter": "jitter_sd_ms", "wrong": "wrong_pct", "seed": "seed"}


def timing_from_spec(spec: str) -> PerformerTiming:
    """A preset name (:data:`PRESETS`) or ``offset=MS,jitter=SD_MS,wrong=PCT[,seed=N]`` (any subset).

    Raises ``ValueError`` with the accepted spellings.
    """
    if spec in PRESETS:
        return PRESETS[spec]
    values: dict[str, Any] = {}
    for part in spec.split(","):
        key, sep, value = part.partition("=")
        field_name = _SPEC_KEYS.get(key.strip())
        if not sep or field_name is None:
            raise ValueError(
                f"condition {spec!r}: not one of {', '.join(PRESETS)} "
                "nor offset=MS,jitter=SD_MS,wrong=PCT,seed=N"
            )
        try:
            values[field_name] = int(value) if field_name == "seed" else float(value)
        except ValueError:
            raise ValueError(f"condition {spec!r}: {key.strip()} needs a number, got {value!r}") from None
    return PerformerTiming(name=spec, **values)


@dataclass(frozen=True)
class PerformerEvent:
    """One message the performer sends: a note-on (velocity > 0) or its note-off (velocity 0)."""

    t_ns: int
    """When to send it, relative to the due time of the piece's step 0 (offset and jitter included)."""
    step: int
    """The grid step it belongs to (the note's start, or its end for a note-off)."""
    pitch: int
    velocity: int
    note: int
    """Index of the note in the piece's line."""


@dataclass(frozen=True)
class PerformerPlan:
    """A piece as this performer plays it."""

    notes: list[Note]
    """The notes played (wrong pitches in), on the nominal grid."""
    events: list[PerformerEvent]
    """Every message in send order (by time; a note-off before a note-on sent at the same time)."""
    wrong: int
    """How many notes were replaced by a wrong pitch."""


def _wrong_pitch(pitch: int, rng: np.random.Generator) -> int:
    delta = int(rng.choice(WRONG_INTERVALS))
    moved = pitch + delta
    return moved if 0 <= moved < N_PITCHES else pitch - delta


def plan_performance(
    tokens: npt.ArrayLike,
    timing: PerformerTiming,
    step_ns: float,
    *,
    piece_index: int = 0,
    velocity: int = PERFORMER_VELOCITY,
) -> PerformerPlan:
    """The messages a performer with ``timing`` sends for the token line ``tokens`` (seeded per piece).

    Each note's onset is due at ``start * step_ns + offset + N(0, sd)`` and its note-off at
    ``end * step_ns + offset + N(0, sd)`` (independent draws). Two guards keep the line a line, and only
    bite when the jitter is a large part of a step: an onset comes at least :data:`ONSET_GAP_NS` after the
    previous one, and a note-off at least :data:`MIN_NOTE_NS` (or half the note) after its own onset and
    no later than the next note's onset (a legato player lifts the old key as the new one goes down;
    sending it later would re-sound or cut the next note of the same pitch).
    """
    notes = tokens_to_notes(tokens, velocity)
    n = len(notes)
    # Two independent streams from (seed, piece): the jitter pattern does not depend on the share of
    # wrong notes, nor the wrong notes on the jitter (conditions with one seed differ only where they should).
    seq = np.random.SeedSequence([timing.seed, piece_index])
    rng_wrong, rng_time = (np.random.default_rng(s) for s in seq.spawn(2))
    wrong_flags = rng_wrong.random(n) < timing.wrong_pct / 100.0
    played: list[Note] = []
    for i, nt in enumerate(notes):
        pitch = _wrong_pitch(nt.pitch, rng_wrong) if wrong_flags[i] else nt.pitch
        played.append(Note(nt.start, nt.length, pitch, nt.velocity))
    sd_ns = timing.jitter_sd_ms * 1e6
    off_ns = timing.offset_ms * 1e6
    j_on = rng_time.normal(0.0, 1.0, n) * sd_ns
    j_off = rng_time.normal(0.0, 1.0, n) * sd_ns
    on_t = np.array([nt.start * step_ns for nt in played], dtype=np.float64) + off_ns + j_on
    for i in range(1, n):
        on_t[i] = max(on_t[i], on_t[i - 1] + ONSET_GAP_NS)
    events: list[PerformerEvent] = []
    for i, nt in enumerate(played):
        end = nt.start + nt.length
        off_t = end * step_ns + off_ns + j_off[i]
        lo = on_t[i] + min(MIN_NOTE_NS, 0.5 * nt.length * step_ns)
        hi = on_t[i + 1] if i + 1 < n else math.inf
        off_t = min(max(off_t, lo), hi)
        events.append(PerformerEvent(round(on_t[i]), nt.start, nt.pitch, nt.velocity, i))
        events.append(PerformerEvent(round(off_t), end, nt.pitch, 0, i))
    events.sort(key=lambda e: (e.t_ns, e.velocity > 0, e.note))
    return PerformerPlan(played, events, int(wrong_flags.sum()))


def nearest_step(t_ns: float, step_ns: float) -> int:
    """The step nearest to ``t_ns`` (relative to step 0), as the engine quantizes performer onsets."""
    return math.floor(t_ns / step_ns + 0.5)


def played_line(sent: Sequence[tuple[int, int, int, int]], step_ns: float, n_steps: int) -> IntArray:
    """The performer's line as it was sent: ``(t_ns, pitch, velocity, note)`` messages (times relative to
    step 0) quantized to the nearest step, each note from its onset to its note-off (at least one step),
    reduced to one token per step by the corpus's skyline (:func:`~liveagent.music.tokens.notes_to_tokens`).
    """
    starts: dict[int, tuple[int, int]] = {}
    ends: dict[int, int] = {}
    for t, pitch, vel, note in sent:
        if vel > 0:
            starts[note] = (nearest_step(t, step_ns), pitch)
        else:
            ends[note] = nearest_step(t, step_ns)
    notes = []
    for note, (start, pitch) in starts.items():
        end = ends.get(note, n_steps)
        notes.append(Note(start, max(1, end - start), pitch, PERFORMER_VELOCITY))
    return notes_to_tokens(notes, n_steps)


# -- the agent's line, rebuilt from what the receiver heard -------------------------------------------


def beat_anchor(beats: Sequence[tuple[int, int, int]], grid: Grid, step_ns: float) -> float | None:
    """Where step 0 falls at the receiver: the median of ``arrival - k * step_ns`` over the beat messages
    ``(t_ns, bar, beat)`` (beat ``(bar, beat)`` marks step ``bar * steps_per_bar + beat * steps_per_beat``).

    The anchor is the grid as heard here (the server sends beats at T_k, OSC delivery included); a note
    goes to its step as long as it comes less than half a step from T_k: a follow window (at most 30 ms by
    default) or an early answer is well inside that. The median ignores a delayed beat. None without beats.
    """
    if not beats:
        return None
    spbar, spbeat = grid.steps_per_bar, grid.steps_per_beat
    d = [t - (bar * spbar + beat * spbeat) * step_ns for t, bar, beat in beats]
    return float(np.median(np.asarray(d, dtype=np.float64)))


@dataclass
class RebuiltLine:
    """An agent line rebuilt from received note messages."""

    tokens: IntArray
    """One token per step of ``[first_step, first_step + n_steps)``."""
    onset_ns: IntArray
    """Arrival time of the note-on of each step (-1 where the step has none)."""
    steps_of: list[int] = field(repr=False)
    """The step each received note message was assigned to (in the given order)."""
    collisions: int = 0
    """Note-ons that fell on a step that already had one (the later one is kept)."""


def rebuild_line(
    notes: Sequence[tuple[int, int, int]],
    anchor_ns: float,
    step_ns: float,
    n_steps: int,
    first_step: int = 0,
) -> RebuiltLine:
    """The agent's token line from ``(arrival_ns, pitch, velocity)`` note messages (velocity 0 = off).

    Each message goes to the step nearest to ``(arrival - anchor_ns) / step_ns``. Per step, in arrival
    order: a note-on makes the step an ONSET of its pitch; otherwise the step is HOLD while a note sounds
    (including one that began before ``first_step``) and REST when nothing does (a note-off with no new
    note). Steps before ``first_step`` only set what sounds.
    """
    steps_of = [nearest_step(t - anchor_ns, step_ns) for t, _, _ in notes]
    order = sorted(range(len(notes)), key=lambda i: (steps_of[i], notes[i][0]))
    end = first_step + n_steps
    tokens = np.full(n_steps, REST, dtype=np.int64)
    onset_ns = np.full(n_steps, -1, dtype=np.int64)
    sounding: set[int] = set()
    collisions = 0
    i = 0
    for step in range(min(steps_of, default=first_step), end):
        onset_pitch = -1
        onset_t = -1
        while i < len(order) and steps_of[order[i]] <= step:
            t, pitch, vel = notes[order[i]]
            i += 1
            if vel > 0:
                if onset_pitch >= 0:
                    collisions += 1
                sounding.add(pitch)
                onset_pitch, onset_t = pitch, t
            else:
                sounding.discard(pitch)
        if step < first_step:
            continue
        j = step - first_step
        if onset_pitch >= 0:
            tokens[j] = ONSET_BASE + onset_pitch
            onset_ns[j] = onset_t
        elif sounding:
            tokens[j] = HOLD
    return RebuiltLine(tokens, onset_ns, steps_of, collisions)


def answer_latencies_ns(agent_onset_ns: IntArray, performer_onset_sent_ns: Mapping[int, int]) -> FloatArray:
    """Arrival of the agent's note-on minus the send time of the performer's onset, for every step where
    both have one (``performer_onset_sent_ns``: step -> send time, same time base as the arrivals)."""
    out = [
        float(agent_onset_ns[j] - t_sent)
        for j, t_sent in performer_onset_sent_ns.items()
        if 0 <= j < agent_onset_ns.size and agent_onset_ns[j] >= 0
    ]
    return np.asarray(out, dtype=np.float64)
