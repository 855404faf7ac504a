"""Theory checked by hand: the consonance table, perfect intervals, key finding on hand-made scales."""

from __future__ import annotations

import numpy as np
import pytest

from liveagent.music.theory import (
    Key,
    consonant_pair,
    estimate_key,
    interval_class,
    is_consonant,
    is_perfect,
    key_of_lines,
    pitch_class_histogram,
    pitch_name,
)
from liveagent.music.tokens import NO_PITCH

C4, G4, C5 = 60, 67, 72


@pytest.mark.parametrize(
    ("upper", "lower", "against_bass", "upper_voices"),
    [
        (C5, G4, False, True),  # perfect fourth: dissonant against the bass only (Fux)
        (64, 60, True, True),  # major third
        (68, 60, True, True),  # minor sixth (C - Ab)
        (63, 60, True, True),  # minor third
        (69, 60, True, True),  # major sixth
        (66, 60, False, False),  # tritone
        (67, 60, True, True),  # fifth
        (72, 60, True, True),  # octave
        (60, 60, True, True),  # unison
        (61, 60, False, False),  # minor second
        (62, 60, False, False),  # major second
        (70, 60, False, False),  # minor seventh
        (71, 60, False, False),  # major seventh
        (76, 60, True, True),  # major tenth reduces to a third
        (77, 60, False, True),  # eleventh reduces to a fourth
    ],
)
def test_consonance_table(upper: int, lower: int, against_bass: bool, upper_voices: bool) -> None:
    assert bool(is_consonant(upper, lower)) is against_bass
    assert bool(is_consonant(upper, lower, lower_is_bass=False)) is upper_voices


def test_consonance_vectorized_and_silence() -> None:
    up = np.array([64, 65, NO_PITCH, 67])
    lo = np.array([60, 60, 60, NO_PITCH])
    assert is_consonant(up, lo).tolist() == [True, False, False, False]
    assert consonant_pair([60, 55], [64, 60]).tolist() == [True, False]  # order does not matter; 60/55 = P4
    assert is_perfect([67, 72, 64, NO_PITCH], [60, 60, 60, 60]).tolist() == [True, True, False, False]
    assert interval_class([72, 59], [60, 60]).tolist() == [0, 1]


def test_key_of_scales() -> None:
    c_major = [60, 62, 64, 65, 67, 69, 71, 72]
    a_harmonic_minor = [57, 59, 60, 62, 64, 65, 68, 69]
    assert key_of_lines(np.array(c_major)) == Key(0, "major")
    assert key_of_lines(np.array(a_harmonic_minor)) == Key(9, "minor")
    # Transposed scales give transposed keys.
    for k in range(12):
        assert key_of_lines(np.array(c_major) + k) == Key(k, "major")
        assert key_of_lines(np.array(a_harmonic_minor) + k) == Key((9 + k) % 12, "minor")


def test_estimate_key_edges() -> None:
    assert estimate_key(np.zeros(12)) == Key(0, "major")
    with pytest.raises(ValueError):
        estimate_key(np.zeros(11))
    h = pitch_class_histogram([60, 72, NO_PITCH, 67], weights=[1, 2, 5, 1])
    assert h[0] == 3 and h[7] == 1 and h.sum() == 4


def test_key_pitch_classes() -> None:
    assert Key(0, "major").pitch_classes == (0, 2, 4, 5, 7, 9, 11)
    a_minor = Key(9, "minor")
    assert {9, 11, 0, 2, 4, 5, 7, 8}.issubset(a_minor.pitch_classes)  # raised 7th (G#) and natural G
    assert a_minor.mask().sum() == len(a_minor.pitch_classes)
    assert Key(9, "minor").transposed(3) == Key(0, "minor")
    assert str(Key(10, "major")) == "Bb major"
    assert pitch_name(60) == "C4" and pitch_name(21) == "A0"
