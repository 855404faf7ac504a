"""A user's MIDI folder as a corpus (good, corrupt and incomplete files), and the shipped demo melodies."""

from __future__ import annotations

from pathlib import Path

import mido
import numpy as np
import pytest

from liveagent.music.midi_corpus import (
    demo_melody_info,
    demo_melody_path,
    list_demo_melodies,
    load_midi_folder,
    read_demo_melody,
)
from liveagent.music.midifile import read_midi, write_midi
from liveagent.music.piece import Piece
from liveagent.music.theory import Key
from liveagent.music.tokens import HOLD, ONSET_BASE, REST, Grid, onset, pitch_range

C_MELODY = [onset(p) if i % 2 == 0 else HOLD for i, p in enumerate([72, 72, 74, 74, 76, 76, 77, 77, 79, 79])]
C_BASS = [onset(48), HOLD, HOLD, HOLD, onset(43), HOLD, HOLD, HOLD, onset(48), HOLD]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    write_midi(tmp_path / "a_good.mid", {"Melody": C_MELODY, "Bass": C_BASS}, bpm=100)
    sub = tmp_path / "sub"
    write_midi(sub / "b_good.MID", {"Melody": C_BASS, "Bass": C_MELODY, "Drums": C_BASS}, bpm=70)
    write_midi(tmp_path / "c_no_bass.mid", {"Melody": C_MELODY, "Strings": C_BASS})
    (tmp_path / "d_corrupt.mid").write_bytes(b"MThd garbage")
    (tmp_path / "e_empty.mid").write_bytes(b"")
    write_midi(tmp_path / "f_solo.mid", {"Melody": C_MELODY})
    (tmp_path / "notes.txt").write_text("not a MIDI file, ignored")
    return tmp_path


def test_folder_by_name(folder: Path) -> None:
    corpus = load_midi_folder(folder, "name:Melody", "name:Bass")
    assert [p.name for p in corpus.pieces] == ["a_good", "sub/b_good"]
    a, b = corpus.pieces
    assert isinstance(a, Piece) and a.performer.tolist() == C_MELODY and a.accompaniment.tolist() == C_BASS
    assert a.bpm == pytest.approx(100) and b.bpm == pytest.approx(70)
    assert a.key == Key(0, "major")
    assert corpus.skip_counts == {"missing track": 2, "corrupt": 1, "empty": 1}
    skipped = {Path(s.path).name: s.reason for s in corpus.skipped}
    assert skipped == {
        "c_no_bass.mid": "missing track",
        "d_corrupt.mid": "corrupt",
        "e_empty.mid": "empty",
        "f_solo.mid": "missing track",
    }
    assert "2 pieces" in corpus.summary() and "4 files skipped" in corpus.summary()


def test_folder_by_index_and_channel(folder: Path) -> None:
    by_index = load_midi_folder(folder, "index:0", "index:1")
    assert [p.name for p in by_index.pieces] == ["a_good", "c_no_bass", "sub/b_good"]  # sorted paths
    assert by_index.skip_counts == {"missing track": 1, "corrupt": 1, "empty": 1}
    by_channel = load_midi_folder(folder, "channel:1", "channel:0", recursive=False)
    assert [p.name for p in by_channel.pieces] == ["a_good", "c_no_bass"]
    assert by_channel.pieces[0].performer.tolist() == C_BASS  # channel 1 = the second part written


def test_same_track_and_short(folder: Path) -> None:
    corpus = load_midi_folder(folder, "index:0", "name:Melody")
    assert corpus.pieces == [] or all(p.name == "sub/b_good" for p in corpus.pieces)
    assert corpus.skip_counts.get("same track", 0) >= 3
    corpus = load_midi_folder(folder, "name:Melody", "name:Bass", min_steps=100)
    assert corpus.skip_counts["too short"] == 2 and not corpus.pieces


def test_off_grid_reported(tmp_path: Path) -> None:
    mid = mido.MidiFile(type=1, ticks_per_beat=480)
    for ch, notes in ((0, [(0, 72), (150, 74)]), (1, [(0, 48)])):
        tr = mido.MidiTrack()
        tr.append(mido.MetaMessage("track_name", name=f"p{ch}", time=0))
        now = 0
        for tick, p in notes:
            tr.append(mido.Message("note_on", channel=ch, note=p, velocity=80, time=tick - now))
            tr.append(mido.Message("note_off", channel=ch, note=p, time=100))
            now = tick + 100
        mid.tracks.append(tr)
    mid.save(str(tmp_path / "human.mid"))
    corpus = load_midi_folder(tmp_path, "name:p0", "name:p1")
    assert corpus.off_grid == {"human": 1}
    assert len(corpus.pieces) == 1


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_midi_folder(tmp_path / "nope")


def test_demo_melodies_ship_and_read() -> None:
    names = list_demo_melodies()
    assert 3 <= len(names) <= 4
    for name in names:
        info = demo_melody_info(name)
        assert info["split"] == "test" and info["file"].endswith(".mid")
        path = demo_melody_path(name)
        assert path.is_file() and path.stat().st_size < 4000
        tokens, bpm = read_demo_melody(name)
        assert len(tokens) == info["n_steps"] and bpm == pytest.approx(info["bpm"])
        lo, hi = pitch_range(tokens) or (0, 0)
        assert 55 <= lo <= hi <= 84  # a soprano
        assert read_midi(path, Grid()).tracks[0].name == "Soprano"
        assert (np.asarray(tokens) >= ONSET_BASE).sum() > 20
        assert tokens[0] == REST or tokens[0] >= ONSET_BASE  # a line never opens with HOLD
    with pytest.raises(KeyError):
        demo_melody_info("bwv0")
