"""MIDI files <-> tokens: round trips, tracks and channels, and clear errors for bad files."""

from __future__ import annotations

import os
from pathlib import Path

import mido
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from liveagent.music.midifile import (
    MidiFileError,
    TrackSelector,
    read_midi,
    select_tracks,
    track_tokens,
    write_midi,
)
from liveagent.music.tokens import HOLD, ONSET_BASE, REST, Grid, onset, tokens_to_notes

SOPRANO = [onset(72), HOLD, HOLD, onset(72), onset(74), REST, REST, onset(76), HOLD, REST, REST, REST]
BASS = [onset(48), HOLD, HOLD, HOLD, onset(43), HOLD, HOLD, HOLD, onset(36), REST, REST, REST]


def canonical_line(draw_tokens: list[int]) -> np.ndarray:
    out, sounding = [], False
    for t in draw_tokens:
        if t == HOLD and not sounding:
            t = REST
        sounding = t != REST
        out.append(t)
    return np.array(out, dtype=np.int64)


line_tokens = st.lists(
    st.sampled_from([REST, HOLD, HOLD, onset(40), onset(60), onset(61), onset(127)]), max_size=40
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(line_tokens, line_tokens, st.sampled_from([1, 2, 3, 4, 6]))
def test_round_trip(tmp_path: Path, a: list[int], b: list[int], spb: int) -> None:
    grid = Grid(steps_per_beat=spb, beats_per_bar=3)
    n = max(len(a), len(b))
    la = canonical_line(a + [REST] * (n - len(a)))
    lb = canonical_line(b + [REST] * (n - len(b)))
    if not ((la >= ONSET_BASE).any() or (lb >= ONSET_BASE).any()):
        la = np.array([onset(60)] + [REST] * max(0, n - 1), dtype=np.int64)
    path = write_midi(tmp_path / "rt.mid", {"Upper": la, "Lower": lb}, bpm=97.5, grid=grid)
    song = read_midi(path, grid)
    assert song.n_steps == max(n, 1)
    assert song.bpm == pytest.approx(97.5, abs=1e-3)
    assert song.time_signature == (3, 4)
    assert song.off_grid == 0
    for name, line in (("Upper", la), ("Lower", lb)):
        if (line >= ONSET_BASE).any():
            assert np.array_equal(
                track_tokens(song, f"name:{name}"), np.pad(line, (0, song.n_steps - len(line)))
            )


def test_two_tracks_by_name_index_channel(tmp_path: Path) -> None:
    path = write_midi(
        tmp_path / "duet.mid", {"Soprano": SOPRANO, "Bass": BASS}, bpm=93, velocities={"Bass": 64}
    )
    song = read_midi(path)
    assert song.midi_type == 1 and song.bpm == pytest.approx(93) and song.time_signature == (4, 4)
    assert [t.name for t in song.tracks] == ["Soprano", "Bass"]
    assert song.channels == (0, 1)
    assert song.n_steps == len(SOPRANO)
    assert track_tokens(song, "name:Soprano").tolist() == SOPRANO
    assert track_tokens(song, "bass").tolist() == BASS  # bare word = name, case-insensitive
    assert track_tokens(song, "index:1").tolist() == BASS
    assert track_tokens(song, 0).tolist() == SOPRANO
    assert track_tokens(song, "channel:1").tolist() == BASS
    assert {n.velocity for n in song.tracks[1].notes} == {64}
    assert song.tracks[0].notes[1].start == 3  # the re-struck C stays two notes


def write_raw(
    path: Path, tracks: list[list[mido.Message | mido.MetaMessage]], tpb: int = 480, kind: int = 1
) -> Path:
    mid = mido.MidiFile(type=kind, ticks_per_beat=tpb)
    for msgs in tracks:
        t = mido.MidiTrack()
        t.extend(msgs)
        mid.tracks.append(t)
    mid.save(str(path))
    return path


def test_type0_split_by_channel_and_chords(tmp_path: Path) -> None:
    on, off = "note_on", "note_off"
    msgs = [
        mido.MetaMessage("track_name", name="Piano", time=0),
        mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(60), time=0),
        mido.Message(on, channel=0, note=60, velocity=90, time=0),
        mido.Message(on, channel=0, note=64, velocity=90, time=0),  # chord on channel 0
        mido.Message(on, channel=3, note=36, velocity=70, time=0),
        mido.Message(off, channel=0, note=60, time=480),
        mido.Message(on, channel=0, note=64, velocity=0, time=0),  # note_on velocity 0 = note off
        mido.Message(off, channel=3, note=36, time=480),
    ]
    song = read_midi(write_raw(tmp_path / "t0.mid", [msgs], kind=0))
    assert song.midi_type == 0 and song.bpm == pytest.approx(60)
    assert [(t.channel, t.name) for t in song.tracks] == [(0, "Piano ch0"), (3, "Piano ch3")]
    assert track_tokens(song, "channel:0").tolist() == [onset(64), HOLD, HOLD, HOLD] + [REST] * 4
    assert track_tokens(song, "channel:3").tolist() == [onset(36)] + [HOLD] * 7
    with pytest.raises(MidiFileError, match="missing track"):
        track_tokens(song, "channel:9")


