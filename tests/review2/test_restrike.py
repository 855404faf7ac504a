"""Review 2, change 3 (a HOLD past max_note_steps = 32 re-strikes the note instead of cutting it), through a
real serve (solo default and --band satb) over real UDP: the performer holds one key for 6 bars (a pedal
point / a fermata). What does the agent do under it: a same-pitch re-strike exactly 32 steps after its
onset is the engine's, not the policy's (the policy said HOLD). Before the change the note was cut there.
"""

from __future__ import annotations

import pytest

from tests.review.band_harness import VOICES, Run, play
from tests.review2.harness import ROOT, tree

HOLD_EVENTS = [(0.0, 72, 90, 1.0), (24.0, 72, 0, 1.0)]


def engine_restrikes(run: Run, name: str) -> tuple[int, int, int]:
    """(re-strikes of the sounding pitch at age 32 steps, note-ons, longest same-pitch run in steps
    counting re-strikes as continuing) from a line's note messages."""
    ons = [(run.step_of(t), p) for t, p, v in run.lines[name] if v > 0]
    ons = [(k, p) for k, p in ons if 0 <= k < run.n_steps]
    n = 0
    run_start: dict[int, int] = {}
    longest = 0
    prev: tuple[int, int] | None = None
    start = 0
    for k, p in ons:
        if prev is not None and prev[1] == p and k - prev[0] == 32:
            n += 1
        else:
            start = k
        run_start[p] = start
        longest = max(longest, k - start)
        prev = (k, p)
    return n, len(ons), longest


def scenario(root: str | None, band: bool) -> dict[str, tuple[int, int, int]]:
    args = ["--band", "satb", "--policy", str(ROOT / "export" / "band.onnx")] if band else []
    with tree(root):
        run = play(args, HOLD_EVENTS, bpm=160, beats=24)
    return {nm: engine_restrikes(run, nm) for nm in (VOICES if band else ("solo",))}


@pytest.mark.parametrize("band", [False, True], ids=["solo", "band"])
def test_a_note_held_past_the_maximum_is_restruck_only_every_32_steps(band: bool) -> None:
    """By design (state.py ``_playable``): a HOLD past ``max_note_steps`` (32) re-strikes its note, so a
    voice under a long melody note stays (a cut left it silent for bars) and a note-off reaches the synth.
    The review's concern, re-strikes the performer hears as wrong: never more often than every 32 steps."""
    got = scenario(None, band)
    print("new (restrikes at 32, note-ons, longest run):", got)
    for restrikes, note_ons, _longest in got.values():
        assert restrikes >= 1, got  # the voice stayed under the 6-bar note
        assert note_ons <= restrikes + 3, got  # nothing else struck in between
