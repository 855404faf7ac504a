"""Standard MIDI files <-> grid notes and tokens (mido).

Reading quantizes every note to the grid (onset and end to the nearest step) and *counts* the onsets that
were not already on it, so a corpus can report human-played or triplet material instead of silently
mangling it. Every failure a user's file can cause (missing, unreadable, empty, corrupt, no notes, no such
track) is one :class:`MidiFileError` that names the file and the reason: a corpus loader catches it, counts
it and moves on; the CLI prints it. Nothing here ever lets mido's assorted exceptions escape.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import mido
import numpy as np
import numpy.typing as npt

from liveagent.music.tokens import Grid, Note, TokenArray, notes_to_tokens, tokens_to_notes, validate_tokens

DEFAULT_BPM = 120.0
"""MIDI's default tempo when a file has no set_tempo event."""
WRITE_TICKS_PER_BEAT = 480


class MidiFileError(ValueError):
    """A MIDI file that cannot be used; ``reason`` is a short category, the message names the file."""

    def __init__(self, path: str | os.PathLike[str], reason: str, detail: str = "") -> None:
        self.path = str(path)
        self.reason = reason
        """Short category: ``unreadable``, ``empty``, ``corrupt``, ``no notes``, ``missing track`` ..."""
        self.detail = detail
        super().__init__(f"{self.path}: {reason}" + (f" ({detail})" if detail else ""))


@dataclass(frozen=True)
class MidiTrack:
    """One monophonic-or-not part of a file: a (file track, channel) pair that holds notes."""

    index: int
    """Position among the song's note-bearing parts (what ``index:N`` selects)."""
    name: str
    """The track's name (``track_name`` meta); type-0 parts are named after their channel."""
    channel: int
    """MIDI channel 0..15 (mido's numbering; the MIDI spec's "channel 1" is 0 here)."""
    file_track: int
    """Index of the track in the file (0-based, counting tracks without notes)."""
    notes: tuple[Note, ...]
    """Notes quantized to the grid, sorted by start then pitch."""
    off_grid: int
    """How many onsets were more than half a tick away from a grid step before quantization."""


@dataclass(frozen=True)
class MidiSong:
    """What :func:`read_midi` found in a file."""

    path: str
    grid: Grid
    bpm: float
    """The first tempo of the file (quarter notes per minute), 120 if none."""
    time_signature: tuple[int, int]
    """The first time signature (numerator, denominator), 4/4 if none."""
    ticks_per_beat: int
    midi_type: int
    tracks: tuple[MidiTrack, ...]
    n_steps: int
    """Length in grid steps: the end of the longest track (its end-of-track event included)."""

    @property
    def off_grid(self) -> int:
        return sum(t.off_grid for t in self.tracks)

    @property
    def channels(self) -> tuple[int, ...]:
        return tuple(sorted({t.channel for t in self.tracks}))


@dataclass(frozen=True)
class TrackSelector:
    """Which part of a file to use: by track ``name``, by ``index`` among the note-bearing parts, by
    ``track`` (the file's own track number, 0-based, counting tracks without notes such as a type-1
    file's tempo track; all channels of that track merged) or by MIDI ``channel`` (0..15, mido's
    numbering; all parts on that channel merged).

    Parsed from ``"name:Soprano"``, ``"index:0"``, ``"track:1"``, ``"channel:2"``; a bare number means
    an index and a bare word a name.
    """

    kind: str
    value: str | int

    KINDS = ("name", "index", "track", "channel")

    def __post_init__(self) -> None:
        if self.kind not in self.KINDS:
            raise ValueError(f"track selector kind must be one of {self.KINDS}, got {self.kind!r}")
        if self.kind in ("index", "track", "channel"):
            if not isinstance(self.value, int) or self.value < 0:
                raise ValueError(f"{self.kind} selector needs a non-negative integer, got {self.value!r}")
            if self.kind == "channel" and self.value > 15:
                raise ValueError(f"MIDI channels are 0..15 (mido's numbering), got {self.value}")

    @classmethod
    def parse(cls, text: str | int | TrackSelector) -> TrackSelector:
        """``"name:Soprano"``, ``"index:0"``, ``"track:1"``, ``"channel:2"``, ``"3"``, ``"Bass"``, ``3``."""
        if isinstance(text, TrackSelector):
            return text
        if isinstance(text, int):
            return cls("index", text)
        kind, sep, value = text.partition(":")
        if not sep:
            stripped = text.strip()
            return cls("index", int(stripped)) if stripped.isdigit() else cls("name", stripped)
        kind, value = kind.strip().lower(), value.strip()
        if kind == "name":
            if not value:
                raise ValueError(f"empty track name in selector {text!r}")
            return cls("name", value)
        try:
            return cls(kind, int(value))
        except ValueError as e:
            raise ValueError(f"bad track selector {text!r}: {e}") from None

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"


