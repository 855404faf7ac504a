"""Bach chorales: the split by BWV, a parsed subset (ranges, keys, pickups), the cache and its key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import music21  # noqa: F401  (required: these tests parse real chorales; a missing music21 must fail)
import numpy as np
import pytest

from liveagent.music import chorales
from liveagent.music.chorales import (
    CACHE_ENV,
    SPLITS,
    bwv_number,
    cache_dir,
    corpus_names,
    load_chorales,
    split_names,
    split_of,
)
from liveagent.music.theory import Key
from liveagent.music.tokens import ONSET_BASE, Grid, pitch_range

SUBSET = ["bwv256", "bwv269", "bach/bwv83.5"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private cache dir for this module, filled once with the subset (parsed in this process)."""
    path = tmp_path_factory.mktemp("cache")
    mp = pytest.MonkeyPatch()
    mp.setenv(CACHE_ENV, str(path))
    load_chorales(only=SUBSET, workers=1)
    yield path
    mp.undo()


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch, cache: Path) -> list[str]:
    """Count every chorale music21 parses (and keep the module's cache dir)."""
    calls: list[str] = []
    real = chorales.parse_chorale

    def counting(name: str, steps_per_beat: int) -> dict[str, Any]:
        calls.append(name)
        return real(name, steps_per_beat)

    monkeypatch.setattr(chorales, "parse_chorale", counting)
    monkeypatch.setenv(CACHE_ENV, str(cache))
    return calls


def test_bwv_numbers() -> None:
    assert bwv_number("bach/bwv153.1") == "153"
    assert bwv_number("bwv248.12-2") == "248"
    assert bwv_number("bwv269") == "269"


def test_split_is_fixed_by_bwv() -> None:
    # Frozen: these must never move (a moved chorale would leak test data into training).
    assert {n: split_of(n) for n in ("bwv256", "bwv269", "bwv83.5", "bwv309", "bwv347", "bwv1.6")} == {
        "bwv256": "test",
        "bwv269": "train",
        "bwv83.5": "test",
        "bwv309": "test",
        "bwv347": "train",
        "bwv1.6": "train",
    }
    # Every movement of one work shares its split.
    assert len({split_of(f"bwv248.{i}") for i in range(1, 70)}) == 1


def test_split_of_the_corpus_is_disjoint_and_deterministic() -> None:
    names = sorted(set(corpus_names()))
    groups = split_names(names)
    assert sorted(n for g in groups.values() for n in g) == names
    sets = [set(groups[s]) for s in SPLITS]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert split_names(reversed(names)) == {s: sorted(g, reverse=True) for s, g in groups.items()}
    by_bwv: dict[str, set[str]] = {}
    for n in names:
        by_bwv.setdefault(bwv_number(n), set()).add(split_of(n))
    assert all(len(s) == 1 for s in by_bwv.values())
    total = len(names)
    assert 0.7 * total < len(groups["train"]) < 0.9 * total
    assert len(groups["valid"]) > 0.05 * total and len(groups["test"]) > 0.05 * total


def test_subset_pieces(counted: list[str]) -> None:
    corpus = load_chorales(only=SUBSET, workers=1)
    assert corpus.from_cache
    assert sorted(p.name for p in corpus.pieces) == ["bwv256", "bwv269", "bwv83.5"]
    for p in corpus.pieces:
        s, b = pitch_range(p.performer), pitch_range(p.accompaniment)
        assert s is not None and b is not None
        assert 57 <= s[0] <= s[1] <= 84 and 34 <= b[0] <= b[1] <= 67
        assert p.performer.shape == p.accompaniment.shape and p.n_steps > 64
        assert isinstance(p.key, Key)
    keys = {p.name: p.key for p in corpus.pieces}
    assert keys["bwv256"] == Key(0, "major") and keys["bwv83.5"] == Key(9, "minor")
    assert keys["bwv269"] == Key(7, "major")
    assert corpus.split("test") and all(split_of(p.name) == "test" for p in corpus.split("test"))
    assert corpus.split_sizes() == {"train": 1, "valid": 0, "test": 2}


def test_pickup_is_padded_to_the_bar(counted: list[str]) -> None:
    corpus = load_chorales(only=SUBSET, workers=1)
    p = {q.name: q for q in corpus.pieces}
    # bwv269 (3/4) and bwv256 (4/4) open with a one-beat pickup: the first full bar starts on a bar line.
    first = {n: int(np.argmax(q.performer >= ONSET_BASE)) for n, q in p.items()}
    assert first["bwv269"] == 12 - 4  # bar of 12 steps, pickup of 4
    assert first["bwv256"] == 16 - 4


