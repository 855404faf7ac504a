"""The performer's line as heard live equals the tokens training sees (``notes_to_tokens``, the skyline)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from liveagent.live.engine.performer import PerformerLine
from liveagent.music.tokens import HOLD, REST, Note, notes_to_tokens, onset

note = st.builds(Note, st.integers(0, 30), st.integers(1, 8), st.integers(55, 70))


def live_tokens(notes: list[Note], n_steps: int) -> list[int]:
    line = PerformerLine()
    events = []
    for n in notes:
        events.append((n.start, 1, n.pitch, 100))
        events.append((n.start + n.length, 0, n.pitch, 0))
    for step, _, pitch, vel in sorted(events):  # offs before ons at the same step
        line.add(step, pitch, vel)
    return [line.finalize() for _ in range(n_steps)]


@settings(max_examples=200, deadline=None)
@given(st.lists(note, max_size=8))
def test_live_quantized_line_matches_the_training_tokens(notes: list[Note]) -> None:
    # Notes either start together (a chord: the skyline) or do not overlap: where a newer note starts
    # under an older one still down, the live line follows the newer note (legato; see the test below)
    # while the corpus keeps the skyline.
    kept: list[Note] = []
    for n in notes:
        if all((m.start == n.start and m.pitch != n.pitch) or m.start + m.length <= n.start
               or n.start + n.length <= m.start for m in kept):  # fmt: skip
            kept.append(n)
    n_steps = 40
    assert live_tokens(kept, n_steps) == notes_to_tokens(kept, n_steps).tolist()


def test_legato_the_next_lower_note_is_heard_while_the_previous_key_is_still_down() -> None:
    line = PerformerLine()
    line.add(0, 67, 100)
    line.add(4, 65, 100)  # the next note goes down ...
    line.add(5, 67, 0)  # ... before the previous one comes up (legato)
    line.add(8, 64, 100)
    line.add(9, 65, 0)
    toks = [line.finalize() for _ in range(12)]
    assert toks == [onset(67), HOLD, HOLD, HOLD, onset(65), HOLD, HOLD, HOLD, onset(64), HOLD, HOLD, HOLD]


def test_chord_skyline_and_release_to_a_lower_note() -> None:
    line = PerformerLine()
    line.add(0, 60, 100)
    line.add(0, 64, 100)  # chord: the top note speaks
    line.add(2, 64, 0)  # the top is released: the held lower note becomes the line
    assert [line.finalize() for _ in range(4)] == [onset(64), HOLD, onset(60), HOLD]


def test_late_events_go_to_the_next_open_step() -> None:
    line = PerformerLine()
    assert line.finalize() == REST
    line.add(0, 62, 90)  # step 0 is already final
    assert line.late == 1
    assert line.finalize() == onset(62)
