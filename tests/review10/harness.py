"""Review 10's stage: a singer sequenced exactly on the grid of a real ``liveagent serve --policy anticipate``
(one UDP socket, absolute deadlines on serve's own grid), and the bass line an independent receiver heard,
folded back onto that grid as tokens, so the eval's own metric functions judge what was actually played.

A session plays *segments* (a token line each, 16th steps, starting on a bar line) one after the other;
each segment's bass line and measurements are returned separately, so a test can compare the same bars of
two segments (a melody with and without a key change).
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from liveagent.env.metrics import (
    change_consonance_counts,
    consonance_counts,
    off_eighth_onsets,
    parallel_perfects,
)
from liveagent.music.tokens import HOLD, NO_PITCH, ONSET_BASE, REST, sounding_pitches
from tests.live.receiver_notes import NoteEv, osc_notes, sounding_at
from tests.live.serve_helpers import ServeProcess, wait_until
from tests.review9.stage import MS, fast_switch, osc

log = logging.getLogger(__name__)

SPB = 4
BAR = 16
IntArray = npt.NDArray[np.int64]


@dataclass
class Heard:
    """One segment as played (``perf``) and as heard from the agent (``agent``), on the same steps."""

    name: str
    perf: IntArray
    agent: IntArray
    late_ms: list[float]

    def onset_pct(self, lo: int = 0, hi: int | None = None) -> tuple[float, int]:
        ok, n = consonance_counts(self.agent[lo:hi], self.perf[lo:hi])
        return (100.0 * ok / n if n else float("nan")), n

    def change_pct(self, lo: int = 0, hi: int | None = None) -> tuple[float, int]:
        ok, n = change_consonance_counts(self.agent[lo:hi], self.perf[lo:hi])
        return (100.0 * ok / n if n else float("nan")), n

    def onsets(self, lo: int = 0, hi: int | None = None) -> int:
        return int((self.agent[lo:hi] >= ONSET_BASE).sum())


@dataclass
class Pooled:
    """Counts pooled over segments (the eval pools over pieces the same way)."""

    onset_ok: int = 0
    onset_n: int = 0
    change_ok: int = 0
    change_n: int = 0
    notes: int = 0
    off_eighth: int = 0
    parallels: int = 0
    bars: float = 0.0

    def add(self, h: Heard, lo: int = 0, hi: int | None = None) -> None:
        a, p = h.agent[lo:hi], h.perf[lo:hi]
        ok, n = consonance_counts(a, p)
        self.onset_ok, self.onset_n = self.onset_ok + ok, self.onset_n + n
        ok, n = change_consonance_counts(a, p)
        self.change_ok, self.change_n = self.change_ok + ok, self.change_n + n
        self.notes += int((a >= ONSET_BASE).sum())
        self.off_eighth += off_eighth_onsets(a, SPB)
        self.parallels += parallel_perfects(a, p)
        self.bars += a.size / BAR

    def row(self) -> dict[str, float]:
        def pct(x: int, n: int) -> float:
            return round(100.0 * x / n, 1) if n else float("nan")

        return {
            "onset_pct": pct(self.onset_ok, self.onset_n),
            "change_pct": pct(self.change_ok, self.change_n),
            "changes": self.change_n,
            "notes_per_bar": round(self.notes / self.bars, 2) if self.bars else 0.0,
            "between_eighths_pct": pct(self.off_eighth, self.notes),
            "parallels_per_100": pct(self.parallels, self.notes),
            "notes": self.notes,
        }


def fold(events: Sequence[NoteEv], t0: int, step: float, k0: int, n: int) -> tuple[IntArray, list[float]]:
    """The agent's line on steps [k0, k0+n): ONSET when a note-on arrived within half a step of T_k, HOLD
    while a note sounds, REST otherwise; plus each onset's arrival minus T_k (ms)."""
    line = np.full(n, REST, dtype=np.int64)
    late: list[float] = []
    held: dict[int, int] = {}
    evs = sorted(events)
    i = 0
    lo0 = t0 + (k0 - 0.5) * step
    while i < len(evs) and evs[i][0] < lo0:
        _, p, v = evs[i]
        held[p] = max(0, held.get(p, 0) + (1 if v > 0 else -1))
        i += 1
    for j in range(n):
        tk = t0 + (k0 + j) * step
        hi = tk + step / 2
        struck = -1
        while i < len(evs) and evs[i][0] < hi:
            t, p, v = evs[i]
            held[p] = max(0, held.get(p, 0) + (1 if v > 0 else -1))
            if v > 0:
                struck = p
                late.append((t - tk) / 1e6)
            i += 1
        if struck >= 0:
            line[j] = ONSET_BASE + struck
        elif any(held.values()):
            line[j] = HOLD
    return line, late


