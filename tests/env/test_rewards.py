"""Reward terms on hand-made two-voice passages whose right answers were worked out by hand.

Pitches: C3 = 48, E3 = 52, G3 = 55, C4 = 60, E4 = 64 (MIDI, middle C = C4 = 60). The grid is 4 steps per
beat, 16 per bar; ``line((p, n), ...)`` is a note of pitch p (None = rest) lasting n steps.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from liveagent.env.rewards import TERMS, RewardConfig, RewardTracker, score_lines
from liveagent.music.theory import Key
from liveagent.music.tokens import HOLD, REST, onset

C_MAJOR = Key(0, "major")


def line(*notes: tuple[int | None, int]) -> np.ndarray:
    out: list[int] = []
    for pitch, n in notes:
        out += [REST] * n if pitch is None else [onset(pitch)] + [HOLD] * (n - 1)
    return np.array(out, dtype=np.int64)


def terms(perf: np.ndarray, agent: np.ndarray, **kw: object) -> dict[str, np.ndarray]:
    return score_lines(perf, agent, key=kw.pop("key", C_MAJOR), **kw)  # type: ignore[arg-type]


def nonzero(values: np.ndarray) -> dict[int, float]:
    return {int(i): float(values[i]) for i in np.flatnonzero(values)}


def test_every_term_is_a_config_weight() -> None:
    weights = RewardConfig().weights()
    assert list(weights) == list(TERMS)
    assert all(isinstance(w, float) for w in weights.values())


# --- consonance ---------------------------------------------------------------------------------------


def test_major_tenth_c3_under_e4_is_consonant() -> None:
    r = terms(line((64, 4)), line((48, 4)))
    assert nonzero(r["consonance"]) == {0: 1.0}  # only the new sonority counts, not the held steps


def test_fourth_above_the_bass_is_dissonant_g2_under_c4() -> None:
    r = terms(line((60, 4)), line((43, 4)))  # 60 - 43 = 17 = P4 + octave
    assert nonzero(r["consonance"]) == {0: -1.0}
    r = terms(line((60, 4)), line((43, 4)), config=RewardConfig(fourth_dissonant=False))
    assert nonzero(r["consonance"]) == {0: 1.0}


def test_performer_onset_against_a_held_note_is_judged() -> None:
    # C3 held for a beat; the melody moves E4 -> D4 (62 - 48 = 14 = major ninth: dissonant) -> C4 (octave).
    r = terms(line((64, 1), (62, 1), (60, 2)), line((48, 4)))
    assert nonzero(r["consonance"]) == {0: 1.0, 1: -1.0, 2: 1.0}


def test_no_sonority_when_either_voice_is_silent() -> None:
    r = terms(line((None, 2), (64, 2)), line((48, 1), (None, 3)))
    assert not r["consonance"].any()


def test_consonance_when_the_agent_is_the_upper_voice() -> None:
    # Agent E4 above the performer's C3 (major tenth): consonant whoever is on top.
    r = terms(line((48, 2)), line((64, 2)), config=RewardConfig(agent_is_lower=False))
    assert nonzero(r["consonance"]) == {0: 1.0}
    assert not r["voice_crossing"].any()


# --- key, range, crossing -----------------------------------------------------------------------------


def test_in_key_penalizes_f_sharp_in_c_major_only() -> None:
    r = terms(line((72, 8)), line((54, 4), (55, 4)))  # F#3 then G3
    assert nonzero(r["in_key"]) == {0: -1.0}
    r = terms(line((72, 8)), line((54, 4), (55, 4)), key=Key(7, "major"))  # G major has F#
    assert not r["in_key"].any()


def test_range_penalizes_onsets_outside_the_part() -> None:
    r = terms(line((72, 6)), line((65, 2), (64, 2), (35, 2)), pitch_min=36, pitch_max=64)
    assert nonzero(r["range"]) == {0: -1.0, 4: -1.0}


def test_voice_crossing_bass_above_the_melody() -> None:
    r = terms(line((60, 4)), line((64, 2), (55, 2)))  # agent E4 over C4, then G3 under it
    assert nonzero(r["voice_crossing"]) == {0: -1.0}
    r = terms(line((60, 4)), line((64, 2), (55, 2)), config=RewardConfig(agent_is_lower=False))
    assert nonzero(r["voice_crossing"]) == {2: -1.0}


# --- voice leading ------------------------------------------------------------------------------------


def test_stepwise_motion_rewarded_through_rests() -> None:
    # C3, rest, D3 (a step), F3 (a third: neutral), F3 (repeat: neutral).
    r = terms(line((72, 10)), line((48, 2), (None, 2), (50, 2), (53, 2), (53, 2)))
    assert nonzero(r["stepwise"]) == {4: 1.0}


def test_leap_over_an_octave_penalized_octave_itself_not() -> None:
    r = terms(line((72, 6)), line((48, 2), (60, 2), (74, 2)))  # +12 then +14
    assert nonzero(r["large_leap"]) == {4: -1.0}


def test_leap_of_a_sixth_followed_by_a_step_back_is_resolved() -> None:
    r = terms(line((72, 6)), line((48, 2), (57, 2), (55, 2)))  # C3 -> A3 (+9) -> G3 (-2)
    assert nonzero(r["leap_resolution"]) == {4: 1.0}


def test_leap_followed_by_a_step_onwards_is_unresolved() -> None:
    r = terms(line((72, 6)), line((48, 2), (57, 2), (59, 2)))  # C3 -> A3 -> B3: onwards
    assert nonzero(r["leap_resolution"]) == {4: -1.0}
    r = terms(line((72, 6)), line((48, 2), (53, 2), (52, 2)))  # a fourth is not a leap needing resolution
    assert not r["leap_resolution"].any()


def test_two_leaps_in_the_same_direction() -> None:
    r = terms(line((72, 6)), line((48, 2), (55, 2), (62, 2)))  # C3 -> G3 -> D4: +7, +7
    assert nonzero(r["consecutive_leaps"]) == {4: -1.0}
    r = terms(line((72, 6)), line((48, 2), (55, 2), (48, 2)))  # leap back down: not the same direction
    assert not r["consecutive_leaps"].any()
    assert nonzero(r["leap_resolution"]) == {4: -1.0}  # but a leap back is not a stepwise recovery


# --- parallels ----------------------------------------------------------------------------------------


def test_parallel_fifths_c_to_d_under_g_to_a() -> None:
    r = terms(line((55, 4), (57, 4)), line((48, 4), (50, 4)))
    assert nonzero(r["parallel_perfect"]) == {4: -1.0}
    assert not r["hidden_perfect"].any()


def test_parallel_octaves_and_compound_fifths() -> None:
    r = terms(line((60, 4), (62, 4)), line((48, 4), (50, 4)))  # C4/C3 -> D4/D3
    assert nonzero(r["parallel_perfect"]) == {4: -1.0}
    r = terms(line((67, 4), (69, 4)), line((48, 4), (50, 4)))  # twelfths G4/C3 -> A4/D3
    assert nonzero(r["parallel_perfect"]) == {4: -1.0}


def test_contrary_and_oblique_motion_into_fifths_are_fine() -> None:
    r = terms(line((55, 4), (57, 4)), line((48, 4), (38, 4)))  # up in the melody, down in the bass
    assert not r["parallel_perfect"].any()
    r = terms(line((55, 4), (55, 4)), line((48, 4), (48, 4)))  # repeated fifth, no motion
    assert not r["parallel_perfect"].any()
    r = terms(line((55, 4), (57, 4)), line((48, 4), (52, 4)))  # fifth to a third: fine
    assert not r["parallel_perfect"].any()


def test_contrary_motion_is_rewarded_parallel_tenths_are_not() -> None:
    # Melody E4 -> F4 -> G4 over bass C3 -> B2 (contrary), then -> E3 (similar: both up).
    r = terms(line((64, 4), (65, 4), (67, 4)), line((48, 4), (47, 4), (52, 4)))
    assert nonzero(r["contrary_motion"]) == {4: 1.0}
    # Parallel tenths C3/E4 -> D3/F4 -> E3/G4: consonant, but never contrary.
    r = terms(line((64, 4), (65, 4), (67, 4)), line((48, 4), (50, 4), (52, 4)))
    assert not r["contrary_motion"].any()
    assert nonzero(r["consonance"]) == {0: 1.0, 4: 1.0, 8: 1.0}


def test_hidden_octave_needs_a_leap_in_the_upper_voice() -> None:
    # Bass G2 -> C3 (up); melody E3 -> C4 (up a sixth): similar motion into an octave with a leap above.
    r = terms(line((52, 4), (60, 4)), line((43, 4), (48, 4)))
    assert nonzero(r["hidden_perfect"]) == {4: -1.0}
    assert not r["parallel_perfect"].any()
    # Melody B3 -> C4 by step: the same arrival is allowed (Piston).
    r = terms(line((59, 4), (60, 4)), line((43, 4), (48, 4)))
    assert not r["hidden_perfect"].any()


# --- repetition ---------------------------------------------------------------------------------------


def test_note_struck_six_times_in_a_row_is_excessive() -> None:
    # RL Tuner: more than 4 earlier strikes of the same pitch in a row (no holds) -> the 6th is excessive.
    r = terms(line((72, 7)), line(*[(48, 1)] * 7))
    assert nonzero(r["repetition"]) == {5: -1.0, 6: -1.0}


def test_repeated_quarter_notes_get_the_held_threshold() -> None:
    # Quarter notes (onset + holds) of C3: more than 6 earlier strikes needed -> the 8th strike (step 28).
    r = terms(line((72, 36)), line(*[(48, 4)] * 9))
    assert nonzero(r["repetition"]) == {28: -1.0, 32: -1.0}


def test_another_note_breaks_the_run() -> None:
    r = terms(line((72, 10)), line(*[(48, 1)] * 5, (50, 1), *[(48, 1)] * 4))
    assert not r["repetition"].any()


# --- rhythm -------------------------------------------------------------------------------------------


def test_onsets_on_beats_with_the_melody_and_off_the_grid() -> None:
    perf = line((72, 1), (74, 3), (76, 4))  # melody onsets at steps 0, 1, 4
    agent = line((48, 1), (50, 1), (52, 1), (53, 1), (55, 2), (57, 2))  # onsets at 0, 1, 2, 3, 4, 6
    r = terms(perf, agent)
    assert nonzero(r["on_beat"]) == {0: 1.0, 4: 1.0}
    assert nonzero(r["sync"]) == {0: 1.0, 1: 1.0, 4: 1.0}
    assert nonzero(r["weak_onset"]) == {3: -1.0}  # step 1 is with the melody, steps 2 and 6 are eighths


def test_a_whole_bar_of_silence_while_the_melody_plays() -> None:
    r = terms(line((72, 18)), line((None, 18)))
    assert nonzero(r["silent_bar"]) == {15: -1.0, 16: -1.0, 17: -1.0}
    r = terms(line((None, 18)), line((None, 18)))  # both silent: a rest in the piece, not the agent's fault
    assert not r["silent_bar"].any()


def test_a_note_held_longer_than_a_bar() -> None:
    r = terms(line((72, 18)), line((48, 18)))
    assert nonzero(r["long_note"]) == {16: -1.0, 17: -1.0}
    r = terms(line((72, 18)), line((48, 16), (48, 2)))  # re-struck at the barline: fine
    assert not r["long_note"].any()


# --- mechanics ----------------------------------------------------------------------------------------


def test_hold_after_silence_is_rest() -> None:
    tracker = RewardTracker(2)
    tracker.reset_rows(np.arange(2))
    resolved, r = tracker.step(np.array([HOLD, onset(48)]), np.array([onset(60), onset(60)]), np.zeros(2))
    assert resolved.tolist() == [REST, onset(48)]
    assert r["consonance"].tolist() == [0.0, 1.0]
    resolved, _ = tracker.step(np.array([HOLD, HOLD]), np.array([HOLD, HOLD]), np.ones(2))
    assert resolved.tolist() == [REST, HOLD]


def test_batched_scoring_equals_one_by_one() -> None:
    perf = np.stack([line((55, 4), (57, 4)), line((64, 2), (62, 6))])
    agent = np.stack([line((48, 4), (50, 4)), line((43, 1), (45, 3), (None, 4))])
    both = terms(perf, agent)
    for i in range(2):
        one = terms(perf[i], agent[i])
        for name in TERMS:
            np.testing.assert_array_equal(both[name][i], one[name], err_msg=name)


def test_weighted_terms_use_the_config() -> None:
    tracker = RewardTracker(1, RewardConfig(consonance=2.5))
    tracker.reset_rows(np.arange(1))
    _, raw = tracker.step(np.array([onset(43)]), np.array([onset(60)]), np.zeros(1))
    assert tracker.weighted(raw)["consonance"].tolist() == [-2.5]


def test_bad_actions_raise() -> None:
    tracker = RewardTracker(1)
    with pytest.raises(ValueError):
        tracker.step(np.array([130]), np.array([REST]), np.zeros(1))


# --- the vectorized terms against plain loops over random lines -----------------------------------------


def random_lines(rng: np.random.Generator, b: int, t: int, pitches: list[int]) -> np.ndarray:
    """Random agent lines: onsets of a few pitches, holds and rests (HOLD after silence resolved to REST)."""
    tok = rng.choice([REST, HOLD, *[onset(p) for p in pitches]], size=(b, t), p=None)
    return tok.astype(np.int64)


def resolved(line_: np.ndarray) -> list[int]:
    out, sounding = [], False
    for tok in line_.tolist():
        tok = REST if tok == HOLD and not sounding else tok
        sounding = tok != REST
        out.append(tok)
    return out


def rl_tuner_excessive(history: list[int], action: int) -> bool:
    """A direct port of RL Tuner's ``detect_repeating_notes`` loop (REST ~ NOTE_OFF, HOLD ~ NO_EVENT)."""
    num, held, breaks = 0, False, False
    for tok in reversed(history):
        if tok == action:
            num += 1
        elif tok == REST:
            breaks = True
        elif tok == HOLD:
            held = True
        else:
            break
    return num > 4 if not (held or breaks) else num > 6


