"""A hostile musician plays `liveagent serve --band satb` (issue 10) through the real path: a real serve
subprocess, real UDP, an independent receiver on /liveagent/out/VOICE/note. Each test is one defect heard
on stage; it FAILS while the defect is there. Run one at a time (each is a 15-30 s session):

    .venv/bin/pytest -q tests/review/test_band_musician.py -k legato -s
"""

from __future__ import annotations

import itertools
import logging

import pytest

from liveagent.music.tokens import ONSET_BASE, REST
from tests.review.band_harness import VOICES, Run, humanize, line_tokens, performer_tokens, play, report, roll
from tests.review.scenarios import C_MAJOR, DESCENT, HYMN, LONG, length, melody

pytestmark = pytest.mark.timeout(180)
log = logging.getLogger(__name__)
BAND = ("--band", "satb")


def test_legato_descending_line_keeps_the_band_moving() -> None:
    """A keyboard player's legato (the next key down 40 ms before the last one is up) on a descending
    line: detached, each voice plays ~3.7 notes a bar, 82-91 % consonant; legato, the band freezes on
    held notes under the moving melody (0.8-1.0 notes a bar, bass 60 % consonant). The engine decides
    step k ~3 ms after the new note-on, while the old (higher) key is still down, so the skyline hides
    the new note; it appears a sixteenth late, off the beat, and the band policy does not answer it."""
    ev = humanize(melody(DESCENT, legato=0.06), late_ms=0, sd_ms=0)
    run = play(BAND, ev, bpm=90, beats=length(DESCENT))
    rep = report(run)
    print(rep, roll(run), sep="\n")
    melody_per_bar = len(DESCENT) / (length(DESCENT) / 4)
    for v in VOICES:
        assert rep[v]["notes_per_bar"] >= 0.5 * melody_per_bar, (v, rep[v], melody_per_bar)
        assert rep[v]["consonance_pct"] >= 80.0, (v, rep[v])


def test_plain_hymn_meets_the_issue_consonance_target() -> None:
    """A C-major hymn tune, detached, a human 20 ms late (sd 15 ms; every onset answered): the issue asks
    each voice >= 80 % consonant with the melody. Measured: tenor 76.7 %, bass 79.3 % (the tenor drones
    on C4: 17 of its 30 notes, under D5 and B4). (On a dead-on-grid performer the adaptive window shrinks
    to 3 ms, any hiccup is 'late_amended', and the result depends on which beats are missed.)"""
    run = play(BAND, humanize(melody(HYMN), late_ms=20, sd_ms=15, seed=2), bpm=90, beats=length(HYMN))
    rep = report(run)
    print(rep, roll(run), sep="\n")
    for v in VOICES:
        assert rep[v]["consonance_pct"] >= 80.0, (v, rep[v])


def test_plain_hymn_stays_in_its_key() -> None:
    """The same C-major hymn: the band opens with an F-minor chord (Ab4 in the alto, then Bb4/Bb3) under
    C5-C5-D5: 6 of 85 band notes outside C major, all in the first bar and a half, the first chord of
    the song. Allowed here: 2 (a chromatic passing note is fine; a minor chord under a major tune is not)."""
    run = play(BAND, humanize(melody(HYMN), late_ms=0, sd_ms=0), bpm=90, beats=length(HYMN))
    outside = []
    for v in VOICES:
        ln = line_tokens(run, run.lines[v])
        outside += [
            (v, k, int(t) - ONSET_BASE)
            for k, t in enumerate(ln)
            if t >= ONSET_BASE and (t - ONSET_BASE) % 12 not in C_MAJOR
        ]
    print(roll(run))
    assert len(outside) <= 2, outside


def test_block_chords_spread_over_5_ms_are_harmonized_under_their_top_note() -> None:
    """A keyboard player's block chords (C4-E4-C5 ..., the melody on top), the three keys 2.7 ms apart
    (a pianist's chord spreads 5-20 ms), 20 ms behind the beat. The chord grace (3 ms) decides before
    the top key lands: the band harmonizes the chord's middle note, an octave and more under the melody
    (alto on G3 under C5: spacing S-A 17 semitones), and 2 of 3 performer notes are 'late_amended'
    (answered_pct 33 %)."""
    ev = []
    notes = HYMN[:14]
    for i, (p, d) in enumerate(notes):
        b = sum(x[1] for x in notes[:i])
        for j, q in enumerate((p - 12, p - 8 if p % 12 in (0, 5, 7) else p - 9, p)):
            ev += [(b + j * 0.004, q, 90), (b + d - 0.1, q, 0)]
    run = play(BAND, humanize(sorted(ev), late_ms=20, sd_ms=0), bpm=90, beats=length(notes))
    rep = report(run)
    print(rep, roll(run), sep="\n")
    assert rep["band"]["spacing_pct"] <= 10.0, rep["band"]
    # The defect was 33 % answered (the chord decided on its first note). The keys are 2.7 ms apart against
    # the 3 ms grace, so the test's own sender decides the rest: on a loaded 2-core machine a key can leave
    # > 3 ms after the one before (the full suite once saw 6 of 42 amended). Judge the engine on the keys
    # the sender really sent within the grace: only keys sent later may be amended (+2 for the wire).
    ons = [t for t, _, vel in run.sent if vel > 0]
    sender_late = sum(1 for a, b in itertools.pairwise(ons) if 2.9e6 <= b - a < 20e6)
    amended = int(rep["status"]["late_amended"])
    assert amended <= sender_late + 2, (amended, sender_late, rep["status"])


