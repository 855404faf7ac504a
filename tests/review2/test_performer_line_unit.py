"""Review 2, change 1, pure logic (``PerformerLine``, no I/O): what a keyboard player's two hands, a pedal
tone and a rolled chord become in the line the policy hears. Each test states what the line should be;
the ones failing are regressions of "the top of the NEWEST notes" against the plain skyline."""

from __future__ import annotations

from liveagent.live.engine.performer import PerformerLine
from liveagent.music.tokens import HOLD, ONSET_BASE, REST


def line(events: list[tuple[int, int, int]], n: int) -> list[int]:
    """Tokens of steps 0..n-1 for ``(step, pitch, velocity)`` events."""
    pl = PerformerLine(max_hold_steps=64)
    for s, p, v in events:
        pl.add(s, p, v)
    return [pl.finalize() for _ in range(n)]


def on(p: int) -> int:
    return ONSET_BASE + p


def test_two_hands_melody_held_over_left_hand_quarters() -> None:
    """RH holds E5 for a half note (8 steps); LH plays C3, E3, G3 quarter notes under it from step 4 on
    (Alberti-like accompaniment). The melody is E5 throughout; the newest-notes rule hears C3, E3, G3."""
    ev = [(0, 76, 90), (0, 48, 70), (3, 48, 0), (4, 52, 70), (7, 52, 0), (8, 76, 0)]
    got = line(ev, 8)
    assert got == [on(76)] + [HOLD] * 7, got


def test_pedal_tone_then_short_note_released_is_not_rest() -> None:
    """A low pedal C2 held; one short G4 on step 4, released on step 6: the pedal still sounds, the line
    must not go REST (REST for a bar closes the silence gate: see test_held_key_gate.py)."""
    ev = [(0, 36, 80), (4, 67, 80), (6, 67, 0)]
    got = line(ev, 10)
    assert REST not in got, got


def test_rolled_chord_top_down_straddling_a_step() -> None:
    """A chord rolled from the top (G5 first, then E4, C4 on the next step, all held): the melody is G5,
    the newest-notes rule hears E4 as a new melody note."""
    ev = [(0, 79, 90), (1, 64, 70), (1, 60, 70)]
    got = line(ev, 4)
    assert got == [on(79), HOLD, HOLD, HOLD], got


def test_legato_descending_is_heard() -> None:
    """What the change is for (held): C5 then B4 struck while C5 is still down: B4 is the new note."""
    ev = [(0, 72, 90), (4, 71, 90), (5, 72, 0)]
    got = line(ev, 6)
    assert got[4] == on(71), got


def test_trill_and_repeated_notes() -> None:
    """Held: a trill C5/D5 overlapping by a step, and a repeated note, each heard as an onset."""
    ev = [(0, 72, 90), (1, 74, 90), (2, 72, 0), (2, 72, 90), (3, 74, 0), (3, 74, 90), (4, 72, 0)]
    got = line(ev, 5)
    assert got == [on(72), on(74), on(72), on(74), HOLD], got


def test_note_off_before_note_on_of_same_step_order() -> None:
    """Held: out-of-order arrival (the next note-on before the previous note-off, both in one step)."""
    ev = [(0, 72, 90), (2, 74, 90), (2, 72, 0)]
    got = line(ev, 4)
    assert got == [on(72), HOLD, on(74), HOLD], got


def test_live_line_matches_training_tokens() -> None:
    """The docstring of ``PerformerLine._skyline`` says ``notes_to_tokens`` (the training tokens) uses the
    same rule; it does not (plain skyline): live and training disagree on the two-hand case."""
    from liveagent.music.tokens import Note, notes_to_tokens

    notes = [Note(0, 8, 76, 90), Note(0, 3, 48, 70), Note(4, 3, 52, 70)]
    train = [int(t) for t in notes_to_tokens(notes, 8)]
    live = line([(0, 76, 90), (0, 48, 70), (3, 48, 0), (4, 52, 70), (7, 52, 0), (8, 76, 0)], 8)
    assert live == train, (live, train)
