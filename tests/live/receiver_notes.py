"""What a receiver hears sounding, at a given time, before any all-notes-off burst.

On exit and on ``/panic`` the server sends a note-off for all 128 pitches over OSC (the MIDI sink flushes
what it tracked and sends CC 123). A check made after that burst cannot fail: it would pass with every
note release of the engine removed. These helpers fold the receiver's note events into the notes sounding
at a time, IGNORING the bursts, so that a note counts as released only when the engine released it.

Times are ``time.perf_counter_ns()`` arrival stamps (CLOCK_MONOTONIC: the same timeline in every process
on this machine, so they compare with the ``clock_ns`` anchor of a session recording).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from tests.live.osc_helpers import OscCollector

NoteEv = tuple[int, int, int]
"""(arrival ns, pitch, velocity); velocity 0 is a note-off."""

BURST_MIN = 32
"""A run of at least this many note-offs on consecutive ascending pitches is an all-notes-off burst."""


def osc_notes(rx: OscCollector) -> list[NoteEv]:
    """The agent's ``/liveagent/out/note`` messages, in arrival order."""
    return [(t, int(p[0]), int(p[1])) for t, a, p in list(rx.messages) if a == "/liveagent/out/note"]


def midi_notes(received: Iterable[tuple[int, Sequence[int]]]) -> list[NoteEv]:
    """Note-ons/offs out of raw MIDI messages stamped ``(arrival ns, bytes)`` (any channel; CC 123 and the
    like are not notes and are left out: they are the burst)."""
    out: list[NoteEv] = []
    for t, m in received:
        if len(m) == 3 and m[0] & 0xF0 in (0x80, 0x90):
            out.append((t, m[1], m[2] if m[0] & 0xF0 == 0x90 else 0))
    return out


def burst_indices(events: Sequence[NoteEv]) -> set[int]:
    """Indices of the note-offs that belong to an all-notes-off burst: runs of >= ``BURST_MIN`` note-offs on
    pitches p, p+1, p+2, ... one after the other (an engine release just before a burst is not part of
    it: its pitch does not continue the run)."""
    out: set[int] = set()
    run: list[int] = []
    for i, (_, pitch, vel) in enumerate(events):
        if vel == 0 and run and pitch == events[run[-1]][1] + 1:
            run.append(i)
            continue
        if len(run) >= BURST_MIN:
            out.update(run)
        run = [i] if vel == 0 else []
    if len(run) >= BURST_MIN:
        out.update(run)
    return out


def first_burst_time(events: Sequence[NoteEv]) -> int | None:
    """Arrival time of the first burst's first note-off (None without a burst)."""
    b = burst_indices(events)
    return events[min(b)][0] if b else None


def sounding_at(events: Sequence[NoteEv], t_ns: int | None = None) -> dict[int, int]:
    """Pitch -> unreleased note-ons among the events that arrived by ``t_ns`` (all when None), ignoring
    the bursts. Extra note-offs (a safety net's repeat) are harmless: a count never goes below zero."""
    skip = burst_indices(events)
    held: dict[int, int] = {}
    for i, (t, pitch, vel) in enumerate(events):
        if t_ns is not None and t > t_ns:
            break
        if i in skip:
            continue
        n = held.get(pitch, 0) + (1 if vel > 0 else -1)
        held[pitch] = max(0, n)
    return {p: n for p, n in held.items() if n > 0}


def before_first_burst(events: Sequence[NoteEv]) -> dict[int, int]:
    """What sounds just before the first burst (at the end when there is none): on exit, what the engine
    failed to release itself."""
    t = first_burst_time(events)
    return sounding_at(events, None if t is None else t - 1)


def overlaps(events: Sequence[NoteEv]) -> list[tuple[int, int, dict[int, int]]]:
    """Note-ons that arrived while another note still sounded (the agent's line is monophonic: each note
    is released before the next starts), as (arrival ns, pitch, what sounded), bursts ignored."""
    skip = burst_indices(events)
    held: dict[int, int] = {}
    out: list[tuple[int, int, dict[int, int]]] = []
    for i, (t, pitch, vel) in enumerate(events):
        if i in skip:
            continue
        if vel > 0 and any(held.values()):
            out.append((t, pitch, {p: n for p, n in held.items() if n}))
        held[pitch] = max(0, held.get(pitch, 0) + (1 if vel > 0 else -1))
    return out


def read_session_log(directory: Path) -> list[dict[str, Any]]:
    """The one session's JSONL log in ``directory``, parsed (every line must be whole JSON)."""
    logs = list(directory.glob("*.jsonl"))
    assert len(logs) == 1, logs
    return [json.loads(x) for x in logs[0].read_text().splitlines()]


def log_time_ns(lines: Sequence[dict[str, Any]], t: float) -> int:
    """A log time (seconds from the session's start) on the perf_counter_ns timeline (the session line's
    ``clock_ns`` anchor)."""
    return int(lines[0]["clock_ns"]) + round(t * 1e9)
