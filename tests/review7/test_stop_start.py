"""The DAW stops and starts its transport mid-song: after /liveagent/stop (everything released before any
all-notes-off burst) and /liveagent/start, the anticipating band must play again under the sequenced
soprano on the new grid."""

from __future__ import annotations

import logging
import time

import pytest

from tests.live.receiver_notes import overlaps
from tests.live.test_serve_band import voice_notes
from tests.review7.helpers import C_SCALE, VOICES, Sequencer, ServeProcess, band_args, harmony, onsets, stuck

pytestmark = pytest.mark.timeout(180)
log = logging.getLogger(__name__)


def test_stop_then_start_the_band_plays_again_on_the_new_grid() -> None:
    with ServeProcess(*band_args("band_anticipate")) as sp:
        seq = Sequencer(sp)
        seq.play(list(C_SCALE[:8]))
        sp.send("/liveagent/stop")
        time.sleep(0.8)
        after_stop = stuck(sp)
        sp.send("/liveagent/start")
        time.sleep(0.3)
        start = seq.play(list(C_SCALE[:12]))
        time.sleep(0.3)
        st = sp.status()
        bar = int(seq.step_ns * 16)
        again = {v: onsets(sp, v, start, start + 3 * bar) for v in VOICES}
        late = sorted(
            (t - (seq.t0 + round((t - seq.t0) / seq.step_ns) * seq.step_ns)) / 1e6
            for e in again.values()
            for t, _ in e
        )
        h = harmony(sp, seq.notes, start, start + 3 * bar)
        mono = {v: overlaps(voice_notes(sp.rx, v)) for v in VOICES}
        assert sp.terminate() == 0, "".join(sp.stderr)[-2000:]
    med = late[len(late) // 2] if late else None
    counts = {v: len(e) for v, e in again.items()}
    msg = (
        f"sounding after /stop {after_stop}; onsets after /start {counts}; "
        f"median grid lateness {med} ms; consonance {h.summary()}; misses {st['misses']}"
    )
    log.info(msg)
    print(msg)
    assert after_stop == {}, msg
    for v in VOICES:
        assert len(again[v]) >= 4, ("the band did not come back after /start", v, msg)
        assert mono[v] == [], (v, mono[v][:3])
    assert med is not None and -0.5 < med < 3.0, msg
    assert h.pct() >= 70.0, msg
    assert int(st["misses"]) <= 2, msg
    assert stuck(sp) == {}, stuck(sp)
