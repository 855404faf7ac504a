"""The issue-8 objective: time-weighted and melody-change consonance, density and off-beat terms, phrases
with their real history, and the follow-mode timing noise. Passages worked out by hand.

Pitches: C3 = 48, D3 = 50, E3 = 52, F3 = 53, G3 = 55, C4 = 60, D4 = 62, E4 = 64 (MIDI).
"""

from __future__ import annotations

import numpy as np

from liveagent.env.config import EnvConfig
from liveagent.env.rewards import RewardConfig
from liveagent.env.vector import BatchedAccompanimentEnv
from liveagent.music.features import hide_current_onsets
from liveagent.music.piece import Piece
from liveagent.music.tokens import HOLD, ONSET_BASE, REST, onset
from tests.env.test_rewards import line, nonzero, terms


def test_vertical_consonance_counts_every_step_both_sound() -> None:
    # Melody C4 held 4 steps; agent C3 (octave: consonant) held 2, then D3 (a seventh below C4) held 2.
    perf = line((60, 4))
    agent = line((48, 2), (50, 2))
    got = terms(perf, agent)["vertical_consonance"]
    assert got.tolist() == [1, 1, -1, -1]
    # The onset-only term judges only the two onsets; re-striking would be the only way to earn more there.
    assert nonzero(terms(perf, agent)["consonance"]) == {0: 1.0, 2: -1.0}


def test_restriking_a_held_consonance_earns_no_more_than_holding_it() -> None:
    perf = line((60, 4))
    held = terms(perf, line((48, 4)))["vertical_consonance"].sum()
    restruck = terms(perf, line((48, 1), (48, 1), (48, 1), (48, 1)))["vertical_consonance"].sum()
    assert held == restruck == 4


def test_change_consonance_judges_only_melody_onsets_against_the_sounding_agent() -> None:
    # Melody C4, D4, E4 (2 steps each) over an agent that holds C3 throughout:
    # C4/C3 consonant, D4/C3 a ninth (dissonant), E4/C3 a tenth (consonant).
    perf = line((60, 2), (62, 2), (64, 2))
    agent = line((48, 6))
    assert nonzero(terms(perf, agent)["change_consonance"]) == {0: 1.0, 2: -1.0, 4: 1.0}
    # Silent agent: nothing judged.
    assert not terms(perf, line((None, 6)))["change_consonance"].any()


def test_density_penalizes_notes_past_the_bar_limit_and_short_bars() -> None:
    cfg = RewardConfig(max_notes_per_bar=3, min_notes_per_bar=2)
    perf = line((60, 32))
    busy = line(*[(48, 1)] * 5, (48, 11), (None, 16))  # 6 onsets in bar 1, none in bar 2
    got = terms(perf, busy, config=cfg)["density"]
    assert nonzero(got) == {3: -1.0, 4: -1.0, 5: -1.0, 31: -2.0}


def test_offbeat_penalizes_onsets_off_the_beat() -> None:
    perf = line((60, 8))
    agent = line((48, 2), (50, 2), (52, 1), (53, 3))  # onsets at 0, 2, 4, 5
    assert nonzero(terms(perf, agent)["offbeat"]) == {2: -1.0, 5: -1.0}


BASS: dict = {"transpose": False, "pitch_min": 36, "pitch_max": 64}


def _piece(n_bars: int = 4) -> Piece:
    perf = line(*[(60 + (i % 5), 4) for i in range(4 * n_bars)])
    bass = line(*[(48 + (i % 3), 8) for i in range(2 * n_bars)])
    return Piece("hand", perf, bass)


def test_phrases_start_with_their_real_history() -> None:
    piece = _piece()
    cfg = EnvConfig(
        window=16, phrase_steps=16, phrase_history=True, transpose=False, pitch_min=36, pitch_max=64
    )
    env = BatchedAccompanimentEnv([piece], 1, cfg, seed=0)
    obs, info = env.reset(options={"starts": [32]})
    assert info["t"].tolist() == [0] and info["start"].tolist() == [32]
    # The windows hold the piece's bar before the phrase: the melody and Bach's bass as the agent's past.
    assert obs.performer[0].tolist() == piece.performer[16:32].tolist()
    assert obs.agent[0].tolist() == piece.accompaniment[16:32].tolist()
    # The bass note sounding at the cut goes on: HOLD is a real hold, scored against the melody.
    _, _, _, _, info = env.step(np.array([HOLD]))
    assert env._agent[0, env._hist] == HOLD
    assert info["reward_terms"]["long_note"][0] == 0.0
    # Without history the same phrase starts in silence and a HOLD is a REST.
    cfg0 = EnvConfig(window=16, phrase_steps=16, **BASS)
    env0 = BatchedAccompanimentEnv([piece], 1, cfg0, seed=0)
    obs0, _ = env0.reset(options={"starts": [32]})
    assert not obs0.performer.any() and not obs0.agent.any()


