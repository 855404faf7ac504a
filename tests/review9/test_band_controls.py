"""A real `serve --band satb --policy band_anticipate --clock internal --bpm 240`: the solo desk's session
(/mute, /panic, /stop aimed at T_k - 0.5 ms, inside the spin before step k; policy swaps) against the
band, whose three voices now leave in one pass before the step's recording.

Proves on every voice's address (and the v1 /liveagent/out/note): after each mute and stop nothing stays
sounding and no note-on comes after the step in flight (all voices of that one step at most); after a
panic every note struck before it is released; beats consecutive; no voice strikes twice in a step nor
over its own sounding note; and the recording holds every note of every voice in the order heard.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.live.serve_helpers import ServeProcess
from tests.review9.controls import run_desk
from tests.review9.stage import fast_switch, serve_args

pytestmark = pytest.mark.timeout(150)

VOICES = ("alto", "tenor", "bass")


def test_band_controls_aimed_at_the_spin_release_every_voice(tmp_path: Path) -> None:
    voice_of: dict[str, str | None] = {f"/liveagent/out/{v}/note": v for v in VOICES}
    args = serve_args("--band", "satb", "--policy", "band_anticipate", record=tmp_path)
    with fast_switch(), ServeProcess(*args) as sp:
        res = run_desk(sp, tmp_path, voice_of, ["band_anticipate", "band_anticipate"], 6)
    assert res.status["swaps"] == 2, res.status
    assert int(res.status["misses"]) <= 2, res.status
    assert all(
        n <= len(VOICES) for n in res.in_flight["mute"] + res.in_flight["stop"] + res.in_flight["restart"]
    ), res.in_flight
    assert not res.problems, "\n".join(res.problems)
