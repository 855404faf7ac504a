"""A real `serve --policy anticipate --clock internal --bpm 240`: /mute, /panic, /policy and /stop aimed at
T_k - 0.5 ms, inside the engine's last-millisecond spin before step k (where ``Engine._emit_due`` sends the
step at once unless something is queued), many times in a row, with an on-grid performer.

Proves, at an independent UDP receiver: after each mute and stop nothing stays sounding and no note-on
comes after the step in flight; after each panic every note struck before it is released by the engine;
beats count up without a double or a gap within each transport run; no step is struck twice; the line
never overlaps itself (each note-on after the last note-off: swaps included); misses stay low; and the
session recording holds every note the receiver heard, in the same order, note-offs included, each
note-on recorded no later than it arrived.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.live.serve_helpers import ServeProcess
from tests.review9.controls import run_desk
from tests.review9.stage import fast_switch, serve_args

pytestmark = pytest.mark.timeout(150)

ROUNDS = 8
"""Mutes and panics aimed at the spin (stops: ROUNDS - 2)."""


def test_controls_aimed_at_the_spin_leave_nothing_sounding_and_the_recording_whole(tmp_path: Path) -> None:
    with fast_switch(), ServeProcess(*serve_args("--policy", "anticipate", record=tmp_path)) as sp:
        res = run_desk(
            sp, tmp_path, {"/liveagent/out/note": None}, ["mle", "anticipate", "mle", "anticipate"], ROUNDS
        )
    assert res.status["swaps"] == 4, res.status
    assert int(res.status["misses"]) <= 2, res.status
    # The one step in flight: a mute or stop aimed 0.5 ms before T_k may let step k out, never more.
    assert all(n <= 1 for n in res.in_flight["mute"] + res.in_flight["stop"] + res.in_flight["restart"]), (
        res.in_flight
    )
    assert not res.problems, "\n".join(res.problems)
