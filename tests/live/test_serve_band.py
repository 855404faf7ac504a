"""A real `liveagent serve --band satb` plays alto, tenor and bass under a performer's soprano over OSC.

Real UDP both ways: the performer is this test sending `/liveagent/note`, the receiver an independent
socket that sees each voice on `/liveagent/out/VOICE/note` and the lowest voice also on the v1 address
`/liveagent/out/note`. Releases are checked BEFORE any all-notes-off burst (tests/live/receiver_notes.py),
so a voice the engine forgot to release fails the test.
"""

from __future__ import annotations

import signal
import threading
import time

import pytest

from liveagent.live.engine.policy import OnnxPolicy
from liveagent.music.band import BANDS
from tests.live.osc_helpers import OscCollector
from tests.live.receiver_notes import NoteEv, before_first_burst, osc_notes
from tests.live.serve_helpers import ServeProcess, wait_until

pytestmark = pytest.mark.timeout(120)

VOICES = BANDS["satb"]
MELODY = (72, 74, 76, 77, 79, 77, 76, 74, 72, 71, 72, 74, 76, 74, 72, 72)
"""Quarter notes in C major, as a soprano would sing them (16 beats = 4 bars)."""
BPM = 100.0


def voice_notes(rx: OscCollector, voice: str) -> list[NoteEv]:
    address = f"/liveagent/out/{voice}/note"
    return [(t, int(p[0]), int(p[1])) for t, a, p in list(rx.messages) if a == address]


def play_melody(
    sp: ServeProcess, stop: threading.Event, beats: int = len(MELODY), behind_ns: float = 4e6
) -> None:
    """The performer: a quarter note on each of serve's beats (its grid read from the status, as a player
    hears the band's beat), ``behind_ns`` behind (human; 0: a sequencer), released before the next.

    Timed on serve's own grid, not on a free-running clock: a free-running performer lands at whatever phase
    serve's start-up left (a cold start put every note a sixteenth + 64 ms off the beat, and the band, hearing
    a melody always on the off-beat, played 3 notes a voice in 4 bars)."""
    assert wait_until(lambda: "grid_t0_ns" in sp.status(), 5)
    st = sp.status()
    t0, beat_ns = int(st["grid_t0_ns"]), float(st["step_ns"]) * 4
    n = int((time.perf_counter_ns() - t0) // beat_ns) + 1
    for i in range(beats):
        if stop.is_set():
            return
        pitch = MELODY[i % len(MELODY)]
        t_on = t0 + (n + i) * beat_ns + behind_ns
        while (wait := t_on - time.perf_counter_ns()) > 0:
            time.sleep(min(wait / 1e9, 0.01) if wait > 2e6 else 0)
        sp.send("/liveagent/note", pitch, 90)
        time.sleep(beat_ns * 0.9 / 1e9)
        sp.send("/liveagent/note", pitch, 0)


@pytest.fixture(scope="module")
def band_ranges() -> dict[str, tuple[int, int]]:
    spec = OnnxPolicy.load("band").meta.band
    assert spec is not None and spec.voices == VOICES
    return dict(zip(spec.voices, spec.ranges, strict=True))


def test_band_plays_three_voices_each_on_its_address(band_ranges: dict[str, tuple[int, int]]) -> None:
    with ServeProcess("--band", "satb", "--bpm", str(BPM), "--autostart", "--no-record") as sp:
        assert "band=satb:alto,tenor,bass" in " ".join(sp.stdout)
        time.sleep(0.3)
        play_melody(sp, threading.Event())
        time.sleep(0.3)
        st = sp.status()
        assert st["band"] == "alto,tenor,bass" and st["policy"] == "band", st
        assert st["misses"] == 0, st
        rc = sp.terminate(signal.SIGTERM)
        assert rc == 0, "".join(sp.stderr)[-2000:]
        for voice in VOICES:
            ons = [p for _, p, v in voice_notes(sp.rx, voice) if v > 0]
            assert len(ons) >= 4, (voice, ons)
            lo, hi = band_ranges[voice]
            assert all(lo <= p <= hi for p in ons), (voice, ons, (lo, hi))
            assert before_first_burst(voice_notes(sp.rx, voice)) == {}, f"{voice} left sounding"
        # v1 clients keep working: /liveagent/out/note carries the lowest voice, note for note.
        bass = [(p, v) for _, p, v in voice_notes(sp.rx, "bass")]
        v1 = [(p, v) for _, p, v in osc_notes(sp.rx)]
        assert v1[: len(bass)] == bass, "the v1 address is not the bass"


def test_stop_releases_every_voice_before_any_burst() -> None:
    with ServeProcess("--band", "satb", "--bpm", str(BPM), "--autostart", "--no-record") as sp:
        stop = threading.Event()
        performer = threading.Thread(target=play_melody, args=(sp, stop), daemon=True)
        performer.start()
        assert wait_until(lambda: all(voice_notes(sp.rx, v) for v in VOICES), 15), "not every voice played"
        time.sleep(0.4)
        sounding = {v: before_first_burst(voice_notes(sp.rx, v)) for v in VOICES}
        assert any(sounding.values()), "nothing sounding when /stop is sent: the check could not fail"
        sp.send("/liveagent/stop")
        time.sleep(0.3)
        for voice in VOICES:
            assert before_first_burst(voice_notes(sp.rx, voice)) == {}, f"{voice} still sounds after /stop"
        stop.set()
        performer.join(5)
        assert sp.terminate() == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--band", "satb", "--policy", "default"), "plays one line"),
        (("--policy", "band"), "add --band satb"),
        (("--band", "satb", "--band-channels", "2,3"), "3 distinct channels"),
    ],
)
def test_band_and_policy_must_agree(args: tuple[str, ...], message: str) -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "liveagent", "serve", "--osc-port", "0", "--no-record", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0 and message in proc.stderr, (proc.returncode, proc.stderr[-1500:])
