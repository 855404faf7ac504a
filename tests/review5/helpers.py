"""A stage musician's checks on a real `liveagent serve` (review 5): a performer thread over real UDP that
records what it played, and the measures a player hears: stuck notes, overlaps, bursts, register,
consonance against the melody."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from tests.live.receiver_notes import NoteEv, before_first_burst, osc_notes, overlaps
from tests.live.serve_helpers import ServeProcess

MELODY = (72, 71, 72, 74, 76, 74, 72, 71, 69, 71, 72, 67, 65, 64, 62, 60)
"""A C major soprano line, a note a beat."""
CONSONANT = frozenset({0, 3, 4, 7, 8, 9})
"""Interval classes (semitones mod 12) heard as consonant under a melody (the fourth is left out, as in
two-part counterpoint)."""


class Performer:
    """A player on its own thread: a note a beat at ``bpm``, each held ``legato`` of the beat; every note-on
    and note-off is kept as (send time ns, pitch, vel), so the agent's notes can be heard against it."""

    def __init__(self, serve: ServeProcess, bpm: float, melody: Sequence[int] = MELODY, legato: float = 0.9):
        self.serve, self.bpm, self.melody, self.legato = serve, bpm, melody, legato
        self.stop_ev = threading.Event()
        self.played: list[tuple[int, int, int]] = []  # (t ns, pitch, vel)
        self.on_beat: list[Callable[[int], None]] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        beat = 60.0 / self.bpm
        t0 = time.perf_counter()
        i = 0
        while not self.stop_ev.is_set():
            p = self.melody[i % len(self.melody)]
            target = t0 + i * beat
            time.sleep(max(0.0, target - time.perf_counter()))
            self.played.append((time.perf_counter_ns(), p, 90))
            self.serve.send("/liveagent/note", p, 90)
            for cb in self.on_beat:
                cb(i)
            time.sleep(max(0.0, target + beat * self.legato - time.perf_counter()))
            self.played.append((time.perf_counter_ns(), p, 0))
            self.serve.send("/liveagent/note", p, 0)
            i += 1

    def __enter__(self) -> Performer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_ev.set()
        self.thread.join(5)

    def sounding(self, t_ns: int) -> int | None:
        """The performer's pitch sounding at ``t_ns`` (None in a gap)."""
        cur: int | None = None
        for t, p, v in self.played:
            if t > t_ns:
                break
            cur = p if v > 0 else (None if cur == p else cur)
        return cur


def agent_onsets(events: Sequence[NoteEv], t0: int = 0, t1: int | None = None) -> list[tuple[int, int]]:
    """(arrival ns, pitch) of the agent's note-ons in [t0, t1)."""
    return [(t, p) for t, p, v in events if v > 0 and t >= t0 and (t1 is None or t < t1)]


def consonance_pct(perf: Performer, onsets: Sequence[tuple[int, int]]) -> float:
    """Share of the agent's onsets (those with a performer note sounding) consonant with that note."""
    pairs = [(p, perf.sounding(t)) for t, p in onsets]
    heard = [(a, m) for a, m in pairs if m is not None]
    if not heard:
        return 0.0
    return 100.0 * sum((m - a) % 12 in CONSONANT for a, m in heard) / len(heard)


def max_onsets_within(onsets: Sequence[tuple[int, int]], window_ns: int) -> int:
    """The most agent note-ons that arrived within any ``window_ns``: a burst shows as many."""
    ts = [t for t, _ in onsets]
    best, j = 0, 0
    for i in range(len(ts)):
        while ts[i] - ts[j] >= window_ns:
            j += 1
        best = max(best, i - j + 1)
    return best


def hygiene(serve: ServeProcess) -> tuple[dict[int, int], list[tuple[int, int, dict[int, int]]]]:
    """What the engine left sounding itself (before the exit burst) and the overlaps of its line."""
    ev = osc_notes(serve.rx)
    return before_first_burst(ev), overlaps(ev)


def stop_cleanly(serve: ServeProcess) -> dict[str, object]:
    """Stop the transport, take the final status, terminate (status 0 expected)."""
    serve.send("/liveagent/stop")
    deadline = time.monotonic() + 5
    st = serve.status()
    while st.get("running") not in (0, False) and time.monotonic() < deadline:
        time.sleep(0.05)
        st = serve.status()
    time.sleep(0.2)
    st = serve.status()
    rc = serve.terminate()
    assert rc == 0, "".join(serve.stderr)[-2000:]
    return st