def _open(path: Path) -> mido.MidiFile:
    try:
        size = path.stat().st_size
    except OSError as e:
        raise MidiFileError(path, "unreadable", e.strerror or str(e)) from e
    if size == 0:
        raise MidiFileError(path, "empty", "0 bytes")
    try:
        return mido.MidiFile(str(path), clip=True)
    except (PermissionError, IsADirectoryError, FileNotFoundError) as e:
        raise MidiFileError(path, "unreadable", e.strerror or str(e)) from e
    except Exception as e:  # mido's parser raises EOFError, OSError, KeyError, IndexError ...
        raise MidiFileError(path, "corrupt", f"{type(e).__name__}: {e}".rstrip(": ")) from e


def _quantize(tick: int, ticks_per_step: float) -> tuple[int, bool]:
    """Nearest step of ``tick`` and whether it was off the grid (more than half a tick away)."""
    exact = tick / ticks_per_step
    step = math.floor(exact + 0.5)
    return step, abs(tick - step * ticks_per_step) > 0.5 + 1e-9


def read_midi(path: str | os.PathLike[str], grid: Grid | None = None) -> MidiSong:
    """Read a type-0/1 MIDI file into grid notes, one :class:`MidiTrack` per (track, channel) with notes.

    Type-0 files (one track, all channels) are thereby split by channel. Raises :class:`MidiFileError`
    for a missing, unreadable, empty or corrupt file and for one without any notes.
    """
    grid = grid or Grid()
    p = Path(path)
    mid = _open(p)
    if mid.type == 2:
        raise MidiFileError(p, "corrupt", "type-2 (asynchronous) files are not supported")
    tpb = mid.ticks_per_beat
    if not tpb or tpb <= 0:
        raise MidiFileError(p, "corrupt", f"ticks per beat {tpb!r} (SMPTE timing is not supported)")
    ticks_per_step = tpb / grid.steps_per_beat
    bpm: float | None = None
    time_sig: tuple[int, int] | None = None
    end_tick = 0
    parts: list[MidiTrack] = []
    for ti, track in enumerate(mid.tracks):
        name = ""
        tick = 0
        # (channel, pitch) -> stack of (start tick, velocity); FIFO so a re-struck pitch closes the oldest.
        open_notes: dict[tuple[int, int], list[tuple[int, int]]] = {}
        raw: dict[int, list[tuple[int, int, int, int]]] = {}  # channel -> (start, end, pitch, velocity)
        for msg in track:
            tick += msg.time
            if msg.is_meta:
                if msg.type == "track_name" and not name:
                    name = str(msg.name).strip()
                elif msg.type == "set_tempo" and bpm is None:
                    bpm = round(float(mido.tempo2bpm(msg.tempo)), 3)  # microsecond tempo -> 93.00004
                elif msg.type == "time_signature" and time_sig is None:
                    time_sig = (int(msg.numerator), int(msg.denominator))
                continue
            if msg.type == "note_on" and msg.velocity > 0:
                open_notes.setdefault((msg.channel, msg.note), []).append((tick, msg.velocity))
            elif msg.type in ("note_off", "note_on"):
                stack = open_notes.get((msg.channel, msg.note))
                if stack:
                    start, vel = stack.pop(0)
                    raw.setdefault(msg.channel, []).append((start, tick, msg.note, vel))
        for (ch, pitch), stack in open_notes.items():  # unterminated notes end with their track
            for start, vel in stack:
                raw.setdefault(ch, []).append((start, tick, pitch, vel))
        end_tick = max(end_tick, tick)
        for ch in sorted(raw):
            notes: list[Note] = []
            off = 0
            for start, end, pitch, vel in raw[ch]:
                s, was_off = _quantize(start, ticks_per_step)
                e, _ = _quantize(end, ticks_per_step)
                off += was_off
                notes.append(Note(s, max(1, e - s), pitch, vel))
            notes.sort(key=lambda n: (n.start, n.pitch))
            part_name = name if mid.type == 1 or not name else f"{name} ch{ch}"
            parts.append(
                MidiTrack(
                    index=len(parts),
                    name=part_name or f"channel {ch}",
                    channel=ch,
                    file_track=ti,
                    notes=tuple(notes),
                    off_grid=off,
                )
            )
    if not parts:
        raise MidiFileError(p, "no notes", f"{len(mid.tracks)} track(s) without a single note")
    n_steps = max(
        math.ceil(end_tick / ticks_per_step - 1e-9),
        max(n.start + n.length for t in parts for n in t.notes),
    )
    return MidiSong(
        path=str(p),
        grid=grid,
        bpm=bpm if bpm is not None else DEFAULT_BPM,
        time_signature=time_sig or (4, 4),
        ticks_per_beat=tpb,
        midi_type=mid.type,
        tracks=tuple(parts),
        n_steps=int(n_steps),
    )


