"""Shared helpers of review 7: a sequencer that plays a soprano exactly on serve's grid (as a DAW would),
and what an independent receiver heard of the band, measured as a musician listens: notes per bar, the share
of each voice's onsets consonant with the soprano sounding at that moment, crossings above the soprano, and
what still sounds before any all-notes-off burst."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from liveagent.music.band import BANDS
from tests.live.receiver_notes import NoteEv, before_first_burst, sounding_at
from tests.live.serve_helpers import ServeProcess, wait_until
from tests.live.test_serve_band import voice_notes

log = logging.getLogger(__name__)

VOICES = BANDS["satb"]
BPM = 100.0
C_SCALE = (72, 74, 76, 77, 79, 77, 76, 74, 72, 71, 72, 74, 76, 74, 72, 72)
"""Sixteen quarter notes of a C-major tune (4 bars), the same shape as tests/live's MELODY."""
C_MAJOR_PCS = frozenset({0, 2, 4, 5, 7, 9, 11})
FS_MAJOR_PCS = frozenset({6, 8, 10, 11, 1, 3, 5})
CONSONANT = frozenset({0, 3, 4, 7, 8, 9})
"""Intervals mod 12 consonant with the melody; a fourth (5) counts for the alto and tenor, not the bass
(the README's eval rule)."""


def band_args(policy: str, bpm: float = BPM) -> tuple[str, ...]:
    return ("--band", "satb", "--policy", policy, "--bpm", f"{bpm:g}", "--autostart", "--no-record")


@dataclass
class Sop:
    """One soprano note as sequenced: planned grid times (ns, perf_counter) and pitch."""

    t_on: int
    t_off: int
    pitch: int


@dataclass
class Sequencer:
    """The DAW: quarter notes (None = a beat's rest) exactly on serve's beats, released at 0.9 of the
    beat. ``hooks`` maps a beat index to a callback run half a beat BEFORE that beat (a control change
    sent ahead of a bar line, as an automation lane would)."""

    sp: ServeProcess
    notes: list[Sop] = field(default_factory=list)
    t0: int = 0
    step_ns: float = 0.0

    def grid(self) -> tuple[int, float]:
        assert wait_until(lambda: "grid_t0_ns" in self.sp.status(), 5)
        st = self.sp.status()
        return int(st["grid_t0_ns"]), float(st["step_ns"]) * 4

    def play(
        self,
        beats: Sequence[int | None],
        hooks: dict[int, Callable[[], None]] | None = None,
        bar_aligned: bool = True,
    ) -> int:
        """Plays ``beats`` from the next bar line (or next beat); returns the first beat's grid time."""
        t0, beat_ns = self.grid()
        self.t0, self.step_ns = t0, beat_ns / 4
        n = int((time.perf_counter_ns() - t0) // beat_ns) + 1
        if bar_aligned:
            n += -n % 4
        first = int(t0 + n * beat_ns)
        for i, pitch in enumerate(beats):
            t_on = int(t0 + (n + i) * beat_ns)
            if hooks and i in hooks:
                _sleep_until(int(t_on - beat_ns / 2))
                hooks[i]()
            _sleep_until(t_on)
            if pitch is None:
                continue
            self.sp.send("/liveagent/note", pitch, 90)
            t_off = int(t_on + beat_ns * 0.9)
            self.notes.append(Sop(t_on, t_off, pitch))
            _sleep_until(t_off)
            self.sp.send("/liveagent/note", pitch, 0)
        return first


def _sleep_until(t_ns: int) -> None:
    while (wait := t_ns - time.perf_counter_ns()) > 0:
        time.sleep(min(wait / 1e9, 0.01) if wait > 2e6 else 0)


def onsets(sp: ServeProcess, voice: str, lo: int = 0, hi: int = 2**63) -> list[tuple[int, int]]:
    """A voice's note-ons (arrival ns, pitch) that arrived in [lo, hi)."""
    return [(t, p) for t, p, v in voice_notes(sp.rx, voice) if v > 0 and lo <= t < hi]


def soprano_at(notes: Sequence[Sop], t: int, tol_ns: int = 1_000_000) -> int | None:
    """The soprano sounding at arrival time ``t``. A band note emitted at T_k arrives a fraction of a ms
    after it, the sequenced soprano's note there starts at T_k: ``tol_ns`` keeps a note that arrives a
    hair before its grid time on its own step."""
    for s in notes:
        if s.t_on <= t + tol_ns < s.t_off:
            return s.pitch
    return None


@dataclass
class Harmony:
    """Per voice: onsets under a sounding soprano, how many consonant, how many above the soprano."""

    judged: dict[str, int]
    consonant: dict[str, int]
    above: dict[str, int]

    def pct(self, voice: str | None = None) -> float:
        vs = [voice] if voice else list(VOICES)
        n = sum(self.judged[v] for v in vs)
        return 100.0 * sum(self.consonant[v] for v in vs) / n if n else 0.0

    def above_pct(self) -> float:
        n = sum(self.judged.values())
        return 100.0 * sum(self.above.values()) / n if n else 0.0

    def summary(self) -> str:
        per = ", ".join(f"{v} {self.pct(v):.0f}% of {self.judged[v]}" for v in VOICES)
        return f"pooled {self.pct():.1f}% ({per}); above soprano {self.above_pct():.1f}%"


def harmony(sp: ServeProcess, notes: Sequence[Sop], lo: int = 0, hi: int = 2**63) -> Harmony:
    judged, cons, above = {}, {}, {}
    for v in VOICES:
        judged[v] = cons[v] = above[v] = 0
        for t, p in onsets(sp, v, lo, hi):
            s = soprano_at(notes, t)
            if s is None:
                continue
            judged[v] += 1
            iv = (s - p) % 12
            cons[v] += iv in CONSONANT or (iv == 5 and v != "bass")
            above[v] += p > s
    return Harmony(judged, cons, above)


def stuck(sp: ServeProcess) -> dict[str, dict[int, int]]:
    """Per voice, what still sounds before the first all-notes-off burst (empty when all released)."""
    out = {v: before_first_burst(voice_notes(sp.rx, v)) for v in VOICES}
    return {v: s for v, s in out.items() if s}


def sounding_now(sp: ServeProcess, t: int) -> dict[str, dict[int, int]]:
    out = {v: sounding_at(voice_notes(sp.rx, v), t) for v in VOICES}
    return {v: s for v, s in out.items() if s}


def grid_lateness_ms(events: Sequence[tuple[int, int]], t0: int, step_ns: float) -> list[float]:
    """Arrival minus the nearest grid step's time, ms."""
    return [(t - (t0 + round((t - t0) / step_ns) * step_ns)) / 1e6 for t, _ in events]


def in_scale_pct(events: Sequence[tuple[int, int]], pcs: frozenset[int]) -> float:
    return 100.0 * sum(p % 12 in pcs for _, p in events) / len(events) if events else 0.0


def run_in_thread(fn: Callable[[], object]) -> threading.Thread:
    th = threading.Thread(target=fn, daemon=True)
    th.start()
    return th


__all__ = ["NoteEv", "ServeProcess", "log"]
