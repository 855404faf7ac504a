"""Review 2, change 1 (performer line = top of the NEWEST notes): a key held under or over a note struck later
drops out of the line; once the later note is released the line is REST although a key is still down,
and after a bar of that the silence gate closes: the agent stops while the performer holds a note.

Scenario (a keyboard player, solo default `serve`, 120 BPM): the right hand holds C5 for 3 bars; on beat 1 the
left hand plays one short C3 (an eighth note) and lets go. Before the change the line was C5 held (HOLD) all
along; now it is REST from the C3's release on. Real serve subprocess, real UDP, status read over OSC.
"""

from __future__ import annotations

from tests.review.band_harness import play
from tests.review2.harness import tree

EVENTS = [
    (0.0, 72, 90, 0.0),  # RH C5 down, held to the end of the run (and past it)
    (1.0, 48, 80, 0.0),  # LH C3, struck after the C5 ...
    (1.5, 48, 0, 0.0),  # ... and released: the C5 is still down
]


def run_scenario(root: str | None) -> dict[str, object]:
    with tree(root):
        run = play([], EVENTS, bpm=120, beats=12, tail_s=0.0)
    solo = [ev for ev in run.lines["solo"] if ev[2] > 0]
    # agent note-ons in the last 2 bars (beats 4..12), the C5 still held throughout
    late = [ev for ev in solo if 16 <= run.step_of(ev[0]) < run.n_steps]
    return {
        "waiting": run.status.get("waiting"),
        "performer_silent_steps": run.status.get("performer_silent_steps"),
        "agent_onsets_last_2_bars": len(late),
        "agent_onsets": len(solo),
    }


def test_held_key_keeps_the_line_and_the_gate_open() -> None:
    got = run_scenario(None)
    print("new:", got)
    # The performer is holding C5: the line must not be REST, the gate must stay open.
    assert got["performer_silent_steps"] == 0, got
    assert not got["waiting"], got  # 0 or False: the status travels over OSC as an int
