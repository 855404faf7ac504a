"""Training-time perturbations of the performer's line, so a live policy keeps its footing.

A performer on stage plays wrong notes, drops notes, adds grace notes and sometimes jumps to another key.
A policy trained only on clean chorales has never seen any of that. As in data augmentation for
robust control, we train on corrupted performer lines: the policy must follow what it *hears* (the reward
terms judge it against the perturbed line it is given), not what the score says.

All functions are numpy-only and work on token lines (contract v1). They never touch the accompaniment,
except a sudden transposition, which by default moves the reference accompaniment along with the
performer (a modulation: the real part would follow it too) so the in-key and discriminator signals stay
coherent.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from liveagent.music.piece import Piece
from liveagent.music.tokens import HOLD, N_PITCHES, ONSET_BASE, REST, TokenArray

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PerturbConfig:
    """Rates of the performer mistakes simulated during training (per onset unless said otherwise)."""

    wrong_note: float = 0.05
    """Probability that an onset's pitch is replaced by a neighbour (1-2 semitones off)."""
    drop_note: float = 0.05
    """Probability that a note is not played at all (its onset and holds become REST)."""
    extra_note: float = 0.03
    """Probability, per held step, of a short extra note (a one-step neighbour, then the held note again)."""
    transpose: float = 0.2
    """Probability, per piece, of one sudden transposition from a random step to the end."""
    max_transpose: int = 5
    """Largest transposition in semitones (either direction, never 0)."""
    transpose_accompaniment: bool = True
    """Move the reference accompaniment with the performer (a modulation) rather than leave it behind."""
    copies: int = 1
    """Perturbed copies made of each piece by :func:`perturb_pieces` (the clean piece is kept too)."""

    def __post_init__(self) -> None:
        for name in ("wrong_note", "drop_note", "extra_note", "transpose"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be a probability, got {v}")
        if self.max_transpose < 1:
            raise ValueError("max_transpose must be >= 1")


def _clip_pitch(p: np.ndarray) -> np.ndarray:
    return np.clip(p, 0, N_PITCHES - 1)


def wrong_notes(tokens: TokenArray, rate: float, rng: np.random.Generator) -> TokenArray:
    """Replace a fraction ``rate`` of onsets by a pitch 1 or 2 semitones away (rhythm unchanged)."""
    out = np.array(tokens, dtype=np.int64, copy=True)
    on = np.flatnonzero(out >= ONSET_BASE)
    hit = on[rng.random(on.size) < rate]
    if hit.size:
        shift = rng.choice(np.array([-2, -1, 1, 2]), size=hit.size)
        out[hit] = ONSET_BASE + _clip_pitch(out[hit] - ONSET_BASE + shift)
    return out


def drop_notes(tokens: TokenArray, rate: float, rng: np.random.Generator) -> TokenArray:
    """Silence a fraction ``rate`` of notes: the onset and the HOLDs that continue it become REST."""
    out = np.array(tokens, dtype=np.int64, copy=True)
    on = np.flatnonzero(out >= ONSET_BASE)
    for i in on[rng.random(on.size) < rate].tolist():
        j = i + 1
        while j < out.size and out[j] == HOLD:
            j += 1
        out[i:j] = REST
    return out


def extra_notes(tokens: TokenArray, rate: float, rng: np.random.Generator) -> TokenArray:
    """Insert one-step neighbour notes into held notes (a slip of the finger), then re-strike the note.

    At a chosen HOLD step ``i`` of pitch ``p``: step ``i`` becomes an onset of ``p +- 1 or 2``, and if
    the note continued at ``i + 1`` that step becomes a fresh onset of ``p`` (what the listener hears).
    """
    out = np.array(tokens, dtype=np.int64, copy=True)
    sounding = np.full(out.size, -1, dtype=np.int64)
    cur = -1
    for i, t in enumerate(out.tolist()):
        if t >= ONSET_BASE:
            cur = t - ONSET_BASE
        elif t == REST:
            cur = -1
        sounding[i] = cur
    held = np.flatnonzero((out == HOLD) & (sounding >= 0))
    hit = held[rng.random(held.size) < rate]
    last = -2
    for i in hit.tolist():
        if i <= last + 1:  # keep extra notes apart so each one re-strikes a real note
            continue
        p = int(sounding[i])
        q = int(_clip_pitch(np.array(p + rng.choice([-2, -1, 1, 2])))[()])
        out[i] = ONSET_BASE + q
        if i + 1 < out.size and out[i + 1] == HOLD:
            out[i + 1] = ONSET_BASE + p
        last = i
    return out


def transpose_from(tokens: TokenArray, start: int, semitones: int) -> TokenArray:
    """Shift the onsets at and after ``start`` by ``semitones`` (clipped to the MIDI range)."""
    out = np.array(tokens, dtype=np.int64, copy=True)
    tail = out[start:]
    on = tail >= ONSET_BASE
    tail[on] = ONSET_BASE + _clip_pitch(tail[on] - ONSET_BASE + semitones)
    return out


def perturb_piece(piece: Piece, config: PerturbConfig, rng: np.random.Generator) -> Piece:
    """A perturbed copy of ``piece``: mistakes in the performer's line; accompaniment kept (or modulated)."""
    perf = piece.performer
    acc = piece.accompaniment
    key = piece.key
    perf = drop_notes(perf, config.drop_note, rng)
    perf = wrong_notes(perf, config.wrong_note, rng)
    perf = extra_notes(perf, config.extra_note, rng)
    name = f"{piece.name}~perturbed"
    if piece.n_steps > 1 and rng.random() < config.transpose:
        start = int(rng.integers(1, piece.n_steps))
        k = int(rng.integers(1, config.max_transpose + 1)) * int(rng.choice([-1, 1]))
        perf = transpose_from(perf, start, k)
        if config.transpose_accompaniment:
            acc = transpose_from(acc, start, k)
            key = None  # re-estimated over the modulated whole
        name += f"~T{k:+d}@{start}"
    return Piece(name=name, performer=perf, accompaniment=acc, grid=piece.grid, key=key, bpm=piece.bpm)


def perturb_pieces(pieces: Sequence[Piece], config: PerturbConfig, seed: int) -> list[Piece]:
    """The clean pieces followed by ``config.copies`` perturbed copies of each (deterministic in ``seed``)."""
    rng = np.random.default_rng(seed)
    out = list(pieces)
    for _ in range(config.copies):
        out.extend(perturb_piece(p, config, rng) for p in pieces)
    log.info("robustness: %d clean + %d perturbed pieces", len(pieces), len(out) - len(pieces))
    return out


def perturbation_stats(clean: TokenArray, noisy: TokenArray) -> dict[str, float]:
    """Fraction of steps that differ and of clean onsets changed: a sanity figure for logs and tests."""
    clean = np.asarray(clean)
    noisy = np.asarray(noisy)
    on = clean >= ONSET_BASE
    return {
        "steps_changed": float(np.mean(clean != noisy)) if clean.size else 0.0,
        "onsets_changed": float(np.mean(clean[on] != noisy[on])) if on.any() else 0.0,
    }
