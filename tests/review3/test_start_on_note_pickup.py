"""A pickup note (anacrusis) before the downbeat: ``--start-on-note`` takes it as the downbeat.

A soprano sings a sixteenth-note pickup (B4) and then the 16-beat melody on the beat. Serve makes the pickup
step 0, so every downbeat and beat of the melody lands one sixteenth after serve's beat, on step 4k + 1: the
band hears an off-beat melody, exactly the case the feature exists to prevent. Measured (band, 100 BPM):
alto/tenor/bass 4 onsets each over the 16 melody beats, against 17 each when the same melody starts on its
first beat. (An eighth pickup happens to hold up: 17/17/14; a sixteenth, the most common pickup in a
march or a hymn tune's dotted rhythm, does not.)
"""

from __future__ import annotations

import pytest

from tests.review3.harness import BEAT_NS, VOICES, Script, band_hears, quarters

pytestmark = pytest.mark.timeout(120)


def test_a_sixteenth_pickup_does_not_put_the_melody_off_the_band_beat() -> None:
    step = BEAT_NS / 4
    script = quarters(t0_ns=step, script=Script().note(0, 71, 0.9 * step))
    h, st = band_hears(script)
    for voice in VOICES:
        assert h.onsets[voice] >= 10, f"{voice}: the band dropped out after a pickup ({h}; status {st})"
