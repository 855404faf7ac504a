"""A piece of a corpus: the performer's line and the accompaniment's line on one grid."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from liveagent.music.theory import Key, key_of_lines
from liveagent.music.tokens import (
    ONSET_BASE,
    Grid,
    TokenArray,
    pitch_range,
    sounding_pitches,
    transpose_tokens,
)


@dataclass(frozen=True)
class Piece:
    """Two monophonic token lines of equal length: what the performer plays and the real accompaniment."""

    name: str
    """Stable identifier, e.g. ``bwv269`` or a file path with track names."""
    performer: TokenArray
    accompaniment: TokenArray
    grid: Grid = field(default_factory=Grid)
    key: Key | None = None
    """The piece's key; estimated from both lines when not given."""
    bpm: float = 90.0
    """The tempo the piece is notated at (quarter notes per minute)."""
    voices: Mapping[str, TokenArray] = field(default_factory=dict)
    """Every named part the corpus holds (the chorales: ``soprano``, ``alto``, ``tenor``, ``bass``), the
    performer's and the accompaniment's included; empty for a duet-only corpus. A band trains on these."""

    def __post_init__(self) -> None:
        if self.performer.shape != self.accompaniment.shape or self.performer.ndim != 1:
            raise ValueError(
                f"{self.name}: performer {self.performer.shape} and accompaniment "
                f"{self.accompaniment.shape} must be 1-D and of equal length"
            )
        for voice, line in self.voices.items():
            if line.shape != self.performer.shape:
                raise ValueError(f"{self.name}: voice {voice} {line.shape} != {self.performer.shape}")
        if self.key is None:
            key = key_of_lines(sounding_pitches(self.performer), sounding_pitches(self.accompaniment))
            object.__setattr__(self, "key", key)

    @property
    def n_steps(self) -> int:
        return int(self.performer.shape[0])

    def transposed(self, semitones: int) -> Piece:
        """The piece moved by ``semitones`` (raises ``ValueError`` if a note leaves the MIDI range)."""
        assert self.key is not None
        return Piece(
            name=self.name if semitones == 0 else f"{self.name}{semitones:+d}",
            performer=transpose_tokens(self.performer, semitones),
            accompaniment=transpose_tokens(self.accompaniment, semitones),
            grid=self.grid,
            key=self.key.transposed(semitones),
            bpm=self.bpm,
            voices={v: transpose_tokens(line, semitones) for v, line in self.voices.items()},
        )

    def has_voices(self, names: tuple[str, ...] | list[str]) -> bool:
        """All of ``names`` are among :attr:`voices` and sound somewhere (a band can train on it)."""
        return all(v in self.voices and bool((self.voices[v] >= ONSET_BASE).any()) for v in names)

    def pitch_span(self) -> tuple[int, int]:
        """Lowest and highest pitch over both lines (0, 0 for an empty piece)."""
        spans = [r for r in (pitch_range(self.performer), pitch_range(self.accompaniment)) if r]
        if not spans:
            return (0, 0)
        return min(s[0] for s in spans), max(s[1] for s in spans)


def pad_lines(pieces: list[Piece], attr: str = "performer") -> tuple[np.ndarray, np.ndarray]:
    """Stack one line of each piece into ``[B, T_max]`` (REST-padded) with the lengths ``[B]``."""
    lengths = np.array([p.n_steps for p in pieces], dtype=np.int64)
    out = np.zeros((len(pieces), int(lengths.max(initial=0))), dtype=np.int64)
    for i, p in enumerate(pieces):
        out[i, : p.n_steps] = getattr(p, attr)
    return out, lengths
