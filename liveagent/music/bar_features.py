"""Measurable features of an accompaniment's bars and lines: what a mood is made of, and how it is measured.

One definition serves both sides of the style space: the VAE's moods are gathered from the corpus's bars by
these features (:mod:`liveagent.train.style_vae`), and the mood table measures what a policy played with the
same ones (:mod:`liveagent.env.moods`), so "busy" means the same thing where it is defined and where it is
checked. Numpy only.

Features of one bar of a monophonic token line (``steps_per_bar`` steps; a bar is ``t // steps_per_bar``):

- ``density``: onsets in the bar (notes per bar);
- ``register``: mean MIDI pitch sounding in the bar (held notes count, silent steps do not; NaN if silent);
- ``mode``: 1 in a major piece, 0 in a minor one (the piece's key: the harmonic context of the bar);
- ``leap``: mean absolute interval, in semitones, from each onset of the bar to the note before it (the
  previous onset anywhere earlier in the line; NaN without one);
- ``syncopation``: share of the bar's onsets off the beat (``step % steps_per_beat != 0``; NaN without
  onsets).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from liveagent.music.tokens import NO_PITCH, ONSET_BASE, REST, sounding_pitches

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

FEATURES = ("density", "register", "mode", "leap", "syncopation")
"""The bar features, in the order of :func:`bar_feature_matrix`'s columns."""

FEATURE_DOC = {
    "density": "onsets per bar",
    "register": "mean MIDI pitch sounding in the bar",
    "mode": "1 in a major piece, 0 in a minor one",
    "leap": "mean |interval| in semitones from each onset to the previous note",
    "syncopation": "share of the bar's onsets off the beat",
}


def line_bars(tokens: npt.ArrayLike, steps_per_bar: int) -> IntArray:
    """The line cut into bars ``[n_bars, steps_per_bar]``, the last one REST-padded."""
    tok = np.asarray(tokens, dtype=np.int64)
    n_bars = -(-tok.shape[0] // steps_per_bar)
    out = np.full(n_bars * steps_per_bar, REST, dtype=np.int64)
    out[: tok.shape[0]] = tok
    return out.reshape(n_bars, steps_per_bar)


def _previous_onset_pitch(tokens: IntArray) -> IntArray:
    """For each step, the pitch of the last onset strictly before it (``NO_PITCH`` if none)."""
    pitch = np.where(tokens >= ONSET_BASE, tokens - ONSET_BASE, NO_PITCH)
    idx = np.where(pitch != NO_PITCH, np.arange(tokens.shape[0]), -1)
    last = np.maximum.accumulate(idx) if idx.size else idx
    prev = np.concatenate(([-1], last[:-1])) if last.size else last
    return np.where(prev >= 0, pitch[np.maximum(prev, 0)], NO_PITCH)


def bar_features(
    tokens: npt.ArrayLike, steps_per_bar: int, steps_per_beat: int, major: bool
) -> dict[str, FloatArray]:
    """Each feature of :data:`FEATURES` for every bar of ``tokens`` (arrays ``[n_bars]``)."""
    tok = np.asarray(tokens, dtype=np.int64)
    bars = line_bars(tok, steps_per_bar)
    n_bars = bars.shape[0]
    pad = n_bars * steps_per_bar - tok.shape[0]
    sounding = np.concatenate((sounding_pitches(tok), np.full(pad, NO_PITCH))).reshape(n_bars, -1)
    prev = np.concatenate((_previous_onset_pitch(tok), np.full(pad, NO_PITCH))).reshape(n_bars, -1)
    onset = bars >= ONSET_BASE
    density = onset.sum(axis=1).astype(np.float64)
    heard = sounding != NO_PITCH
    with np.errstate(invalid="ignore", divide="ignore"):
        register = np.where(heard, sounding, 0).sum(axis=1) / heard.sum(axis=1)
        has_prev = onset & (prev != NO_PITCH)
        jumps = np.where(has_prev, np.abs(bars - ONSET_BASE - prev), 0)
        leap = jumps.sum(axis=1) / has_prev.sum(axis=1)
        off = onset & (np.arange(steps_per_bar)[None, :] % steps_per_beat != 0)
        syncopation = off.sum(axis=1) / density
    return {
        "density": density,
        "register": register.astype(np.float64),
        "mode": np.full(n_bars, 1.0 if major else 0.0),
        "leap": leap.astype(np.float64),
        "syncopation": syncopation.astype(np.float64),
    }


def bar_feature_matrix(features: dict[str, FloatArray]) -> FloatArray:
    """``[n_bars, len(FEATURES)]`` in :data:`FEATURES` order."""
    return np.stack([features[name] for name in FEATURES], axis=1)


def line_style_stats(lines: Sequence[npt.ArrayLike], steps_per_bar: int) -> dict[str, float]:
    """What a set of played lines sounds like, pooled over all of them: ``notes_per_bar`` (onsets per bar of
    the pieces), ``mean_pitch`` (mean onset pitch), ``leap`` (mean |interval| between successive onsets, in
    semitones) and ``notes``."""
    notes, steps, pitch_sum, leap_sum, leaps = 0, 0, 0.0, 0.0, 0
    for line in lines:
        tok = np.asarray(line, dtype=np.int64)
        pitches = tok[tok >= ONSET_BASE] - ONSET_BASE
        notes += int(pitches.size)
        steps += int(tok.size)
        pitch_sum += float(pitches.sum())
        if pitches.size > 1:
            leap_sum += float(np.abs(np.diff(pitches)).sum())
            leaps += int(pitches.size - 1)
    bars = steps / steps_per_bar
    return {
        "notes": float(notes),
        "notes_per_bar": notes / bars if bars else float("nan"),
        "mean_pitch": pitch_sum / notes if notes else float("nan"),
        "leap": leap_sum / leaps if leaps else float("nan"),
    }
