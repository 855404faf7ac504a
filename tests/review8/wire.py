"""What an independent receiver heard of a band, per address: helpers for the review8 tests.

Every check folds arrival-ordered OSC note events of ONE address (``/liveagent/out/VOICE/note`` or the v1
``/liveagent/out/note``); all-notes-off bursts are ignored (tests/live/receiver_notes.py), so a note counts
as released only when the engine released it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from tests.live.osc_helpers import OscCollector
from tests.live.receiver_notes import NoteEv, burst_indices, osc_notes
from tests.live.serve_helpers import ServeProcess
from tests.live.test_serve_band import MELODY, VOICES, voice_notes

ADDRESSES = (*VOICES, "v1")


def notes_of(rx: OscCollector, address: str) -> list[NoteEv]:
    """One address's note events ("v1": the v1 address)."""
    return osc_notes(rx) if address == "v1" else voice_notes(rx, address)


def play_grid(sp: ServeProcess, stop: threading.Event, beats: int = 64) -> None:
    """A sequenced soprano: a quarter note on each of serve's beats, released before the next; it follows
    the grid read from the status at each bar (a tempo change moves it)."""
    i = 0
    while i < beats and not stop.is_set():
        try:
            st = sp.status(timeout=2.0)
        except AssertionError:
            time.sleep(0.05)
            continue
        if "grid_t0_ns" not in st:
            time.sleep(0.05)
            continue
        t0, beat_ns = int(st["grid_t0_ns"]), float(st["step_ns"]) * 4
        n = int((time.perf_counter_ns() - t0) // beat_ns) + 1
        for j in range(4):
            if stop.is_set():
                return
            t_on = t0 + (n + j) * beat_ns
            while (wait := t_on - time.perf_counter_ns()) > 0 and not stop.is_set():
                time.sleep(min(wait / 1e9, 0.01) if wait > 2e6 else 0)
            pitch = MELODY[i % len(MELODY)]
            sp.send("/liveagent/note", pitch, 90)
            time.sleep(min(beat_ns * 0.9 / 1e9, 1.0))
            sp.send("/liveagent/note", pitch, 0)
            i += 1


def repeat_order(events: Sequence[NoteEv]) -> tuple[int, int, int]:
    """(first note-offs, their repeats heard back to back, note-ons that came between a note-off and its
    repeat): the safety net's contract (``OscSinkConfig.noteoff_twice``) is that each repeat arrives back to
    back with its note-off, before any note-on that follows on the same address (a repeat after the next
    note-on cuts it on a mono synth; after a re-strike of the same pitch, on any synth)."""
    skip = burst_indices(events)
    ev = [e for i, e in enumerate(events) if i not in skip]
    sounding: set[int] = set()
    firsts = back_to_back = between = 0
    for i, (_, pitch, vel) in enumerate(ev):
        if vel > 0:
            sounding.add(pitch)
            continue
        if pitch not in sounding:
            continue  # a repeat (or a harmless extra off)
        sounding.discard(pitch)
        firsts += 1
        nxt = ev[i + 1] if i + 1 < len(ev) else None
        if nxt is not None and nxt[1] == pitch and nxt[2] == 0:
            back_to_back += 1
        elif any(p == pitch and v == 0 for _, p, v in ev[i + 1 :]):
            between += 1
    return firsts, back_to_back, between


def restrikes_cut(events: Sequence[NoteEv], within_ns: int = 10_000_000) -> int:
    """Re-strikes cut in the same step: off(p), on(p), off(p) on one address, the last within ``within_ns``
    of the note-on (a step is >= 50 ms even at 300 bpm): a poly synth then sounds nothing."""
    skip = burst_indices(events)
    ev = [e for i, e in enumerate(events) if i not in skip]
    n = 0
    for a, b, c in zip(ev, ev[1:], ev[2:], strict=False):
        if a[2] == 0 and b[2] > 0 and c[2] == 0 and a[1] == b[1] == c[1] and c[0] - b[0] < within_ns:
            n += 1
    return n


def per_pitch(events: Sequence[NoteEv]) -> dict[int, list[int]]:
    """Pitch -> its velocities in arrival order (1 on, 0 off): the order per pitch."""
    out: dict[int, list[int]] = {}
    for _, p, v in events:
        out.setdefault(p, []).append(1 if v > 0 else 0)
    return out
