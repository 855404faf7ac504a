"""Train on your own MIDI: a generated folder of songs (plus a corrupt and an empty file) trains a small
policy end to end (`liveagent train mle`), which is exported (`liveagent export`) and evaluated on the
folder's test split (`liveagent eval --corpus midi:DIR`); and the pure pieces of that path (selectors,
chord reduction, the split by file, the recipe's validation)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import mido
import numpy as np
import onnx
import pytest

from liveagent.cli import main
from liveagent.music.midi_corpus import assign_splits, load_midi_folder, reduce_chords, split_of_file
from liveagent.music.tokens import HOLD, REST, Note, onset
from liveagent.train.data import DataConfig, load_pieces
from liveagent.train.recipes import from_table, load_recipe

TPB = 480
STEP = TPB // 4
SCALE = (0, 2, 4, 5, 7, 9, 11)
TRIAD_ROOT = {0: 0, 4: 0, 7: 0, 5: 5, 9: 5, 2: 7, 11: 7}  # melody degree pc -> I, IV or V root (major)
KEYS = (0, 2, 5, 7, 9, 10)
"""Tonic pitch classes of the generated songs (C, D, F, G, A, Bb)."""


def _track(name: str, channel: int, notes: list[tuple[int, int, int]], end: int) -> mido.MidiTrack:
    """A named track of (start tick, length ticks, pitch) notes on ``channel``, ending at tick ``end``."""
    events: list[tuple[int, int, mido.Message]] = []
    for start, length, pitch in notes:
        events.append((start, 1, mido.Message("note_on", channel=channel, note=pitch, velocity=80)))
        events.append((start + length, 0, mido.Message("note_off", channel=channel, note=pitch, velocity=0)))
    events.sort(key=lambda e: (e[0], e[1]))
    track = mido.MidiTrack([mido.MetaMessage("track_name", name=name, time=0)])
    now = 0
    for tick, _, msg in events:
        track.append(msg.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=max(0, end - now)))
    return track


def write_song(path: Path, tonic: int, seed: int, bars: int = 8) -> None:
    """A type-1 file: a tempo track, "Lead" (channel 0: a diatonic melody in quarters and eighths) and
    "Bass" (channel 1: on every beat the root of I, IV or V under the melody's note)."""
    rng = np.random.default_rng(seed)
    total = bars * 4 * TPB
    melody: list[tuple[int, int, int]] = []
    degree, tick = int(rng.integers(0, 7)), 0
    while tick < total:
        length = TPB if rng.random() < 0.7 else TPB // 2
        degree = int(np.clip(degree + rng.choice([-2, -1, 1, 2]), 0, 9))
        melody.append((tick, min(length, total - tick), 60 + tonic + 12 * (degree // 7) + SCALE[degree % 7]))
        tick += length
    bass = []
    for beat in range(0, total, TPB):
        pitch = next(p for s, n, p in melody if s <= beat < s + n)
        bass.append((beat, TPB, 36 + tonic + TRIAD_ROOT[(pitch - tonic) % 12]))
    mid = mido.MidiFile(type=1, ticks_per_beat=TPB)
    tempo = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(100), time=0)])
    tempo.append(mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0))
    mid.tracks += [tempo, _track("Lead", 0, melody, total), _track("Bass", 1, bass, total)]
    mid.save(str(path))