def test_other_voices(counted: list[str]) -> None:
    at = load_chorales("alto", "tenor", only=SUBSET, workers=1)
    assert counted == []  # cut from the same cache, no parse
    sb = load_chorales(only=SUBSET, workers=1)
    for a, b in zip(at.pieces, sb.pieces, strict=True):
        assert not np.array_equal(a.performer, b.performer)
    with pytest.raises(ValueError):
        load_chorales("soprano", "soprano")
    with pytest.raises(ValueError):
        load_chorales("soprano", "baritone")


def test_cache_is_reused_without_parsing(counted: list[str], cache: Path) -> None:
    first = load_chorales(only=SUBSET, workers=1)
    assert counted == [] and first.from_cache
    files = sorted(f.name for f in cache.iterdir())
    assert any(f.endswith(".npz") for f in files) and any(f.endswith(".json") for f in files)
    meta = json.loads(first.cache_path.with_suffix(".json").read_text())  # type: ignore[union-attr]
    assert meta["params"]["format"] == chorales.FORMAT_VERSION and meta["params"]["steps_per_beat"] == 4
    # Cached pieces equal freshly parsed ones.
    fresh = chorales.parse_chorale("bach/bwv256", 4)
    piece = next(p for p in first.pieces if p.name == "bwv256")
    assert np.array_equal(piece.performer, fresh["voices"]["soprano"].astype(np.int64))
    assert np.array_equal(piece.accompaniment, fresh["voices"]["bass"].astype(np.int64))


def test_changed_grid_is_a_new_cache_entry(counted: list[str]) -> None:
    base = load_chorales(only=SUBSET[:1], workers=1)
    n_parsed = len(counted)
    coarse = load_chorales(only=SUBSET[:1], grid=Grid(steps_per_beat=2), workers=1)
    assert len(counted) == n_parsed + 1 and not coarse.from_cache
    assert coarse.cache_path != base.cache_path
    assert coarse.pieces[0].n_steps * 2 == base.pieces[0].n_steps
    again = load_chorales(only=SUBSET[:1], grid=Grid(steps_per_beat=2), workers=1)
    assert again.from_cache and len(counted) == n_parsed + 1


def test_off_grid_is_reported_not_hidden(counted: list[str]) -> None:
    # At one step per beat, the eighth notes of these chorales are off the grid.
    corpus = load_chorales(only=SUBSET, grid=Grid(steps_per_beat=1), workers=1)
    assert corpus.off_grid and all(v > 0 for v in corpus.off_grid.values())
    assert {p.name for p in corpus.pieces} >= set(corpus.off_grid)
    strict = load_chorales(only=SUBSET, grid=Grid(steps_per_beat=1), workers=1, drop_off_grid=True)
    assert {s.name for s in strict.skipped if s.reason == "off the grid"} == set(corpus.off_grid)


def test_corrupt_cache_is_rebuilt(counted: list[str], cache: Path) -> None:
    first = load_chorales(only=SUBSET[:1], workers=1)
    assert first.cache_path is not None
    first.cache_path.with_suffix(".npz").write_bytes(b"not an npz")
    again = load_chorales(only=SUBSET[:1], workers=1)
    assert not again.from_cache and counted[-1] == "bach/bwv256"
    assert np.array_equal(again.pieces[0].performer, first.pieces[0].performer)


def test_cache_dir_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "x"))
    assert cache_dir() == tmp_path / "x"
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "liveagent"


@pytest.mark.timeout(60)
def test_cached_load_needs_no_music21(cache: Path) -> None:
    code = (
        "import sys; from liveagent.music.chorales import load_chorales;"
        f"c = load_chorales(only={SUBSET!r}, workers=1);"
        "assert c.from_cache and len(c.pieces) == 3, c.summary();"
        "assert 'music21' not in sys.modules, 'music21 was imported'"
    )
    env = dict(os.environ, **{CACHE_ENV: str(cache)})
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def test_export_demo_melodies_reproduces_the_shipped_files(cache: Path, tmp_path: Path) -> None:
    from liveagent.music.midi_corpus import demo_melody_path, export_demo_melodies

    index = export_demo_melodies(["bwv256", "bwv83.5"], tmp_path)
    entries = json.loads(index.read_text())["melodies"]
    assert [e["name"] for e in entries] == ["bwv256", "bwv83.5"]
    for e in entries:
        assert (tmp_path / e["file"]).read_bytes() == demo_melody_path(e["name"]).read_bytes()
    with pytest.raises(ValueError, match="train"):
        export_demo_melodies(["bwv269"], tmp_path / "no")
