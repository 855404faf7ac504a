"""The user's own MIDI folder as a corpus, and the small demo melodies shipped in the package.

A folder of real-world files always holds some that cannot be used (corrupt, empty, no such track,
nothing on the grid ...). Loading never stops at one: each unusable file is skipped with its reason,
and the corpus reports how many were skipped per reason, so a user sees at once why half a folder
vanished.

Choices, and why:

- Chords: the performer's part is reduced to its highest note (the skyline of the policy contract: what
  the live engine hears from a keyboard). The accompaniment's part, the line the policy learns to play,
  is reduced to its lowest note by default (``accompaniment_chords = "lowest"``): a piano left hand or a
  pad then yields its bass line, as the shipped policies play; ``"highest"`` keeps a counter-melody.
- Split: by file, from a SHA-256 of the path relative to the folder (80/10/10 train/valid/test), so it
  is the same on every machine and run and does not move when files are added. Only a folder too small
  for the buckets to fill valid and test (hash luck with a dozen files) gets one file moved into each
  empty split: the ones of the largest split with the highest hashes, still deterministic.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np

from liveagent.music.midifile import (
    MidiFileError,
    MidiSong,
    TrackSelector,
    read_midi,
    select_tracks,
    write_midi,
)
from liveagent.music.piece import Piece
from liveagent.music.tokens import ONSET_BASE, Grid, Note, TokenArray, notes_to_tokens

log = logging.getLogger(__name__)

MIDI_SUFFIXES = (".mid", ".midi", ".smf", ".kar")
SPLITS = ("train", "valid", "test")
SPLIT_PERCENT = (80, 10, 10)
ChordRule = Literal["highest", "lowest"]
CHORD_RULES: tuple[ChordRule, ...] = ("highest", "lowest")

__all__ = [
    "CHORD_RULES",
    "MidiCorpus",
    "SkippedFile",
    "TrackSelector",
    "assign_splits",
    "cached_midi_folder",
    "demo_melody_info",
    "demo_melody_path",
    "export_demo_melodies",
    "list_demo_melodies",
    "load_midi_folder",
    "midi_split",
    "piece_from_song",
    "read_demo_melody",
    "reduce_chords",
    "split_of_file",
]


@dataclass(frozen=True)
class SkippedFile:
    """A file left out of a corpus, and why."""

    path: str
    reason: str
    """Short category (``corrupt``, ``empty``, ``missing track`` ...): what the counts are keyed by."""
    detail: str = ""


@dataclass
class MidiCorpus:
    """Pieces read from a folder plus the files that were skipped."""

    pieces: list[Piece] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    off_grid: dict[str, int] = field(default_factory=dict)
    """Pieces whose selected parts had onsets off the grid (quantized anyway): name -> count."""

    @property
    def skip_counts(self) -> dict[str, int]:
        """How many files were skipped, per reason."""
        return dict(Counter(s.reason for s in self.skipped))

    def summary(self) -> str:
        counts = ", ".join(f"{n} {r}" for r, n in sorted(self.skip_counts.items())) or "none"
        return (
            f"{len(self.pieces)} pieces, {len(self.skipped)} files skipped ({counts}), "
            f"{len(self.off_grid)} pieces with off-grid notes"
        )

    def skip_report(self, root: str | os.PathLike[str] | None = None) -> list[str]:
        """One line per skipped file, ``reason: path (detail)``, grouped by reason (paths relative to
        ``root`` when given): what a user reads to fix or drop those files."""
        lines = []
        for s in sorted(self.skipped, key=lambda s: (s.reason, s.path)):
            path = s.path
            if root is not None and Path(s.path).is_relative_to(root):
                path = Path(s.path).relative_to(root).as_posix()
            lines.append(f"{s.reason}: {path}" + (f" ({s.detail})" if s.detail else ""))
        return lines

    def splits(self) -> dict[str, str]:
        """Piece name -> split (:func:`assign_splits`)."""
        return assign_splits(p.name for p in self.pieces)

    def split(self, name: str) -> list[Piece]:
        """The pieces of one split (``train``, ``valid``, ``test``), in path order."""
        if name not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {name!r}")
        of = self.splits()
        return [p for p in self.pieces if of[p.name] == name]

    def split_sizes(self) -> dict[str, int]:
        of = list(self.splits().values())
        return {s: of.count(s) for s in SPLITS}


def _hash(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big")


def split_of_file(name: str) -> str:
    """The split of a file by its path relative to the corpus folder: a stable hash, 80/10/10."""
    bucket = _hash(name) % 100
    if bucket < SPLIT_PERCENT[0]:
        return "train"
    if bucket < SPLIT_PERCENT[0] + SPLIT_PERCENT[1]:
        return "valid"
    return "test"


def assign_splits(names: Iterable[str]) -> dict[str, str]:
    """Name -> split by :func:`split_of_file`; with 3 files or more, an empty test (then valid) split
    takes the file with the highest hash from the largest split that can spare one, so that a small
    folder still validates and tests on something. The same names always give the same splits."""
    out = {n: split_of_file(n) for n in names}
    if len(out) < 3:
        return out
    for empty in ("test", "valid"):
        members = {s: sorted((n for n, v in out.items() if v == s), key=_hash) for s in SPLITS}
        if members[empty]:
            continue
        donor = max(SPLITS, key=lambda s: (len(members[s]), -SPLITS.index(s)))
        if len(members[donor]) >= 2:
            out[members[donor][-1]] = empty
    return out


def reduce_chords(notes: Sequence[Note], n_steps: int, chords: ChordRule = "highest") -> TokenArray:
    """One token per step from notes that may overlap: the highest note (the contract's skyline) or,
    with ``chords="lowest"``, the lowest (a bass line out of a left hand), by the same onset rules."""
    if chords == "highest":
        return notes_to_tokens(notes, n_steps)
    if chords != "lowest":
        raise ValueError(f"chords must be one of {CHORD_RULES}, got {chords!r}")
    mirrored = [Note(n.start, n.length, 127 - n.pitch, n.velocity) for n in notes]
    tok = notes_to_tokens(mirrored, n_steps)
    return np.where(tok >= ONSET_BASE, 2 * ONSET_BASE + 127 - tok, tok)


def _line(song: MidiSong, selector: TrackSelector, chords: ChordRule = "highest") -> tuple[TokenArray, int]:
    tracks = select_tracks(song, selector)
    notes = [n for t in tracks for n in t.notes]
    return reduce_chords(notes, song.n_steps, chords), sum(t.off_grid for t in tracks)


def piece_from_song(
    song: MidiSong,
    performer: str | int | TrackSelector,
    accompaniment: str | int | TrackSelector,
    name: str | None = None,
    accompaniment_chords: ChordRule = "lowest",
) -> tuple[Piece, int]:
    """Build a :class:`Piece` from two parts of a read file; returns it with its off-grid onset count.

    The performer's chords are reduced to their highest note, the accompaniment's by
    ``accompaniment_chords`` (see the module's docstring).

    Raises :class:`MidiFileError` (``missing track``, ``same track``, ``no notes``) when the parts do not
    make a duet.
    """
    psel, asel = TrackSelector.parse(performer), TrackSelector.parse(accompaniment)
    ptracks, atracks = select_tracks(song, psel), select_tracks(song, asel)
    if {t.index for t in ptracks} & {t.index for t in atracks}:
        raise MidiFileError(song.path, "same track", f"{psel} and {asel} select the same part")
    perf, poff = _line(song, psel)
    acc, aoff = _line(song, asel, accompaniment_chords)
    for sel, line in ((psel, perf), (asel, acc)):
        if not (line >= ONSET_BASE).any():
            raise MidiFileError(song.path, "no notes", f"part {sel} is empty")
    piece = Piece(
        name=name or Path(song.path).stem, performer=perf, accompaniment=acc, grid=song.grid, bpm=song.bpm
    )
    return piece, poff + aoff


def load_midi_folder(
    folder: str | os.PathLike[str],
    performer: str | int | TrackSelector = "index:0",
    accompaniment: str | int | TrackSelector = "index:1",
    grid: Grid | None = None,
    *,
    recursive: bool = True,
    min_steps: int = 1,
    accompaniment_chords: ChordRule = "lowest",
    progress: bool = False,
) -> MidiCorpus:
    """Read every MIDI file under ``folder`` as a duet of two selected parts.

    ``performer`` / ``accompaniment``: ``"name:Soprano"``, ``"index:0"`` (among the parts that hold notes,
    in file order), ``"track:1"`` (the file's track number) or ``"channel:2"`` (mido's 0..15). Files are
    visited in sorted path order, so the corpus is the same on every run. Pieces are named by their path
    relative to ``folder``. ``progress``: a tqdm bar on stderr (shown on a terminal only).
    """
    grid = grid or Grid()
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"MIDI folder {root} does not exist or is not a directory")
    psel, asel = TrackSelector.parse(performer), TrackSelector.parse(accompaniment)
    pattern = "**/*" if recursive else "*"
    files = sorted(p for p in root.glob(pattern) if p.is_file() and p.suffix.lower() in MIDI_SUFFIXES)
    if accompaniment_chords not in CHORD_RULES:
        raise ValueError(f"accompaniment_chords must be one of {CHORD_RULES}, got {accompaniment_chords!r}")
    corpus = MidiCorpus()
    for path in _progress(files, progress, f"reading MIDI in {root.name or root}"):
        rel = path.relative_to(root).with_suffix("").as_posix()
        try:
            song = read_midi(path, grid)
            piece, off = piece_from_song(
                song, psel, asel, name=rel, accompaniment_chords=accompaniment_chords
            )
        except MidiFileError as e:
            corpus.skipped.append(SkippedFile(str(path), e.reason, e.detail))
            log.debug("skipped %s", e)
            continue
        if piece.n_steps < min_steps:
            corpus.skipped.append(SkippedFile(str(path), "too short", f"{piece.n_steps} steps"))
            continue
        if off:
            corpus.off_grid[rel] = off
        corpus.pieces.append(piece)
    log.info("MIDI folder %s: %s", root, corpus.summary())
    return corpus


def _progress(files: list[Path], enabled: bool, desc: str) -> Iterable[Path]:
    if not enabled or len(files) < 2:
        return files
    from tqdm.auto import tqdm  # lazy: only a folder read with a bar pays for it

    return cast(Iterable[Path], tqdm(files, desc=desc, unit="file", leave=False, disable=None))


_CACHE: dict[tuple[Any, ...], MidiCorpus] = {}
_CACHE_SIZE = 4


def cached_midi_folder(
    folder: str | os.PathLike[str],
    performer: str | int | TrackSelector = "index:0",
    accompaniment: str | int | TrackSelector = "index:1",
    grid: Grid | None = None,
    *,
    accompaniment_chords: ChordRule = "lowest",
    progress: bool = False,
) -> MidiCorpus:
    """:func:`load_midi_folder`, read once per process while no file changes (name, size, mtime).

    A training run asks for the train and then the valid split: a big folder is read and reported once.
    The skipped files are logged as a warning, one line per file, when the folder is actually read.
    """
    grid = grid or Grid()
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"MIDI folder {root} does not exist or is not a directory")
    signature = tuple(
        (p.as_posix(), st.st_size, st.st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.suffix.lower() in MIDI_SUFFIXES and p.is_file() and (st := p.stat())
    )
    psel, asel = TrackSelector.parse(performer), TrackSelector.parse(accompaniment)
    key = (str(root.resolve()), str(psel), str(asel), grid, accompaniment_chords, signature)
    corpus = _CACHE.get(key)
    if corpus is None:
        corpus = load_midi_folder(
            root, psel, asel, grid, accompaniment_chords=accompaniment_chords, progress=progress
        )
        if corpus.skipped:
            log.warning(
                "MIDI folder %s: skipped %d of %d files:\n  %s",
                root,
                len(corpus.skipped),
                len(corpus.skipped) + len(corpus.pieces),
                "\n  ".join(corpus.skip_report(root)),
            )
        while len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = corpus
    return corpus


def midi_split(
    folder: str | os.PathLike[str],
    split: str,
    performer: str | int | TrackSelector = "index:0",
    accompaniment: str | int | TrackSelector = "index:1",
    grid: Grid | None = None,
    *,
    accompaniment_chords: ChordRule = "lowest",
    progress: bool = False,
) -> tuple[list[Piece], MidiCorpus]:
    """The pieces of one split of a MIDI folder, and the whole corpus (for its skip report)."""
    corpus = cached_midi_folder(
        folder, performer, accompaniment, grid, accompaniment_chords=accompaniment_chords, progress=progress
    )
    log.info("MIDI folder %s: splits %s", folder, corpus.split_sizes())
    return corpus.split(split), corpus


# --- demo melodies shipped in liveagent/data/melodies -------------------------------------------------

_MELODY_DIR = "melodies"
_INDEX = "index.json"


def _melody_root() -> Path:
    return Path(str(resources.files("liveagent.data").joinpath(_MELODY_DIR)))


def _index() -> list[dict[str, Any]]:
    path = _melody_root() / _INDEX
    if not path.is_file():
        return []
    data = json.loads(path.read_text(encoding="utf-8"))
    return list(data["melodies"])


def list_demo_melodies() -> list[str]:
    """Names of the demo melodies (held-out test-split chorale sopranos), e.g. ``['bwv...', ...]``."""
    return [str(m["name"]) for m in _index()]


def demo_melody_info(name: str) -> dict[str, Any]:
    """The index entry of a demo melody (file, BWV, title, key, bpm, steps, split)."""
    for m in _index():
        if m["name"] == name:
            return dict(m)
    raise KeyError(f"no demo melody {name!r}; have {list_demo_melodies()}")


def demo_melody_path(name: str) -> Path:
    """The MIDI file of a demo melody (a real file inside the installed package)."""
    return _melody_root() / str(demo_melody_info(name)["file"])


def read_demo_melody(name: str, grid: Grid | None = None) -> tuple[TokenArray, float]:
    """The melody's tokens (its first part) and tempo, without music21 or torch."""
    song = read_midi(demo_melody_path(name), grid)
    notes = list(song.tracks[0].notes)
    return np.asarray(notes_to_tokens(notes, song.n_steps), dtype=np.int64), song.bpm


def export_demo_melodies(
    names: Sequence[str], out_dir: str | os.PathLike[str], grid: Grid | None = None
) -> Path:
    """Write the sopranos of some test-split chorales as MIDI files plus ``index.json`` into ``out_dir``.

    This made ``liveagent/data/melodies`` (``python -m liveagent.music.midi_corpus OUT_DIR NAME...``), so the
    demo runs without music21 or torch. Refuses chorales outside the test split: a demo on training data
    would flatter the policy.
    """
    from liveagent.music.chorales import bwv_number, load_chorales, split_of  # lazy: chorale code on demand

    grid = grid or Grid()
    corpus = load_chorales("soprano", "bass", grid, only=list(names))
    out = Path(out_dir)
    entries: list[dict[str, Any]] = []
    for piece in corpus.pieces:
        if split_of(piece.name) != "test":
            raise ValueError(f"{piece.name} is in the {split_of(piece.name)} split, not test")
        write_midi(out / f"{piece.name}.mid", {"Soprano": piece.performer}, bpm=piece.bpm, grid=grid)
        entries.append(
            {
                "name": piece.name,
                "file": f"{piece.name}.mid",
                "bwv": bwv_number(piece.name),
                "split": "test",
                "part": "soprano",
                "key": str(piece.key),
                "bpm": piece.bpm,
                "n_steps": piece.n_steps,
                "steps_per_beat": grid.steps_per_beat,
                "beats_per_bar": grid.beats_per_bar,
                "source": "music21 offline corpus, Bach chorales (soprano only)",
            }
        )
    index = out / "index.json"
    index.write_text(json.dumps({"format": 1, "melodies": entries}, indent=1) + "\n", encoding="utf-8")
    return index


if __name__ == "__main__":  # pragma: no cover - a maintenance command, see export_demo_melodies
    import sys

    logging.basicConfig(level=logging.INFO)
    log.info("wrote %s", export_demo_melodies(sys.argv[2:], sys.argv[1]))