def release_tokens(perf: IntArray) -> list[tuple[int, int, int]]:
    """(step, pitch, velocity) events of a token line: a note ends where the next onset or REST starts."""
    out: list[tuple[int, int, int]] = []
    cur = -1
    for j, tok in enumerate(perf.tolist()):
        if tok == HOLD:
            continue
        if cur >= 0:
            out.append((j, cur, 0))
            cur = -1
        if tok >= ONSET_BASE:
            cur = tok - ONSET_BASE
            out.append((j, cur, 90))
    if cur >= 0:
        out.append((len(perf), cur, 0))
    return out


class Singer:
    """Plays token lines on serve's grid; every note-on exactly at T_k (the previous note's off first)."""

    def __init__(self, sp: ServeProcess) -> None:
        self.sp = sp
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        assert wait_until(lambda: "grid_t0_ns" in sp.status() and sp.status().get("running") == 1, 10)
        st = sp.status()
        self.t0, self.step = int(st["grid_t0_ns"]), float(st["step_ns"])
        self.segments: list[tuple[str, int, IntArray]] = []
        now = time.perf_counter_ns() + 400 * MS
        self.k = -(-int((now - self.t0) // self.step) // BAR) * BAR + BAR

    def t(self, k: int) -> int:
        return self.t0 + round(k * self.step)

    def _send_at(self, t_ns: int, dgram: bytes) -> None:
        left = t_ns - time.perf_counter_ns()
        if left > 2 * MS:
            time.sleep((left - 2 * MS) / 1e9)
        while time.perf_counter_ns() < t_ns:
            pass
        self.sock.sendto(dgram, ("127.0.0.1", self.sp.osc_port))

    def sing(self, name: str, perf: IntArray, rest_bars: int = 0) -> int:
        """Plays ``perf`` from the current bar line, then ``rest_bars`` of silence; returns its first step."""
        k0 = self.k
        with fast_switch():
            for j, pitch, vel in release_tokens(perf):
                self._send_at(self.t(k0 + j), osc("/liveagent/note", pitch, vel))
        self.segments.append((name, k0, perf))
        n_bars = -(-perf.size // BAR) + rest_bars
        self.k = k0 + n_bars * BAR
        return k0

    def wait_until_step(self, k: int) -> None:
        while time.perf_counter_ns() < self.t(k):
            time.sleep(0.005)

    def heard(self) -> list[Heard]:
        evs = osc_notes(self.sp.rx)
        out = []
        for name, k0, perf in self.segments:
            line, late = fold(evs, self.t0, self.step, k0, perf.size)
            out.append(Heard(name, perf, line, late))
        return out


def serve_args(policy: str, bpm: float) -> tuple[str, ...]:
    return ("--policy", policy, "--clock", "internal", "--bpm", f"{bpm:g}", "--autostart", "--no-record")


def stop_releases(
    sp: ServeProcess, singer: Singer, perf_tail: IntArray
) -> tuple[dict[int, int], dict[int, int]]:
    """Sings ``perf_tail`` and sends /liveagent/stop mid-way (at its middle step + 0.3 step, the singer's
    note still held): returns (what sounded when /stop was sent, what still sounds 0.5 s later, bursts
    ignored)."""
    k0 = singer.k
    mid = perf_tail.size // 2
    with fast_switch():
        for j, pitch, vel in release_tokens(perf_tail[:mid]):
            singer._send_at(singer.t(k0 + j), osc("/liveagent/note", pitch, vel))
        t_stop = singer.t(k0 + mid) + round(0.3 * singer.step)
        singer._send_at(t_stop, osc("/liveagent/stop"))
    at_stop = sounding_at(osc_notes(sp.rx), t_stop)
    time.sleep(0.5)
    after = sounding_at(osc_notes(sp.rx), time.perf_counter_ns())
    return at_stop, after


def transpose_from(perf: IntArray, c: int, semis: int) -> IntArray:
    """``perf`` moved ``semis`` from step ``c`` on; a note held across ``c`` is struck again there (the
    eval's ``with_tritone_change``, for any interval)."""
    out = perf.copy()
    sounding = sounding_pitches(perf)
    tail = out[c:]
    moved = np.where(tail >= ONSET_BASE, tail + semis, tail)
    if tail.size and tail[0] == HOLD and sounding[c] != NO_PITCH:
        moved[0] = ONSET_BASE + sounding[c] + semis
    out[c:] = moved
    return out


def line_of(notes: Sequence[tuple[int | None, int]]) -> IntArray:
    """(pitch or None for a rest, length in 16ths) as a token line."""
    out: list[int] = []
    for p, steps in notes:
        out += [REST] * steps if p is None else [ONSET_BASE + p] + [HOLD] * (steps - 1)
    return np.asarray(out, dtype=np.int64)


def first_note_bar(perf: IntArray) -> int:
    """Steps before the first bar line on or after the performer's first onset (pickups skipped)."""
    first = int(np.flatnonzero(perf >= ONSET_BASE)[0])
    return -(-first // BAR) * BAR
