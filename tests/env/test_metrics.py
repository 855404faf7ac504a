"""Every metric on hand-made passages whose answer was worked out by hand (in the comments)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liveagent.env import metrics as m
from liveagent.music.theory import Key
from liveagent.music.tokens import HOLD, REST, onset

C_MAJOR = Key(0, "major")


def line(*notes: tuple[int | None, int]) -> np.ndarray:
    """Tokens from (pitch, length) pairs; pitch None = rest."""
    out: list[int] = []
    for pitch, length in notes:
        if pitch is None:
            out += [REST] * length
        else:
            out += [onset(pitch)] + [HOLD] * (length - 1)
    return np.array(out, dtype=np.int64)


# --- consonance -------------------------------------------------------------------------------------


def test_consonance_against_a_held_performer_note() -> None:
    # Performer holds C5 (72) for 16 steps then rests 2. Agent onsets, one per step pair:
    # C4 60 (octave: yes), F4 65 (72-65=7 fifth: yes), G4 67 (5 = fourth below: no),
    # A4 69 (3 minor third: yes), B4 71 (1: no), E5 76 above (4 major third over the performer: yes),
    # F5 77 above (5 = fourth over the performer as bass: no), C5 72 (unison: yes),
    # then D4 62 while the performer rests: not judged.  -> 5 of 8.
    perf = line((72, 16), (None, 2))
    agent = line((60, 2), (65, 2), (67, 2), (69, 2), (71, 2), (76, 2), (77, 2), (72, 2), (62, 2))
    assert m.consonance_counts(agent, perf) == (5, 8)


def test_consonance_ignores_agent_holds() -> None:
    # The agent's single onset (E4 64 under C5: minor sixth, consonant) is held across a performer
    # move to B4 (held notes are not judged again): 1 of 1.
    perf = line((72, 4), (71, 4))
    agent = line((64, 8))
    assert m.consonance_counts(agent, perf) == (1, 1)


# --- key ----------------------------------------------------------------------------------------------


def test_not_in_key_major_and_minor() -> None:
    # C major: C 60 in, C# 61 out, F# 66 out, G 67 in -> 2.
    assert m.not_in_key_count(line((60, 1), (61, 1), (66, 1), (67, 1)), C_MAJOR) == 2
    # A minor admits F# and G# (raised 6th, 7th): A# 70 and C# 61 and D# 63 out, G# 68 and F# 66 in -> 3.
    a_minor = Key(9, "minor")
    assert m.not_in_key_count(line((70, 1), (61, 1), (63, 1), (68, 1), (66, 1)), a_minor) == 3


# --- excessive repetition (RL Tuner) ------------------------------------------------------------------


def test_sixteenth_strikes_of_one_pitch() -> None:
    # Six 16th-note strikes of C4 with nothing in between: the k-th has k-1 earlier strikes; only the
    # 6th exceeds 4.
    assert m.excessively_repeated(line(*[(60, 1)] * 6)).tolist() == [False] * 5 + [True]


def test_held_repetitions_need_more_than_six() -> None:
    # Eight quarter notes of C4 (onset + 3 holds each): holds intervene, so the limit is 6; the 8th
    # onset (7 earlier) is the only excessive one.
    flags = m.excessively_repeated(line(*[(60, 4)] * 8))
    assert np.flatnonzero(flags).tolist() == [28]


def test_other_pitch_breaks_the_run() -> None:
    # 5 strikes of C4, one D4, 5 strikes of C4: no run reaches 6 -> none.
    assert not m.excessively_repeated(line(*[(60, 1)] * 5, (62, 1), *[(60, 1)] * 5)).any()


def test_hold_of_the_previous_pitch_counts_as_in_between() -> None:
    # D4 held 2 steps, then six C4 strikes: RL Tuner's backward scan from the 6th C passes the D's hold
    # (flag set) before stopping at D, so the limit is 6 and 5 earlier strikes are not excessive.
    assert not m.excessively_repeated(line((62, 2), *[(60, 1)] * 6)).any()
    # Without the hold (D for one step) the limit is 4: the 6th C is excessive.
    assert m.excessively_repeated(line((62, 1), *[(60, 1)] * 6)).sum() == 1


def _reference_repeated(tokens: list[int]) -> list[bool]:
    """RL Tuner's detect_repeating_notes, transcribed literally, applied at onsets."""
    out = []
    for t, a in enumerate(tokens):
        if a < 2:
            out.append(False)
            continue
        n, held, broken = 0, False, False
        for i in range(t - 1, -1, -1):
            if tokens[i] == a:
                n += 1
            elif tokens[i] == REST:
                broken = True
            elif tokens[i] == HOLD:
                held = True
            else:
                break
        out.append(n > (6 if held or broken else 4))
    return out


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([REST, HOLD, onset(60), onset(62)]), max_size=60))
def test_repetition_matches_the_literal_scan(tokens: list[int]) -> None:
    assert m.excessively_repeated(np.array(tokens, dtype=np.int64)).tolist() == _reference_repeated(tokens)