def test_off_grid_onsets_are_counted_and_quantized(tmp_path: Path) -> None:
    # At 480 ticks per beat and 4 steps per beat a step is 120 ticks; 40 ticks (a triplet 16th) is off.
    msgs = [
        mido.Message("note_on", note=60, velocity=80, time=0),
        mido.Message("note_off", note=60, time=160),  # ends at 160 -> step 1
        mido.Message("note_on", note=62, velocity=80, time=0),  # starts at 160: off grid -> step 1
        mido.Message("note_off", note=62, time=200),  # ends at 360 -> step 3
        mido.Message("note_on", note=64, velocity=80, time=0),  # 360 is on the grid (step 3)
        mido.Message("note_off", note=64, time=120),
    ]
    song = read_midi(write_raw(tmp_path / "swing.mid", [msgs]))
    assert song.tracks[0].off_grid == 1
    assert [(n.start, n.pitch) for n in song.tracks[0].notes] == [(0, 60), (1, 62), (3, 64)]
    assert song.tracks[0].notes[0].length == 1  # never shorter than one step


def test_tempo_defaults_and_unterminated_notes(tmp_path: Path) -> None:
    msgs = [mido.Message("note_on", note=60, velocity=80, time=0), mido.MetaMessage("end_of_track", time=480)]
    song = read_midi(write_raw(tmp_path / "hang.mid", [msgs]))
    assert song.bpm == 120.0 and song.time_signature == (4, 4)
    assert [(n.start, n.length) for n in song.tracks[0].notes] == [(0, 4)]


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_bytes(b"this is not a MIDI file at all" * 10), "corrupt"),
        (
            lambda p: p.write_bytes(
                b"MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01\xe0MTrk\x00\x00\x00\x40\x00\x90"
            ),
            "corrupt",
        ),
        (lambda p: p.write_bytes(os.urandom(64)), "corrupt"),
        (lambda p: None, "unreadable"),  # the file does not exist
        (lambda p: p.mkdir(), "unreadable"),  # a directory named like a MIDI file
    ],
)
def test_bad_files_give_a_clear_error(tmp_path: Path, make: object, reason: str) -> None:
    path = tmp_path / "bad.mid"
    make(path)  # type: ignore[operator]
    with pytest.raises(MidiFileError) as info:
        read_midi(path)
    assert info.value.reason == reason
    assert str(path) in str(info.value) and reason in str(info.value)
    assert isinstance(info.value, ValueError)


def test_truncated_real_file_never_crashes(tmp_path: Path) -> None:
    good = write_midi(tmp_path / "good.mid", {"A": SOPRANO, "B": BASS}).read_bytes()
    for cut in range(0, len(good), 7):
        p = tmp_path / f"cut{cut}.mid"
        p.write_bytes(good[:cut])
        try:
            song = read_midi(p)
        except MidiFileError as e:
            assert e.reason in {"empty", "corrupt", "no notes"} and str(p) in str(e)
        else:
            assert song.tracks  # a cut that still parses must have notes


def test_file_without_notes(tmp_path: Path) -> None:
    p = write_raw(tmp_path / "silent.mid", [[mido.MetaMessage("track_name", name="x", time=0)]])
    with pytest.raises(MidiFileError, match="no notes"):
        read_midi(p)
    p = write_midi(tmp_path / "rests.mid", {"A": [REST, REST, HOLD]})
    with pytest.raises(MidiFileError, match="no notes"):
        read_midi(p)


def test_selectors() -> None:
    assert TrackSelector.parse("name:Soprano") == TrackSelector("name", "Soprano")
    assert TrackSelector.parse("index:0") == TrackSelector("index", 0)
    assert TrackSelector.parse("channel:2") == TrackSelector("channel", 2)
    assert TrackSelector.parse("3") == TrackSelector("index", 3)
    assert TrackSelector.parse("Bass") == TrackSelector("name", "Bass")
    assert str(TrackSelector.parse(" CHANNEL : 15 ")) == "channel:15"
    for bad in ("channel:16", "channel:x", "index:-1", "bogus:1", "name:"):
        with pytest.raises(ValueError):
            TrackSelector.parse(bad)


def test_name_selector_partial_and_missing(tmp_path: Path) -> None:
    song = read_midi(write_midi(tmp_path / "x.mid", {"Soprano": SOPRANO, "Bass": BASS}))
    assert [t.name for t in select_tracks(song, "name:sop")] == ["Soprano"]
    with pytest.raises(MidiFileError, match="missing track") as info:
        select_tracks(song, "name:Tenor")
    assert "Soprano" in str(info.value) and str(tmp_path) in str(info.value)
    with pytest.raises(MidiFileError, match="missing track"):
        select_tracks(song, "index:2")


def test_write_validates(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_midi(tmp_path / "a.mid", {})
    with pytest.raises(ValueError):
        write_midi(tmp_path / "a.mid", {"A": [200]})
    with pytest.raises(ValueError):
        write_midi(tmp_path / "a.mid", {"A": SOPRANO}, bpm=0)
    with pytest.raises(ValueError):
        write_midi(tmp_path / "a.mid", {"A": SOPRANO}, velocities=0)
    # Notes survive exactly as tokens_to_notes sees them.
    song = read_midi(write_midi(tmp_path / "b.mid", {"A": SOPRANO}, grid=Grid(3, 4)), Grid(3, 4))
    assert [(n.start, n.length, n.pitch) for n in song.tracks[0].notes] == [
        (n.start, n.length, n.pitch) for n in tokens_to_notes(SOPRANO)
    ]
