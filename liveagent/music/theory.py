"""Music theory on MIDI pitches (numpy only): intervals, consonance, keys and scales.

Sources: interval classes and two-voice consonance as in Fux, *Gradus ad Parnassum* (1725) and any
species-counterpoint text (perfect: unison, fifth, octave; imperfect: thirds and sixths; the perfect
fourth is dissonant against the bass in two voices). Key finding: Krumhansl & Kessler (1982) probe-tone
profiles with the Krumhansl-Schmuckler correlation algorithm (Krumhansl, *Cognitive Foundations of
Musical Pitch*, 1990).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from liveagent.music.tokens import NO_PITCH

PITCH_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")

# Semitones modulo 12 -> class. Index by (upper - lower) % 12.
UNISON, MINOR_2, MAJOR_2, MINOR_3, MAJOR_3, FOURTH, TRITONE, FIFTH, MINOR_6, MAJOR_6, MINOR_7, MAJOR_7 = (
    range(12)
)
PERFECT_CONSONANCES = (UNISON, FIFTH)
"""Unison/octave and fifth (compound intervals included, by reduction mod 12)."""
IMPERFECT_CONSONANCES = (MINOR_3, MAJOR_3, MINOR_6, MAJOR_6)

# Consonance against the lower voice in two-voice counterpoint; the fourth is dissonant there.
CONSONANT_TWO_VOICE = np.zeros(12, dtype=bool)
CONSONANT_TWO_VOICE[list(PERFECT_CONSONANCES + IMPERFECT_CONSONANCES)] = True
# Consonance when neither voice is the bass (upper voices): the fourth counts as consonant.
CONSONANT_UPPER_VOICES = CONSONANT_TWO_VOICE.copy()
CONSONANT_UPPER_VOICES[FOURTH] = True

MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
NATURAL_MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10)
HARMONIC_MINOR_SCALE = (0, 2, 3, 5, 7, 8, 11)
# Minor keys admit the raised 6th and 7th of melodic minor (Bach's chorales use them constantly).
MINOR_KEY_PCS = (0, 2, 3, 5, 7, 8, 9, 10, 11)

# Krumhansl & Kessler (1982) probe-tone ratings, tonic first.
KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


def interval_class(a: npt.ArrayLike, b: npt.ArrayLike) -> IntArray:
    """Simple interval of ``|a - b|`` reduced mod 12 (0..11). Elementwise."""
    return np.abs(np.asarray(a, dtype=np.int64) - np.asarray(b, dtype=np.int64)) % 12


def is_consonant(upper: npt.ArrayLike, lower: npt.ArrayLike, *, lower_is_bass: bool = True) -> BoolArray:
    """Whether the interval between two sounding pitches is consonant (elementwise).

    ``lower_is_bass``: two-voice counterpoint against the bass, where the perfect fourth is a
    dissonance (Fux). Pitches equal to ``NO_PITCH`` give False.
    """
    u = np.asarray(upper, dtype=np.int64)
    lo = np.asarray(lower, dtype=np.int64)
    table = CONSONANT_TWO_VOICE if lower_is_bass else CONSONANT_UPPER_VOICES
    ok = table[interval_class(u, lo)]
    return np.asarray(ok & (u != NO_PITCH) & (lo != NO_PITCH))


def consonant_pair(a: npt.ArrayLike, b: npt.ArrayLike) -> BoolArray:
    """Consonance of two voices of unknown order, the lower one taken as the bass."""
    a_ = np.asarray(a, dtype=np.int64)
    b_ = np.asarray(b, dtype=np.int64)
    return is_consonant(np.maximum(a_, b_), np.minimum(a_, b_), lower_is_bass=True)


def is_perfect(a: npt.ArrayLike, b: npt.ArrayLike) -> BoolArray:
    """Unison/octave or fifth (compound included) between two sounding pitches."""
    ic = interval_class(a, b)
    return np.asarray(
        ((ic == UNISON) | (ic == FIFTH)) & (np.asarray(a) != NO_PITCH) & (np.asarray(b) != NO_PITCH)
    )


@dataclass(frozen=True)
class Key:
    """A key: ``tonic`` pitch class 0..11 and ``mode``."""

    tonic: int
    mode: Literal["major", "minor"]

    def __str__(self) -> str:
        return f"{PITCH_NAMES[self.tonic]} {self.mode}"

    @property
    def pitch_classes(self) -> tuple[int, ...]:
        """The pitch classes counted as "in key" (major scale; minor with raised 6th and 7th)."""
        scale = MAJOR_SCALE if self.mode == "major" else MINOR_KEY_PCS
        return tuple(sorted((self.tonic + d) % 12 for d in scale))

    def mask(self) -> BoolArray:
        """Boolean [12] of in-key pitch classes."""
        m = np.zeros(12, dtype=bool)
        m[list(self.pitch_classes)] = True
        return m

    def transposed(self, semitones: int) -> Key:
        return Key((self.tonic + semitones) % 12, self.mode)


def pitch_class_histogram(
    pitches: npt.ArrayLike, weights: npt.ArrayLike | None = None
) -> npt.NDArray[np.float64]:
    """Histogram of pitch classes (``NO_PITCH`` ignored), optionally weighted (e.g. by duration)."""
    p = np.asarray(pitches, dtype=np.int64).ravel()
    w = None if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    keep = p != NO_PITCH
    return np.bincount(p[keep] % 12, weights=None if w is None else w[keep], minlength=12).astype(np.float64)


def _zscore(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return (x - x.mean(axis=-1, keepdims=True)) / x.std(axis=-1, keepdims=True)


# The 24 rotated, z-scored K-K profiles: rows 0..11 major on tonic 0..11, rows 12..23 minor.
_KEY_PROFILES = _zscore(
    np.stack([np.roll(KK_MAJOR, k) for k in range(12)] + [np.roll(KK_MINOR, k) for k in range(12)])
)


def estimate_key(histogram: npt.ArrayLike) -> Key:
    """Krumhansl-Schmuckler: the key whose rotated K-K profile correlates best with ``histogram``.

    ``histogram`` is a [12] pitch-class duration histogram (e.g. sounding steps per pitch class of all
    parts). An empty or flat histogram gives C major. All 24 correlations are one matrix product.
    """
    h = np.asarray(histogram, dtype=np.float64)
    if h.shape != (12,):
        raise ValueError(f"key estimation needs a [12] histogram, got shape {h.shape}")
    if not h.any() or h.std() == 0:
        return Key(0, "major")
    r = _KEY_PROFILES @ _zscore(h) / 12.0
    best = int(np.argmax(r))
    return Key(best % 12, "major" if best < 12 else "minor")


def key_of_lines(*sounding_lines: npt.ArrayLike) -> Key:
    """Estimate the key of one or more sounding-pitch lines (per-step pitches, ``NO_PITCH`` = silence)."""
    h = np.zeros(12)
    for line in sounding_lines:
        h += pitch_class_histogram(line)
    return estimate_key(h)


def pitch_name(pitch: int) -> str:
    """``60 -> 'C4'`` (MIDI octave convention, middle C = C4)."""
    return f"{PITCH_NAMES[pitch % 12]}{pitch // 12 - 1}"
