"""The issue-8 eval columns: time-weighted and melody-change consonance, off-beat share, notes per bar, KL to
the prior and argmax agreement, and the tritone adaptation test."""

from __future__ import annotations

import math

import numpy as np
import pytest

from liveagent.env import evaluate as ev
from liveagent.env import metrics as m
from liveagent.env.policies import EvalPolicy
from liveagent.music.piece import Piece
from liveagent.music.tokens import HOLD, ONSET_BASE, REST, onset
from tests.env.test_rewards import line


def test_time_weighted_and_change_consonance_counts() -> None:
    perf = line((60, 4), (62, 4))  # C4 then D4
    agent = line((48, 8))  # C3 held: octave under C4 (4 steps), ninth under D4 (4 steps)
    assert m.time_consonance_counts(agent, perf) == (4, 8)
    assert m.change_consonance_counts(agent, perf) == (1, 2)
    assert m.consonance_counts(agent, perf) == (1, 1)  # onset-only: one agent onset


def test_offbeat_and_notes_per_bar() -> None:
    perf = line((60, 32))
    agent = line((48, 2), (50, 2), (52, 12), (None, 16))  # onsets at 0 (beat), 2 (off), 4 (beat)
    assert m.offbeat_onsets(agent, 4) == 1
    row = m.line_metrics([agent], [perf], [agent], [Piece("x", perf, agent).key])  # type: ignore[list-item]
    assert row["offbeat_pct"] == pytest.approx(100 / 3)
    assert row["off_eighth_pct"] == 0.0
    assert row["notes_per_bar"] == pytest.approx(1.5)
    assert all(math.isnan(row[k]) for k in m.PLAY_COLUMNS)


def test_onsets_between_eighths() -> None:
    """A note struck on the beat and corrected a sixteenth later: off the beat and between the eighths."""
    agent = line((48, 1), (50, 1), (52, 2), (53, 4))  # onsets at 0 (beat), 1 (a sixteenth), 2 (an eighth), 4
    assert m.offbeat_onsets(agent, 4) == 2
    assert m.off_eighth_onsets(agent, 4) == 1
    assert m.off_eighth_onsets(agent, 2) == 0  # steps are eighths: nothing lies between them
    assert m.off_eighth_onsets(agent, 1) == 0


def test_tritone_change_moves_the_performer_from_a_bar_line_and_restrikes_a_held_note() -> None:
    perf = line((60, 24), (62, 8))  # C4 held over the middle bar line (step 16)
    piece = Piece("p", perf, line((48, 32)))
    moved = ev.with_tritone_change(piece)
    assert ev.tritone_change_step(piece) == 16
    assert moved.performer[:16].tolist() == perf[:16].tolist()
    assert moved.performer[16] == onset(66)  # the held C4 is struck again as F#4
    assert moved.performer[24] == onset(68)
    assert moved.accompaniment.tolist() == piece.accompaniment.tolist()


class FollowSounding:
    """A react policy that plays the performer's sounding pitch class in the bass octave (adapts at once)."""

    def __call__(self, obs):  # type: ignore[no-untyped-def]
        b = obs.performer.shape[0]
        logits = np.zeros((b, 130), dtype=np.float32)
        last = obs.performer[:, -1]
        for i in range(b):
            tok = int(last[i])
            logits[i, onset(48 + (tok - ONSET_BASE) % 12) if tok >= ONSET_BASE else HOLD] = 5.0
        return logits


class StuckInC:
    """Plays C3 forever: does not adapt."""

    def __call__(self, obs):  # type: ignore[no-untyped-def]
        logits = np.zeros((obs.performer.shape[0], 130), dtype=np.float32)
        logits[:, onset(48)] = 5.0
        logits[:, HOLD] = 6.0
        return logits


class StrikesC:
    """Strikes C3 on every step: does not adapt either, but is heard in every bar."""

    def __call__(self, obs):  # type: ignore[no-untyped-def]
        logits = np.zeros((obs.performer.shape[0], 130), dtype=np.float32)
        logits[:, onset(48)] = 5.0
        return logits


def _c_major_piece() -> Piece:
    perf = line(*[(p, 4) for p in [60, 64, 67, 72, 67, 64, 60, 64] * 2])
    return Piece("cmaj", perf, line((48, 64)))


def test_adaptation_columns_tell_an_adapting_policy_from_a_stuck_one() -> None:
    pieces = [_c_major_piece()]
    cfg = ev.EvalConfig(progress=False, rewards=False)
    adapts = ev.evaluate_policy(EvalPolicy("adapts", FollowSounding(), 4, "react", 36, 64), pieces, cfg)
    stuck = ev.evaluate_policy(EvalPolicy("stuck", StuckInC(), 4, "react", 36, 64), pieces, cfg)
    assert adapts.row["tritone_bar2_pct"] == 100.0
    assert stuck.row["tritone_bar2_pct"] < 50.0 or math.isnan(stuck.row["tritone_bar2_pct"])
    # The reference: the same bar without the jump. C3 struck on every step is consonant under C major
    # and not under F# major: the column tells "not recovered" from "never consonant there".
    assert adapts.row["tritone_bar2_base_pct"] == 100.0
    strikes = ev.evaluate_policy(EvalPolicy("c3", StrikesC(), 4, "react", 36, 64), pieces, cfg).row
    assert strikes["tritone_bar2_base_pct"] == 100.0 and strikes["tritone_bar2_pct"] < 50.0


def test_kl_to_itself_is_zero_and_agreement_full(monkeypatch: pytest.MonkeyPatch) -> None:
    pol = EvalPolicy("p", FollowSounding(), 4, "react", 36, 64, meta={"prior": "itself"})
    other = EvalPolicy("q", StuckInC(), 4, "react", 36, 64)
    for prior, kl_zero in ((pol, True), (other, False)):
        monkeypatch.setattr(ev, "_prior_of", lambda _p, prior=prior: prior)
        row = ev.evaluate_policy(pol, [_c_major_piece()], ev.EvalConfig(progress=False, adaptation=False)).row
        if kl_zero:
            assert row["kl_prior"] == pytest.approx(0.0, abs=1e-9) and row["prior_agree_pct"] == 100.0
        else:
            assert row["kl_prior"] > 0.1 and row["prior_agree_pct"] < 100.0
    assert REST == 0


def test_policies_wait_for_the_performer_and_stop_after_a_bar_of_silence() -> None:
    # Two bars of silence, a bar of melody, two bars of silence: an eager policy may only play while the
    # melody is heard (and, in follow mode, within the bar after it).
    perf = line((None, 32), (60, 4), (62, 4), (64, 8), (None, 32))
    piece = Piece("gaps", perf, line((48, 80)))

    class Eager:
        def __call__(self, obs):  # type: ignore[no-untyped-def]
            logits = np.zeros((obs.performer.shape[0], 130), dtype=np.float32)
            logits[:, onset(48)] = 5.0
            return logits

    for mode in ("follow", "anticipate"):
        res = ev.evaluate_policy(
            EvalPolicy("eager", Eager(), 4, mode, 36, 64), [piece], ev.EvalConfig(progress=False)
        )
        played = np.flatnonzero(res.lines[0] >= ONSET_BASE)
        first = 32 if mode == "follow" else 33
        assert played.min() == first, (mode, played)
        assert played.max() < 48 + 16 + 1, (mode, played)