def test_two_bar_whole_notes_keep_every_voice_sounding() -> None:
    """A slow hymn in whole notes held two bars (a soprano holding a long note: the band should hold
    its chord). The bass holds Bb3 under D5 for two bars, is cut by the engine's maximum note length
    (32 steps) on the very step the soprano moves to E5, and HOLD on nothing is REST: the bass is
    silent for the next two bars (25 % of the piece), under an alto tritone (Bb4 under E5)."""
    ev = humanize(melody(LONG, gap=0.05), late_ms=20, sd_ms=15, seed=4)
    run = play(BAND, ev, bpm=90, beats=length(LONG))
    print(report(run), roll(run), sep="\n")
    sop = performer_tokens(run)
    for v in VOICES:
        ln = line_tokens(run, run.lines[v])
        sounding = sum(1 for k in range(ln.size) if sop[k] != REST and ln[k] != REST)
        judged = sum(1 for k in range(ln.size) if sop[k] != REST)
        assert sounding >= 0.9 * judged, (v, sounding, judged)


def _silent_under_melody(run: Run, name: str) -> int:
    """Steps where the performer sounds a note and the line ``name`` is silent."""
    sop = performer_tokens(run)
    ln = line_tokens(run, run.lines[name])
    return sum(1 for k in range(ln.size) if sop[k] != REST and ln[k] == REST)


def test_a_15_ms_slip_after_a_steady_start_does_not_silence_the_band() -> None:
    """A steady player (on the grid: the adaptive follow window shrinks to its 3 ms minimum) slips 15, 25
    and 20 ms on three notes (within what an ensemble hears as together). Each slip is 'late_amended':
    the step is decided as a REST of the soprano. The solo default comes back a sixteenth later; the
    band's alto and bass stay silent until the melody's NEXT note (a whole half note, 1.3 s at 90 BPM:
    alto 16 silent steps under a sounding melody, solo 4)."""
    ev = humanize(melody(HYMN), late_ms=0, sd_ms=0)
    slip = {14.0: 15.0, 20.0: 25.0, 24.0: 20.0}
    ev = [(b, p, v, slip.get(b, off) if v else off) for b, p, v, off in ev]
    band = play(BAND, ev, bpm=90, beats=length(HYMN))
    solo = play((), ev, bpm=90, beats=length(HYMN))
    silent = {v: _silent_under_melody(band, v) for v in VOICES}
    silent_solo = _silent_under_melody(solo, "solo")
    print(band.status.get("late_amended"), silent, silent_solo, roll(band), roll(solo, ("solo",)), sep="\n")
    for v in VOICES:
        assert silent[v] <= max(4, 2 * silent_solo), (v, silent, silent_solo)


@pytest.mark.xfail(
    strict=True,
    reason="open (issue 10 note): under a 240 BPM sixteenth run the shipped band holds chord tones across "
    "a bar line (the chorale texture it learned: passing notes over held harmony) where a player expects "
    "movement every bar; measured: the alto strikes in 3 of 4 bars",
)
def test_240_bpm_sixteenth_runs_keep_the_band_playing() -> None:
    """A fast player: a C-major scale up and down in sixteenths at 240 BPM, 20 ms late (sd 15 ms), four
    bars. The band strikes three chords in the first two beats, then holds one F-major chord (F3-A4-C5)
    under the whole scale for 2 bars (bass 50 %, tenor 67 % consonant with what is played), the engine
    cuts it at the maximum note length (32 steps) and every voice is then SILENT for 1.3 bars while the
    player is still running (the solo default plays 67 notes in the same 4 bars). No miss: the engine
    keeps time; the music stops."""
    pitches = [72, 74, 76, 77, 79, 81, 83, 84, 83, 81, 79, 77, 76, 74, 72, 71] * 4
    ev: list[tuple[float, int, int]] = []
    for i, p in enumerate(pitches):
        ev += [(i * 0.25, p, 90), (i * 0.25 + 0.2, p, 0)]
    run = play(BAND, humanize(sorted(ev), late_ms=20, sd_ms=15, seed=7), bpm=240, beats=16)
    rep = report(run)
    print(rep, roll(run), sep="\n")
    assert rep["status"]["misses"] == 0, rep["status"]
    judged = sum(1 for t in performer_tokens(run) if t != REST)
    for v in VOICES:
        assert _silent_under_melody(run, v) <= 0.1 * judged, (v, _silent_under_melody(run, v), judged)
        ln = line_tokens(run, run.lines[v])
        bars_with_a_note = sum(1 for b in range(4) if (ln[16 * b : 16 * b + 16] >= ONSET_BASE).any())
        assert bars_with_a_note == 4, (v, bars_with_a_note)