def test_episode_lengths_and_steps_ignore_the_history_columns() -> None:
    piece = _piece()
    cfg = EnvConfig(
        window=16, phrase_steps=16, phrase_history=True, transpose=False, pitch_min=36, pitch_max=64
    )
    env = BatchedAccompanimentEnv([piece], 1, cfg, seed=0, autoreset=False)
    env.reset(options={"starts": [16]})
    for _ in range(16):
        _, _, term, trunc, info = env.step(np.array([REST]))
    assert bool(term[0] or trunc[0]) and info["episode_length"].tolist() == [16]


def test_hide_current_onsets_hides_only_the_decided_step() -> None:
    w = np.array(
        [
            [REST, onset(60), HOLD, onset(62)],  # previous note sounding -> HOLD
            [onset(60), HOLD, REST, onset(64)],  # silence before -> REST
            [REST, onset(60), HOLD, HOLD],  # no onset at the last step: untouched
        ],
        dtype=np.int64,
    )
    hidden = hide_current_onsets(w, np.array([True, True, True]))
    assert hidden == 2
    assert w[:, -1].tolist() == [HOLD, REST, HOLD]
    assert w[:, :-1].tolist() == [[REST, onset(60), HOLD], [onset(60), HOLD, REST], [REST, onset(60), HOLD]]


def test_follow_env_hides_late_onsets_at_about_the_asked_rate_and_never_in_anticipate() -> None:
    piece = _piece(8)
    for mode, prob in (("follow", 0.5), ("anticipate", 0.5), ("follow", 0.0)):
        cfg = EnvConfig(
            window=16, mode=mode, late_onset_prob=prob, transpose=False, pitch_min=36, pitch_max=64
        )
        env = BatchedAccompanimentEnv([piece], 64, cfg, seed=1)
        env.reset(seed=1)
        onsets = 0
        for _ in range(40):
            env.step(np.full(64, REST))
            onsets += int((env._perf[env._rows, env._t] >= ONSET_BASE).sum())
        if mode == "follow" and prob > 0:
            assert 0.35 < env.late_hidden / max(onsets, 1) < 0.65
        else:
            assert env.late_hidden == 0


def test_key_changes_move_the_performer_from_a_bar_line_and_the_key_with_it() -> None:
    piece = _piece(8)
    cfg = EnvConfig(window=16, phrase_steps=64, key_change_prob=1.0, **BASS)
    env = BatchedAccompanimentEnv([piece], 8, cfg, seed=3, autoreset=False)
    env.reset(seed=3, options={"starts": [0] * 8})
    for r in range(8):
        c, d = int(env._change_at[r]), int(env._change_by[r])
        assert c > 0 and c % 16 == 0 and d != 0 and abs(d) <= 6
        before, after = piece.performer[:c], piece.performer[c:64]
        assert env._perf[r, :c].tolist() == before.tolist()
        moved = env._perf[r, c:64]
        onsets = after >= ONSET_BASE
        assert (moved[onsets] == after[onsets] + d).all()
        assert moved[0] >= ONSET_BASE  # a held note is struck again in the new key
    mask0 = env._tracker.key_mask.copy()
    for _ in range(64):
        env.step(np.full(8, REST))
    for r in range(8):
        assert env._tracker.key_mask[r].tolist() == np.roll(mask0[r], env._change_by[r]).tolist()


def test_parallel_imperfect_penalizes_shadowing_in_thirds_not_contrary_motion() -> None:
    # Melody E4 F4 G4 over the agent C4 D4 E4: E-C = 4, F-D = 3, G-E = 3, so only the second move keeps
    # the same third while both voices rise.
    perf = line((64, 2), (65, 2), (67, 2))
    agent = line((60, 2), (62, 2), (64, 2))
    assert nonzero(terms(perf, agent)["parallel_imperfect"]) == {4: -1.0}
    contrary = line((60, 2), (57, 2), (55, 2))
    assert not terms(perf, contrary)["parallel_imperfect"].any()


def test_independent_onset_pays_for_moving_while_the_melody_holds() -> None:
    perf = line((64, 8))  # E4 held
    agent = line((48, 4), (55, 4))  # C3 then G3 under the held E4
    assert nonzero(terms(perf, agent)["independent_onset"]) == {4: 1.0}  # the first onset is with the melody
    assert not terms(line((None, 8)), agent)["independent_onset"].any()  # nothing to move against