# --- leaps (RL Tuner) -------------------------------------------------------------------------------


def test_leap_resolved_by_stepping_back() -> None:
    # C4 quarter, leap up to G4 (7: leap from 60), then F4, E4, D4, C4: C4 <= 60 resolves it.
    assert m.leap_outcomes(line((60, 4), (67, 2), (65, 1), (64, 1), (62, 1), (60, 1))) == (1, 0)


def test_double_leap() -> None:
    # C3 -> G3 (leap up), G3 -> D4 (leap up again, same direction): one double leap, nothing resolved.
    assert m.leap_outcomes(line((48, 1), (55, 1), (62, 1))) == (0, 1)


def test_leap_back_too_soon_is_neither() -> None:
    # C4 -> G4 -> C4 straight away: a leap back with 0 steps since the leap (needs > 6): not resolved,
    # not doubled; the leap is forgotten.
    assert m.leap_outcomes(line((60, 1), (67, 1), (60, 1))) == (0, 0)


def test_leap_back_after_waiting_resolves() -> None:
    # G4 held 8 steps (7 holds: steps_since = 7 > 6), then the leap back to C4 resolves.
    assert m.leap_outcomes(line((60, 1), (67, 8), (60, 1))) == (1, 0)


def test_leap_after_rest_measures_from_last_note() -> None:
    # C4, a rest, then G4: the leap is still from C4 (RL Tuner skips rests when finding the previous
    # note); then B4 (4 up, not a leap), then G4 (steps back but 67 > 60: not resolved) -> (0, 0).
    assert m.leap_outcomes(line((60, 1), (None, 3), (67, 1), (71, 1), (67, 1))) == (0, 0)


# --- autocorrelation --------------------------------------------------------------------------------


def test_autocorrelation_of_an_alternating_signal() -> None:
    # x = [1, -1, 1, -1], mean 0, var 1, n 4: lag 1: -3/4; lag 2: 2/4; lag 3: -1/4.
    x = [1, -1, 1, -1]
    assert m.autocorrelation(x, 1) == pytest.approx(-0.75)
    assert m.autocorrelation(x, 2) == pytest.approx(0.5)
    assert m.autocorrelation(x, 3) == pytest.approx(-0.25)
    # The same on tokens: onset(60)=62 and REST=0 alternate -> the same values.
    assert m.autocorrelation(line((60, 1), (None, 1), (60, 1), (None, 1)), 1) == pytest.approx(-0.75)


def test_autocorrelation_of_a_constant_is_nan() -> None:
    assert math.isnan(m.autocorrelation([5, 5, 5], 1))
    assert math.isnan(m.autocorrelation([1, 2], 2))


# --- unique extrema --------------------------------------------------------------------------------


def test_unique_extrema() -> None:
    # C E G E C: G struck once (unique max), C twice (lowest not unique).
    assert m.unique_extrema(line((60, 2), (64, 2), (67, 4), (64, 2), (60, 2))) == (True, False)
    assert m.unique_extrema(line((None, 4))) == (False, False)


# --- parallels -------------------------------------------------------------------------------------


def test_parallel_fifths_and_octaves() -> None:
    # Performer C5 D5 (quarters); agent F4 G4 below: 7 then 7 semitones, both up -> 1 parallel fifth.
    assert m.parallel_perfects(line((65, 4), (67, 4)), line((72, 4), (74, 4))) == 1
    # Compound octaves, both up: C3/C5 -> D3/D5 -> 1.
    assert m.parallel_perfects(line((48, 4), (50, 4)), line((72, 4), (74, 4))) == 1
    # Octaves down: C4/C5 -> B3/B4 -> 1.
    assert m.parallel_perfects(line((60, 4), (59, 4)), line((72, 4), (71, 4))) == 1


def test_not_parallels() -> None:
    perf = line((65, 4), (72, 4))
    # Fifth (Bb3 58 / F4 65) to octave (C4 60 / C5 72), both up: a hidden octave, not a parallel.
    assert m.parallel_perfects(line((58, 4), (60, 4)), perf) == 0
    # Contrary motion fifth to fifth: C5->D5 above, F4->G3 (72-65=7, 74-55=19=7 mod 12), agent down -> 0.
    assert m.parallel_perfects(line((65, 4), (55, 4)), line((72, 4), (74, 4))) == 0
    # Oblique: agent holds F4 while the performer moves C5 -> F5 -> C5 (fifth, octave, fifth) -> 0.
    assert m.parallel_perfects(line((65, 12)), line((72, 4), (77, 4), (72, 4))) == 0