@pytest.fixture
def songs(tmp_path: Path) -> Path:
    """12 songs in 6 keys (two in a subfolder), one corrupt file, one empty file and a text file."""
    folder = tmp_path / "my songs"
    (folder / "live").mkdir(parents=True)
    for i in range(12):
        where = folder / "live" if i >= 10 else folder
        write_song(where / f"song{i:02d}.mid", KEYS[i % len(KEYS)], seed=i)
    (folder / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06\x00\x01\x00\x02garbage")
    (folder / "blank.mid").write_bytes(b"")
    (folder / "notes.txt").write_text("not MIDI: ignored")
    return folder


RECIPE = """
name = "my_songs"
seed = 3
threads = 1

[net]
window = 16
hidden = 32
embed_dim = 4
position_dim = 4

[data]
corpus = "midi"
path = "{path}"
performer = "name:Lead"
accompaniment = "channel:1"
transpose = true
max_shift = 3

[mle]
steps = 200
batch_size = 32
lr = 0.004
warmup = 20
eval_every = 100
log_every = 20

[export]
onset_boost = 1.0
"""


@pytest.mark.slow
def test_train_export_eval_on_a_midi_folder(
    songs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    t0 = time.perf_counter()
    recipe = tmp_path / "user_midi.toml"
    recipe.write_text(RECIPE.format(path=songs.as_posix()))
    run = tmp_path / "run"
    assert main(["train", "mle", "--config", str(recipe), "--out", str(run)]) == 0
    assert "checkpoint:" in capsys.readouterr().out
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert max(r["step"] for r in rows if r["tag"] == "valid") == 200

    onnx_path = tmp_path / "export" / "my_songs.onnx"
    assert main(["export", str(run / "best.pt"), "-o", str(onnx_path), "--parity-n", "50", "--eval"]) == 0
    assert "parity corpus" in capsys.readouterr().out
    props = {p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props}
    assert props["dataset"] == "midi(my songs):name:Lead->channel:1"
    card_eval = json.loads(
        props["metrics"]
    )  # `export --eval` played the folder's test split, not the chorales
    assert card_eval["split"] == "test" and 1 <= card_eval["pieces"] <= 4
    assert 36 <= int(props["pitch_min"]) <= int(props["pitch_max"]) <= 53  # the bass range, not the lead's

    report_path = tmp_path / "eval.json"
    argv = ["eval", "--corpus", f"midi:{songs}", "--performer", "name:Lead", "--accompaniment", "channel:1",
            "--policy", f"mine={onnx_path}", "bach", "--json", str(report_path), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "mine" in out and "bach" in out and "midi:" in out
    assert "skipped corrupt: broken.mid" in err and "skipped empty: blank.mid (0 bytes)" in err

    report = json.loads(report_path.read_text())
    assert [r["policy"] for r in report["rows"]] == ["mine", "bach"]
    corpus = report["corpus"]
    assert corpus["files"] == 14 and corpus["skip_counts"] == {"corrupt": 1, "empty": 1}
    assert {Path(s["path"]).name: s["reason"] for s in corpus["skipped"]} == {
        "broken.mid": "corrupt",
        "blank.mid": "empty",
    }
    assert all(s["detail"] for s in corpus["skipped"])
    assert sum(corpus["split_sizes"].values()) == 12 and corpus["split_sizes"]["test"] >= 1
    assert report["pieces"] == corpus["split_sizes"]["test"] == card_eval["pieces"]
    test_names = set(report["piece_names"])
    train_names = {p.name for p in load_pieces(_data(recipe), "train")}
    assert test_names and not test_names & train_names  # the test split was never trained on
    mine = report["rows"][0]["metrics"]
    # 200 steps learn the bass's rhythm at least (class-first decoding: [export] onset_boost).
    assert (
        mine["notes"] >= 0.5 * report["rows"][1]["metrics"]["notes"] and 0.0 <= mine["consonance_pct"] <= 100
    )
    assert time.perf_counter() - t0 < 120  # generous: ~15-25 s on 2 shared cores


def _data(recipe: Path) -> DataConfig:
    return from_table(DataConfig, load_recipe(recipe)["data"], "data")


def test_split_is_by_file_and_stable(songs: Path) -> None:
    corpus = load_midi_folder(songs, "name:Lead", "name:Bass")
    names = [p.name for p in corpus.pieces]
    assert len(names) == 12 and "live/song10" in names
    splits = corpus.splits()
    assert splits == assign_splits(reversed(names))  # order-free: a hash of the relative path
    assert all(corpus.split_sizes()[s] >= 1 for s in ("train", "valid", "test"))
    # A big folder is split by the hash alone, 80/10/10 within a few points, and adding files moves none.
    many = [f"album/track{i}" for i in range(2000)]
    big = assign_splits(many)
    assert big == {n: split_of_file(n) for n in many}
    share = {s: list(big.values()).count(s) / len(many) for s in ("train", "valid", "test")}
    assert abs(share["train"] - 0.8) < 0.04 and abs(share["test"] - 0.1) < 0.03
    grown = assign_splits([*many, "new/one"])
    assert all(grown[n] == big[n] for n in many)


def test_parts_by_track_index_and_channel(songs: Path) -> None:
    by_name = load_midi_folder(songs, "name:Lead", "name:Bass")
    by_track = load_midi_folder(songs, "track:1", "track:2")  # track 0 is the tempo track
    by_channel = load_midi_folder(songs, "channel:0", "channel:1")
    by_index = load_midi_folder(songs, "index:0", "index:1")  # among the parts that hold notes
    for other in (by_track, by_channel, by_index):
        assert [p.name for p in other.pieces] == [p.name for p in by_name.pieces]
        for a, b in zip(by_name.pieces, other.pieces, strict=True):
            assert np.array_equal(a.performer, b.performer) and np.array_equal(
                a.accompaniment, b.accompaniment
            )
    assert by_name.skip_counts == {"corrupt": 1, "empty": 1}
    missing = load_midi_folder(songs, "name:Lead", "name:Drums")
    assert missing.skip_counts == {"missing track": 12, "corrupt": 1, "empty": 1}
    assert any("no track matches name:Drums" in line for line in missing.skip_report(songs))


def test_chords_skyline_for_the_melody_lowest_for_the_bass() -> None:
    chord = [Note(0, 4, 48), Note(0, 4, 55), Note(0, 2, 64), Note(2, 2, 43)]
    assert reduce_chords(chord, 4, "highest").tolist() == [onset(64), HOLD, onset(55), HOLD]
    assert reduce_chords(chord, 4, "lowest").tolist() == [onset(48), HOLD, onset(43), HOLD]
    assert reduce_chords([Note(1, 1, 50)], 3, "lowest").tolist() == [REST, onset(50), REST]
    with pytest.raises(ValueError, match="chords"):
        reduce_chords(chord, 4, "middle")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"corpus": "midi"}, 'needs path = "FOLDER"'),
        ({"corpus": "midi", "path": "x", "performer": "bus:3"}, r"\[data\] performer = 'bus:3'"),
        ({"corpus": "midi", "path": "x", "accompaniment": "channel:16"}, r"\[data\] accompaniment.*0\.\.15"),
        ({"corpus": "midi", "path": "x", "performer": "index:1"}, "both select index:1"),
        ({"corpus": "midi", "path": "x", "accompaniment_chords": "top"}, "accompaniment_chords = 'top'"),
        ({"corpus": "chorales", "path": "x"}, 'path is for corpus = "midi"'),
        ({"corpus": "midis"}, "corpus = 'midis'"),
    ],
)
def test_recipe_is_validated_in_one_place(data: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DataConfig(**data)  # type: ignore[arg-type]


def test_defaults_and_a_missing_folder(tmp_path: Path) -> None:
    cfg = DataConfig(corpus="midi", path="~/songs")
    assert (cfg.performer, cfg.accompaniment) == (
        "index:0",
        "index:1",
    ) and cfg.folder == Path.home() / "songs"
    assert (DataConfig().performer, DataConfig().accompaniment) == ("soprano", "bass")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_pieces(DataConfig(corpus="midi", path=str(tmp_path / "nope")), "train")
    assert main(["eval", "--corpus", "midi", "--policy", "rules", "--no-progress"]) == 2


@pytest.mark.slow
def test_the_example_recipe_trains_on_a_folder(songs: Path, tmp_path: Path) -> None:
    """export/recipes/user_midi.toml as a user runs it (path and budget overridden on the command line)."""
    shipped = Path(__file__).resolve().parents[2] / "export" / "recipes" / "user_midi.toml"
    recipe = load_recipe(shipped)
    assert recipe["data"]["corpus"] == "midi" and recipe["export"]["onset_boost"] == 1.0
    run = tmp_path / "run"
    argv = ["train", "mle", "--config", str(shipped), "--out", str(run), "--set", f"data.path={songs}",
            "--set", "mle.steps=4", "--set", "mle.eval_every=4", "--set", "mle.batch_size=8"]  # fmt: skip
    assert main(argv) == 0
    assert load_recipe(run / "recipe.toml")["data"]["path"] == str(songs)
    assert (run / "best.pt").stat().st_size > 0