def select_tracks(song: MidiSong, selector: str | int | TrackSelector) -> list[MidiTrack]:
    """The parts ``selector`` names (several for a channel); raises ``MidiFileError('missing track')``."""
    sel = TrackSelector.parse(selector)
    found: list[MidiTrack]
    if sel.kind == "index":
        found = [song.tracks[int(sel.value)]] if int(sel.value) < len(song.tracks) else []
    elif sel.kind == "track":
        found = [t for t in song.tracks if t.file_track == sel.value]
    elif sel.kind == "channel":
        found = [t for t in song.tracks if t.channel == sel.value]
    else:
        want = str(sel.value).casefold()
        found = [t for t in song.tracks if t.name.casefold() == want]
        if not found:  # a unique partial match ("sop" for "Soprano") is still unambiguous
            partial = [t for t in song.tracks if want in t.name.casefold()]
            found = partial if len({t.name for t in partial}) == 1 else []
    if not found:
        have = ", ".join(f"{t.index}:{t.name!r}/ch{t.channel}" for t in song.tracks)
        raise MidiFileError(song.path, "missing track", f"no track matches {sel}; the file has {have}")
    return found


def track_tokens(
    song: MidiSong, selector: str | int | TrackSelector, n_steps: int | None = None
) -> TokenArray:
    """The selected part as one token per step (chords reduced to their top note, the skyline).

    The line is ``song.n_steps`` long unless ``n_steps`` is given, so two parts of a song align.
    """
    notes = [n for t in select_tracks(song, selector) for n in t.notes]
    return notes_to_tokens(notes, song.n_steps if n_steps is None else n_steps)


def write_midi(
    path: str | os.PathLike[str],
    parts: Mapping[str, npt.ArrayLike],
    bpm: float = DEFAULT_BPM,
    grid: Grid | None = None,
    velocities: Mapping[str, int] | int | None = None,
    *,
    channels: Sequence[int] | None = None,
) -> Path:
    """Write token lines as a type-1 file: one named track per part (in order), tempo and time signature.

    Part ``i`` plays on channel ``i`` (skipping the GM drum channel 9) unless ``channels`` says otherwise.
    Every track ends at the length of the longest line, so trailing rests survive a round trip.
    """
    grid = grid or Grid()
    if not parts:
        raise ValueError("write_midi needs at least one part")
    if not (np.isfinite(bpm) and bpm > 0):
        raise ValueError(f"bpm must be positive, got {bpm}")
    tpb = WRITE_TICKS_PER_BEAT
    if tpb % grid.steps_per_beat:
        tpb = grid.steps_per_beat * 120
    tps = tpb // grid.steps_per_beat
    lines = {name: validate_tokens(tok).ravel() for name, tok in parts.items()}
    n_steps = max(line.shape[0] for line in lines.values())
    if channels is None:
        channels = [c for c in range(16) if c != 9][: len(lines)]
    if len(channels) < len(lines):
        raise ValueError(f"{len(lines)} parts need as many channels, got {list(channels)}")
    mid = mido.MidiFile(type=1, ticks_per_beat=tpb)
    for i, (name, line) in enumerate(lines.items()):
        if isinstance(velocities, Mapping):
            vel = int(velocities.get(name, 80))
        else:
            vel = 80 if velocities is None else int(velocities)
        if not 1 <= vel <= 127:
            raise ValueError(f"velocity of part {name!r} must be in 1..127, got {vel}")
        ch = int(channels[i])
        track = mido.MidiTrack()
        track.append(mido.MetaMessage("track_name", name=str(name), time=0))
        if i == 0:
            track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0))
            track.append(
                mido.MetaMessage("time_signature", numerator=grid.beats_per_bar, denominator=4, time=0)
            )
        # (tick, order, message): offs sort before ons at the same tick so a re-struck pitch stays two notes.
        events: list[tuple[int, int, mido.Message]] = []
        for n in tokens_to_notes(line, velocity=vel):
            events.append((n.start * tps, 1, mido.Message("note_on", channel=ch, note=n.pitch, velocity=vel)))
            end = (n.start + n.length) * tps
            events.append((end, 0, mido.Message("note_off", channel=ch, note=n.pitch, velocity=0)))
        events.sort(key=lambda e: (e[0], e[1]))
        now = 0
        for tick, _, msg in events:
            track.append(msg.copy(time=tick - now))
            now = tick
        track.append(mido.MetaMessage("end_of_track", time=n_steps * tps - now))
        mid.tracks.append(track)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    mid.save(str(out))
    return out
