"""The user's own MIDI folder as a corpus, and the small demo melodies shipped in the package.

A folder of real-world files always holds some that cannot be used (corrupt, empty, no such track,
nothing on the grid ...). Loading never stops at one: each unusable file is skipped with its reason,
and the corpus reports how many were skipped per reason, so a user sees at once why half a folder
vanished.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

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
from liveagent.music.tokens import ONSET_BASE, Grid, TokenArray, notes_to_tokens

log = logging.getLogger(__name__)

MIDI_SUFFIXES = (".mid", ".midi", ".smf", ".kar")

__all__ = [
    "MidiCorpus",
    "SkippedFile",
    "TrackSelector",
    "demo_melody_info",
    "demo_melody_path",
    "export_demo_melodies",
    "list_demo_melodies",
    "load_midi_folder",
    "piece_from_song",
    "read_demo_melody",
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


def _line(song: MidiSong, selector: TrackSelector) -> tuple[TokenArray, int]:
    tracks = select_tracks(song, selector)
    notes = [n for t in tracks for n in t.notes]
    return notes_to_tokens(notes, song.n_steps), sum(t.off_grid for t in tracks)


def piece_from_song(
    song: MidiSong,
    performer: str | int | TrackSelector,
    accompaniment: str | int | TrackSelector,
    name: str | None = None,
) -> tuple[Piece, int]:
    """Build a :class:`Piece` from two parts of a read file; returns it with its off-grid onset count.

    Raises :class:`MidiFileError` (``missing track``, ``same track``, ``no notes``) when the parts do not
    make a duet.
    """
    psel, asel = TrackSelector.parse(performer), TrackSelector.parse(accompaniment)
    ptracks, atracks = select_tracks(song, psel), select_tracks(song, asel)
    if {t.index for t in ptracks} & {t.index for t in atracks}:
        raise MidiFileError(song.path, "same track", f"{psel} and {asel} select the same part")
    perf, poff = _line(song, psel)
    acc, aoff = _line(song, asel)
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
) -> MidiCorpus:
    """Read every MIDI file under ``folder`` as a duet of two selected parts.

    ``performer`` / ``accompaniment``: ``"name:Soprano"``, ``"index:0"`` (among the parts that hold notes,
    in file order) or ``"channel:2"`` (mido's 0..15). Files are visited in sorted path order, so the corpus
    is the same on every run. Pieces are named by their path relative to ``folder``.
    """
    grid = grid or Grid()
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"MIDI folder {root} does not exist or is not a directory")
    psel, asel = TrackSelector.parse(performer), TrackSelector.parse(accompaniment)
    pattern = "**/*" if recursive else "*"
    files = sorted(p for p in root.glob(pattern) if p.is_file() and p.suffix.lower() in MIDI_SUFFIXES)
    corpus = MidiCorpus()
    for path in files:
        rel = path.relative_to(root).with_suffix("").as_posix()
        try:
            song = read_midi(path, grid)
            piece, off = piece_from_song(song, psel, asel, name=rel)
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