def test_staggered_moves_and_rests() -> None:
    # Agent F4 -> G4 moves one step after the performer's C5 -> D5: the simultaneities are
    # (65,72) fifth, (65,74) sixth, (67,74) fifth: no two successive perfect ones -> 0.
    assert m.parallel_perfects(line((65, 5), (67, 3)), line((72, 4), (74, 4))) == 0
    # A rest in the agent between two fifths moving up still reads as a parallel (chain not broken): 1.
    assert m.parallel_perfects(line((65, 3), (None, 1), (67, 4)), line((72, 4), (74, 4))) == 1
    # A phrase break longer than a beat (8 silent steps in the agent) breaks the chain: 0.
    assert m.parallel_perfects(line((65, 4), (None, 8), (67, 4)), line((72, 4), (None, 8), (74, 4))) == 0
    # ... unless the gap allowed is that long: 1.
    assert m.parallel_perfects(line((65, 4), (None, 8), (67, 4)), line((72, 4), (None, 8), (74, 4)), 8) == 1


# --- histograms and density ------------------------------------------------------------------------


def test_pitch_class_overlap() -> None:
    # Agent C E G G -> {C .25, E .25, G .5}; real C C E A -> {C .5, E .25, A .25}; overlap .25+.25 = .5.
    agent = line((60, 1), (64, 1), (67, 1), (55, 1))
    real = line((48, 1), (60, 1), (64, 1), (57, 1))
    assert m.pitch_class_overlap(agent, real) == pytest.approx(0.5)
    assert m.pitch_class_overlap(real, real) == pytest.approx(1.0)
    assert math.isnan(m.pitch_class_overlap(line((None, 4)), real))


def test_inter_onset_intervals_and_emd() -> None:
    quarters = line(*[(60, 4)] * 4)  # onsets 0, 4, 8, 12 -> IOIs 4, 4, 4
    halves = line((60, 8), (62, 8))  # onset 0, 8 -> IOI 8
    assert m.inter_onset_intervals(quarters).tolist() == [4, 4, 4]
    # A rest in between is part of the interval: onsets at 0 and 6.
    assert m.inter_onset_intervals(line((60, 2), (None, 4), (62, 2))).tolist() == [6]
    # All mass at 4 against all mass at 8: move it 4 steps -> 4.
    h4 = m.ioi_histogram(m.inter_onset_intervals(quarters))
    h8 = m.ioi_histogram(m.inter_onset_intervals(halves))
    assert m.emd_1d(h4, h8) == pytest.approx(4.0)
    # Half the mass at 2 and half at 4, against all at 4: move 0.5 by 2 steps -> 1.
    assert m.emd_1d(m.ioi_histogram([2, 4]), m.ioi_histogram([4, 4])) == pytest.approx(1.0)
    # Intervals beyond IOI_MAX are clipped into the last bin.
    assert m.ioi_histogram([1000])[-1] == 1.0


# --- one piece and the pooled row -------------------------------------------------------------------


def test_row_of_two_pieces() -> None:
    # Piece 1: performer C5 held 8; agent C4 then F4 (quarters): C4 octave yes, F4 fifth yes -> 2/2.
    # Real bass C3 whole (1 note). Piece 2: performer E5 held 8; agent F4 (76-65 = 11, a major seventh: no),
    # then rest; real two quarters. Pooled: consonance 2/3; notes 3; real notes 3 -> density 1.
    # Not in key (C major): none. Unique max: piece 1 F4 once yes, piece 2 F4 once yes -> 100%;
    # unique min: piece 1 C4 once yes, piece 2 yes -> 100%.
    p1 = (line((60, 4), (65, 4)), line((72, 8)), line((48, 8)))
    p2 = (line((65, 4), (None, 4)), line((76, 8)), line((48, 4), (43, 4)))
    row = m.line_metrics(
        [p1[0], p2[0]], [p1[1], p2[1]], [p1[2], p2[2]], [C_MAJOR, C_MAJOR], names=["one", "two"]
    )
    assert row["pieces"] == 2
    assert row["consonance_pct"] == pytest.approx(200 / 3)
    assert row["notes"] == 3
    assert row["density_ratio"] == pytest.approx(1.0)
    assert row["not_in_key_pct"] == 0.0
    assert row["unique_max_pct"] == 100.0 and row["unique_min_pct"] == 100.0
    assert row["repeated_pct"] == 0.0 and row["parallels_per_100"] == 0.0
    # No leaps at all (60 -> 65 is a fourth): the resolved share is undefined.
    assert math.isnan(row["leaps_resolved_pct"])
    # PC overlap: piece 1 agent {C .5, F .5} vs real {C 1} -> .5; piece 2 agent {F} vs real {C .5, G .5}
    # -> 0; mean .25.
    assert row["pc_overlap"] == pytest.approx(0.25)
    # IOIs pooled: agent [4] (piece 1; piece 2 has one onset), real [4] (piece 2) -> EMD 0.
    assert row["ioi_emd"] == pytest.approx(0.0)
    assert set(row) >= {c.key for c in m.COLUMNS}


def test_lines_must_match() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        m.piece_stats(line((60, 4)), line((60, 3)), line((60, 4)), C_MAJOR)
