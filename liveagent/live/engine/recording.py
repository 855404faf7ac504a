"""Session recording that survives a killed process: a MIDI file and a JSONL event log, flushed every bar.

The engine thread calls :class:`Recorder` methods; they only append small tuples (no formatting, no I/O
on the hot path). :meth:`Recorder.flush` (the engine calls it at each bar line, in slack time) encodes
the new events, appends them to the JSONL log and flushes it, and writes the whole MIDI file afresh to a
temporary file that replaces the old one atomically (``os.replace``). A reader therefore always finds a
complete, valid Standard MIDI File; after SIGKILL it holds everything up to the last bar line.

Creating a :class:`Recorder` proves the folder usable (it makes it and reserves the session's name by
creating the empty log exclusively) but writes nothing else: the MIDI file appears at the first flush. A
start that fails after that calls :meth:`Recorder.discard`, so a server that never ran leaves no empty
``session-*.jsonl``/``.mid`` pair behind. The log's first line carries ``clock_ns``, the session's start
on the machine's monotonic clock (``perf_counter_ns``), so its times compare with other processes' stamps.

The MIDI file is format 1: track 0 tempo map and time signature, track 1 the performer (channel 1),
track 2 the agent (channel 2). A band (``voices=("alto", "tenor", "bass")``) gets one track per voice
instead of the agent's, named after it, on channels 2, 3, 4 (the default ``--band-channels``): a DAW shows
and plays the voices apart. Its log lines keep ``"track": "agent"`` (readers that pick the agent's notes
still do) and add ``"voice"``. Event bytes are encoded incrementally into per-track bytearrays, so a
flush costs one ``write`` of the file (tens of kB after an hour), not a re-encoding of the session.

Notes still sounding are closed in every MIDI file written (at the flush, without touching the track's
own bytes) and for good at :meth:`Recorder.close` (the log keeps only what was played): a session killed
mid-note or closed before the engine's note-offs arrived never leaves a note hanging in a DAW. Which notes
sound is kept in one preallocated ``bytearray(128)`` per track (no allocation on the engine thread).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)

PERFORMER, AGENT = "performer", "agent"
_CHANNEL = {PERFORMER: 0, AGENT: 1}


def _varlen(value: int) -> bytes:
    value = max(0, int(value))
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def _meta(kind: int, data: bytes) -> bytes:
    return bytes((0xFF, kind)) + _varlen(len(data)) + data


class _Track:
    def __init__(self, name: str) -> None:
        self.data = bytearray()
        self.last_tick = 0
        self.add(0, _meta(0x03, name.encode("utf-8")))

    def add(self, tick: int, event: bytes) -> None:
        tick = max(tick, self.last_tick)
        self.data += _varlen(tick - self.last_tick)
        self.data += event
        self.last_tick = tick

    def chunk(self, tail: bytes = b"") -> bytes:
        """The track chunk; ``tail`` (encoded events, deltas included) goes before its end."""
        body = bytes(self.data) + tail + b"\x00\xff\x2f\x00"
        return b"MTrk" + len(body).to_bytes(4, "big") + body


class _NoteTrack(_Track):
    """A track of notes on one channel that knows which of its pitches sound."""

    def __init__(self, name: str, channel: int) -> None:
        super().__init__(name)
        self.channel = channel
        self.sounding = bytearray(128)

    def note(self, tick: int, pitch: int, velocity: int) -> None:
        pitch &= 0x7F
        status = (0x90 if velocity > 0 else 0x80) | self.channel
        self.add(tick, bytes((status, pitch, velocity & 0x7F)))
        self.sounding[pitch] = 1 if velocity > 0 else 0

    def open_pitches(self) -> list[int]:
        return [p for p in range(128) if self.sounding[p]]

    def release_bytes(self, tick: int) -> bytes:
        """Note-offs for the sounding pitches at ``tick`` (from the last event), as a chunk tail."""
        out = bytearray()
        delta = max(0, tick - self.last_tick)
        for p in self.open_pitches():
            out += _varlen(delta) + bytes((0x80 | self.channel, p, 0))
            delta = 0
        return bytes(out)


class Recorder:
    """Records one session to ``DIR/NAME.mid`` and ``DIR/NAME.jsonl`` (see the module docstring)."""

    def __init__(
        self,
        directory: str | Path,
        *,
        name: str | None = None,
        bpm: float = 120.0,
        beats_per_bar: int = 4,
        ticks_per_beat: int = 480,
        now: Callable[[], int] = time.perf_counter_ns,
        voices: tuple[str, ...] = (),
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.name, log_file = self._reserve(name)
        self._log: IO[str] | None = log_file
        self.midi_path = self.directory / f"{self.name}.mid"
        self.log_path = self.directory / f"{self.name}.jsonl"
        self.ticks_per_beat = ticks_per_beat
        self.t0_ns = now()
        self._bpm = float(bpm)
        self._anchor_ns = self.t0_ns
        self._anchor_tick = 0.0
        self._now = now
        self.voices = tuple(voices)
        self._tempo = _Track("tempo")
        self._performer = _NoteTrack(PERFORMER, _CHANNEL[PERFORMER])
        # the agent's tracks by voice index: its one track, or one per band voice (channels 2, 3, 4...)
        self._agents: tuple[_NoteTrack, ...] = (
            tuple(_NoteTrack(v, (_CHANNEL[AGENT] + i) % 16) for i, v in enumerate(self.voices))
            if self.voices
            else (_NoteTrack(AGENT, _CHANNEL[AGENT]),)
        )
        self._voice_fields = tuple({"voice": v} for v in self.voices) if self.voices else ({},)
        self._tempo.add(0, _meta(0x58, bytes((beats_per_bar, 2, 24, 8))))
        self._tempo.add(0, _meta(0x51, self._tempo_bytes(bpm)))
        self._pending: list[tuple[int, str, dict[str, object]]] = []
        self.flushes = 0
        self.last_flush_ns = 0
        """Duration of the last flush (for benchmarks)."""
        extra: dict[str, object] = {"voices": list(self.voices)} if self.voices else {}
        self.event(
            self.t0_ns,
            "session",
            name=self.name,
            bpm=bpm,
            ticks_per_beat=ticks_per_beat,
            clock_ns=self.t0_ns,
            **extra,
        )

    def _reserve(self, name: str | None) -> tuple[str, IO[str]]:
        """Create the log exclusively under ``name`` (default: the UTC time, with -2, -3... when taken):
        two servers started in the same second never share a file, and an unwritable folder fails here,
        before the show starts."""
        if name is not None:  # a name the caller chose: that file, appended to
            return name, (self.directory / f"{name}.jsonl").open("a", encoding="utf-8")
        base = datetime.now(UTC).strftime("session-%Y%m%d-%H%M%S")
        candidate, n = base, 1
        while True:
            if not (self.directory / f"{candidate}.mid").exists():
                try:
                    return candidate, (self.directory / f"{candidate}.jsonl").open("x", encoding="utf-8")
                except FileExistsError:
                    pass
            n += 1
            candidate = f"{base}-{n}"

    @staticmethod
    def _tempo_bytes(bpm: float) -> bytes:
        return max(1, min(0xFFFFFF, round(60_000_000 / bpm))).to_bytes(3, "big")

    def _tick(self, t_ns: int) -> int:
        return round(self._anchor_tick + (t_ns - self._anchor_ns) * self._bpm * self.ticks_per_beat / 60e9)

    # -- hot path: append only ---------------------------------------------------------------------
    def performer_note(self, t_ns: int, pitch: int, velocity: int) -> None:
        self._performer.note(self._tick(t_ns), pitch, velocity)
        self._pending.append((t_ns, "note", {"track": PERFORMER, "pitch": pitch, "velocity": velocity}))

    def agent_note(self, t_ns: int, pitch: int, velocity: int, voice: int = 0) -> None:
        """An agent's note; ``voice`` is the band voice's index in ``voices`` (ignored when solo)."""
        if not self.voices:
            voice = 0
        self._agents[voice].note(self._tick(t_ns), pitch, velocity)
        fields = {"track": AGENT, **self._voice_fields[voice], "pitch": pitch, "velocity": velocity}
        self._pending.append((t_ns, "note", fields))

    def tempo(self, t_ns: int, bpm: float) -> None:
        """A tempo change at ``t_ns`` (the tempo map bends from here on)."""
        if bpm == self._bpm:
            return
        tick = self._tick(t_ns)
        self._anchor_tick = float(max(tick, self._tempo.last_tick))
        self._anchor_ns = t_ns
        self._bpm = float(bpm)
        self._tempo.add(int(self._anchor_tick), _meta(0x51, self._tempo_bytes(bpm)))
        self._pending.append((t_ns, "tempo", {"bpm": round(float(bpm), 4)}))

    def event(self, t_ns: int, kind: str, **fields: object) -> None:
        """A free-form log line (policy swaps, start/stop, statistics)."""
        self._pending.append((t_ns, kind, fields))

    # -- slack time ----------------------------------------------------------------------------------
    def midi_bytes(self) -> bytes:
        """The whole file: notes still sounding end at the time of this call (the tracks are not changed)."""
        notes = (self._performer, *self._agents)
        tick = self._tick(self._now())
        tracks = len(notes) + 1
        header = b"MThd" + (6).to_bytes(4, "big") + (1).to_bytes(2, "big") + tracks.to_bytes(2, "big")
        header += self.ticks_per_beat.to_bytes(2, "big")
        return header + self._tempo.chunk() + b"".join(t.chunk(t.release_bytes(tick)) for t in notes)

    def _release_all(self) -> None:
        """End every sounding note for good in the MIDI tracks, now: the last thing before the file closes.
        The log is left as it is (it says what was played and heard; its last line stays the engine's)."""
        tick = self._tick(self._now())
        for track in (self._performer, *self._agents):
            for p in track.open_pitches():
                track.note(tick, p, 0)

    def flush(self) -> None:
        """Append the pending log lines (and flush), then replace the MIDI file atomically."""
        t_start = time.perf_counter_ns()
        if self._log is not None and self._pending:
            t0 = self.t0_ns
            lines = []
            for t_ns, kind, fields in self._pending:
                rec: dict[str, object] = {"t": round((t_ns - t0) / 1e9, 6), "kind": kind}
                rec.update(fields)
                lines.append(json.dumps(rec, default=str))
            self._pending.clear()
            self._log.write("\n".join(lines) + "\n")
            self._log.flush()
        tmp = self.midi_path.with_name(self.midi_path.name + ".tmp")
        with tmp.open("wb") as f:
            f.write(self.midi_bytes())
        os.replace(tmp, self.midi_path)
        self.flushes += 1
        self.last_flush_ns = time.perf_counter_ns() - t_start

    def close(self) -> None:
        if self._log is None:
            return
        self._release_all()
        self.flush()
        self._log.close()
        self._log = None

    def discard(self) -> None:
        """A start that failed: close and remove whatever this session created (nothing was played)."""
        if self._log is not None:
            self._log.close()
            self._log = None
        self._pending.clear()
        for path in (self.log_path, self.midi_path, self.midi_path.with_name(self.midi_path.name + ".tmp")):
            path.unlink(missing_ok=True)
