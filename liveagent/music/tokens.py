"""The token vocabulary and the beat grid of the policy contract (v1).

One monophonic part per track, one token per grid step:
``0 = REST``, ``1 = HOLD`` (the previous step's note sounds on), ``2 + p = ONSET`` of MIDI pitch ``p``.
A chord is reduced to one token per step: its highest note (the "skyline").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

REST = 0
HOLD = 1
ONSET_BASE = 2
N_PITCHES = 128
VOCAB_SIZE = ONSET_BASE + N_PITCHES  # 130
NO_PITCH = -1
"""Marker in "sounding pitch" arrays: nothing sounds at that step."""

TokenArray = npt.NDArray[np.int64]


def onset(pitch: int) -> int:
    """The token that starts MIDI ``pitch``."""
    if not 0 <= pitch < N_PITCHES:
        raise ValueError(f"MIDI pitch must be in 0..127, got {pitch}")
    return ONSET_BASE + pitch


def is_onset(token: int) -> bool:
    return ONSET_BASE <= token < VOCAB_SIZE


def pitch_of(token: int) -> int:
    """The pitch an ONSET token starts; ``NO_PITCH`` for REST and HOLD."""
    return token - ONSET_BASE if is_onset(token) else NO_PITCH


def validate_tokens(tokens: npt.ArrayLike) -> TokenArray:
    """Return ``tokens`` as int64, raising ``ValueError`` if any is outside the vocabulary."""
    arr = np.asarray(tokens, dtype=np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= VOCAB_SIZE):
        bad = arr[(arr < 0) | (arr >= VOCAB_SIZE)]
        raise ValueError(f"tokens outside 0..{VOCAB_SIZE - 1}: {bad[:5].tolist()}")
    return arr


@dataclass(frozen=True)
class Grid:
    """The step grid: how many steps make a beat and how many beats make a bar."""

    steps_per_beat: int = 4
    """Steps per quarter-note beat (4 = sixteenth notes)."""
    beats_per_bar: int = 4
    """Beats per bar (the time signature's numerator, in quarter notes)."""

    def __post_init__(self) -> None:
        if self.steps_per_beat < 1 or self.beats_per_bar < 1:
            raise ValueError(f"grid needs positive sizes, got {self}")

    @property
    def steps_per_bar(self) -> int:
        return self.steps_per_beat * self.beats_per_bar

    def step_seconds(self, bpm: float) -> float:
        """Length of one step at ``bpm`` quarter notes per minute."""
        return 60.0 / (bpm * self.steps_per_beat)


def sounding_pitches(tokens: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """The pitch sounding at each step (``NO_PITCH`` where silent), along the last axis.

    HOLD continues the previous step's pitch; HOLD after silence (or at the start) is silence, as the
    contract says. Works on 1-D or batched ``[..., T]`` arrays without a Python loop over the batch.
    """
    tok = np.asarray(tokens, dtype=np.int64)
    pitch = np.where(tok >= ONSET_BASE, tok - ONSET_BASE, NO_PITCH)
    # Index of the last non-HOLD step at or before each step; HOLD-only prefixes point at -1.
    idx = np.where(tok != HOLD, np.arange(tok.shape[-1]), -1)
    np.maximum.accumulate(idx, axis=-1, out=idx)
    held = np.take_along_axis(pitch, np.maximum(idx, 0), axis=-1)
    return np.where(idx >= 0, held, NO_PITCH)


def onset_mask(tokens: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    tok = np.asarray(tokens)
    return tok >= ONSET_BASE


@dataclass(frozen=True)
class Note:
    """A note on the grid: ``start`` step, ``length`` in steps, MIDI ``pitch`` and ``velocity``."""

    start: int
    length: int
    pitch: int
    velocity: int = 80


def notes_to_tokens(notes: Iterable[Note], n_steps: int | None = None) -> TokenArray:
    """Reduce grid notes (possibly overlapping chords) to one token per step, keeping the skyline.

    At each step the highest sounding pitch wins; a step where that pitch just began, or where the
    skyline changes to a different pitch, is an ONSET, and a step that continues it is HOLD.
    """
    notes = list(notes)
    if n_steps is None:
        n_steps = max((n.start + n.length for n in notes), default=0)
    top = np.full(n_steps, NO_PITCH, dtype=np.int64)
    # Re-struck pitch: a note that starts at s forces an onset there even if the same pitch was sounding.
    struck = np.zeros(n_steps, dtype=bool)
    for n in notes:
        if n.length <= 0 or n.start >= n_steps or n.start + n.length <= 0:
            continue
        lo, hi = max(n.start, 0), min(n.start + n.length, n_steps)
        seg = top[lo:hi]
        np.maximum(seg, n.pitch, out=seg)
    for n in notes:  # second pass: the skyline is final, so "is this start the top note" is well defined
        if n.length > 0 and 0 <= n.start < n_steps and top[n.start] == n.pitch:
            struck[n.start] = True
    out = np.full(n_steps, REST, dtype=np.int64)
    sounding = top >= 0
    prev = np.concatenate(([NO_PITCH], top[:-1]))
    new = sounding & ((top != prev) | struck)
    out[sounding] = HOLD
    out[new] = top[new] + ONSET_BASE
    return out


def tokens_to_notes(tokens: npt.ArrayLike, velocity: int = 80) -> list[Note]:
    """Expand a token line into grid notes (HOLD after silence is silence)."""
    tok = np.asarray(tokens, dtype=np.int64)
    notes: list[Note] = []
    start = -1
    pitch = NO_PITCH
    for i, t in enumerate(tok.tolist()):
        if t == HOLD and pitch != NO_PITCH:
            continue
        if pitch != NO_PITCH:
            notes.append(Note(start, i - start, pitch, velocity))
        if t >= ONSET_BASE:
            start, pitch = i, t - ONSET_BASE
        else:
            start, pitch = -1, NO_PITCH
    if pitch != NO_PITCH:
        notes.append(Note(start, len(tok) - start, pitch, velocity))
    return notes


def transpose_tokens(tokens: npt.ArrayLike, semitones: int) -> TokenArray:
    """Shift every ONSET by ``semitones``; raises ``ValueError`` if a pitch leaves 0..127."""
    tok = np.asarray(tokens, dtype=np.int64)
    on = tok >= ONSET_BASE
    shifted = tok + np.where(on, semitones, 0)
    if on.any():
        lo, hi = shifted[on].min() - ONSET_BASE, shifted[on].max() - ONSET_BASE
        if lo < 0 or hi >= N_PITCHES:
            raise ValueError(f"transposing by {semitones} leaves the MIDI range ({lo}..{hi})")
    return shifted


def pitch_range(tokens: npt.ArrayLike) -> tuple[int, int] | None:
    """Lowest and highest onset pitch, or ``None`` for a line with no notes."""
    tok = np.asarray(tokens)
    on = tok[tok >= ONSET_BASE]
    if on.size == 0:
        return None
    return int(on.min()) - ONSET_BASE, int(on.max()) - ONSET_BASE