def test_repetition_matches_rl_tuners_loop() -> None:
    rng = np.random.default_rng(0)
    agent = random_lines(rng, 64, 48, [48])
    agent[:32] = np.where(rng.random((32, 48)) < 0.7, onset(48), agent[:32])  # long runs of strikes
    perf = np.full_like(agent, REST)
    got = terms(perf, agent)["repetition"]
    hits = 0
    for i in range(agent.shape[0]):
        line_ = resolved(agent[i])
        for t, tok in enumerate(line_):
            want = tok >= onset(0) and rl_tuner_excessive(line_[:t], tok)
            assert got[i, t] == (-1.0 if want else 0.0), (i, t)
            hits += want
    assert hits > 20  # the comparison exercised the rule


def test_voice_leading_terms_match_a_loop() -> None:
    rng = np.random.default_rng(1)
    agent = random_lines(rng, 32, 40, [43, 45, 47, 48, 50, 55, 57, 60, 62, 64])
    r = terms(np.full_like(agent, REST), agent)
    for i in range(agent.shape[0]):
        onsets = [(t, tok - onset(0)) for t, tok in enumerate(resolved(agent[i])) if tok >= onset(0)]
        intervals = [(t, p - q) for (t, p), (_, q) in zip(onsets[1:], onsets, strict=False)]
        want_res = np.zeros(40)
        want_consec = np.zeros(40)
        for (_, prev), (t, iv) in itertools.pairwise(intervals):
            if abs(prev) >= 7:
                want_res[t] = 1.0 if 1 <= abs(iv) <= 2 and iv * prev < 0 else -1.0
            if abs(prev) >= 7 and abs(iv) >= 7 and iv * prev > 0:
                want_consec[t] = -1.0
        np.testing.assert_array_equal(r["leap_resolution"][i], want_res)
        np.testing.assert_array_equal(r["consecutive_leaps"][i], want_consec)
