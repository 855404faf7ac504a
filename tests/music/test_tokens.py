"""Properties of the token vocabulary: note <-> token round trips, the skyline, sounding pitches."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liveagent.music.tokens import (
    HOLD,
    NO_PITCH,
    ONSET_BASE,
    REST,
    VOCAB_SIZE,
    Grid,
    Note,
    notes_to_tokens,
    onset,
    pitch_of,
    pitch_range,
    sounding_pitches,
    tokens_to_notes,
    transpose_tokens,
    validate_tokens,
)

token = st.integers(0, VOCAB_SIZE - 1)
pitch = st.integers(0, 127)


def canonical(tokens: list[int]) -> np.ndarray:
    """HOLD after silence (or at the start) means REST: the canonical spelling of a line."""
    out = []
    sounding = False
    for t in tokens:
        if t == HOLD and not sounding:
            t = REST
        sounding = t != REST
        out.append(t)
    return np.array(out, dtype=np.int64)


def reference_sounding(tokens: np.ndarray) -> np.ndarray:
    out = np.full(tokens.shape, NO_PITCH, dtype=np.int64)
    for idx in np.ndindex(tokens.shape[:-1]):
        cur = NO_PITCH
        for i, t in enumerate(tokens[idx]):
            if t >= ONSET_BASE:
                cur = int(t) - ONSET_BASE
            elif t == REST:
                cur = NO_PITCH
            out[(*idx, i)] = cur
    return out


@settings(deadline=None)
@given(st.lists(token, max_size=80))
def test_monophonic_round_trip(tokens: list[int]) -> None:
    line = canonical(tokens)
    notes = tokens_to_notes(line)
    assert np.array_equal(notes_to_tokens(notes, len(line)), line)
    # Notes never overlap and each starts with its onset token.
    for a, b in itertools.pairwise(notes):
        assert a.start + a.length <= b.start
    for n in notes:
        assert line[n.start] == onset(n.pitch)


@settings(deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(1, 12), pitch), max_size=12))
def test_skyline_is_the_top_note(raw: list[tuple[int, int, int]]) -> None:
    notes = [Note(s, length, p) for s, length, p in raw]
    n_steps = 50
    tok = notes_to_tokens(notes, n_steps)
    snd = sounding_pitches(tok)
    for t in range(n_steps):
        here = [n.pitch for n in notes if n.start <= t < n.start + n.length]
        assert snd[t] == (max(here) if here else NO_PITCH)
        # A top note that starts here is an onset, even if the same pitch was already sounding.
        if any(n.start == t and n.pitch == snd[t] for n in notes):
            assert tok[t] == onset(int(snd[t]))


def test_restruck_pitch_is_two_onsets() -> None:
    tok = notes_to_tokens([Note(0, 2, 60), Note(2, 2, 60)], 4)
    assert tok.tolist() == [onset(60), HOLD, onset(60), HOLD]


def test_chord_reduced_to_top_with_hold() -> None:
    # C-E-G chord for 4 steps; G (top) is an onset then HOLD; a lower note entering changes nothing.
    tok = notes_to_tokens([Note(0, 4, 60), Note(0, 4, 64), Note(0, 4, 67), Note(2, 2, 48)], 6)
    assert tok.tolist() == [onset(67), HOLD, HOLD, HOLD, REST, REST]
    # When the top note ends, the skyline drops to the still-sounding lower note: a new onset.
    tok = notes_to_tokens([Note(0, 4, 60), Note(0, 2, 72)], 4)
    assert tok.tolist() == [onset(72), HOLD, onset(60), HOLD]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(token, min_size=7, max_size=7), min_size=1, max_size=4))
def test_sounding_pitches_matches_loop(rows: list[list[int]]) -> None:
    tok = np.array(rows, dtype=np.int64)
    assert np.array_equal(sounding_pitches(tok), reference_sounding(tok))
    assert np.array_equal(sounding_pitches(tok[0]), reference_sounding(tok[0]))


def test_hold_after_silence_is_silence() -> None:
    assert sounding_pitches([HOLD, onset(60), HOLD, REST, HOLD]).tolist() == [-1, 60, 60, -1, -1]


@settings(deadline=None)
@given(st.lists(token, max_size=40), st.integers(-12, 12))
def test_transpose_round_trip(tokens: list[int], k: int) -> None:
    line = np.array(tokens, dtype=np.int64)
    try:
        up = transpose_tokens(line, k)
    except ValueError:
        r = pitch_range(line)
        assert r is not None and (r[0] + k < 0 or r[1] + k > 127)
        return
    assert np.array_equal(transpose_tokens(up, -k), line)
    assert np.array_equal(up < ONSET_BASE, line < ONSET_BASE)


def test_vocabulary_edges() -> None:
    assert onset(0) == ONSET_BASE and onset(127) == VOCAB_SIZE - 1
    assert pitch_of(REST) == pitch_of(HOLD) == NO_PITCH and pitch_of(onset(60)) == 60
    with pytest.raises(ValueError):
        onset(128)
    with pytest.raises(ValueError):
        validate_tokens([0, 130])
    assert pitch_range([REST, HOLD]) is None
    assert pitch_range([onset(40), onset(70), HOLD]) == (40, 70)
    assert Grid().steps_per_bar == 16
    assert Grid(4, 4).step_seconds(120) == pytest.approx(0.125)
    with pytest.raises(ValueError):
        Grid(0, 4)
