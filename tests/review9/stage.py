"""A hostile stage around a real `liveagent serve`: an on-grid performer and controls aimed at T_k - 0.5 ms.

One sender (one UDP socket, the test's main thread) plays a prebuilt schedule of datagrams at absolute
``perf_counter_ns`` times: the performer's notes on the grid (a note-on on each beat, its note-off half a
beat later) and the controls aimed inside the last millisecond before a step's grid time, where the engine
spins and ``Engine._emit_due`` sends the step at the end of the spin unless something is queued. The grid
is serve's own (``grid_t0_ns``, ``step_ns`` from ``/liveagent/status``; ``perf_counter_ns`` is
CLOCK_MONOTONIC, one timeline for every process on this machine).

What the receiver heard is then checked against the aimed times (see the ``check_*`` functions): they
return lists of problems, so a test can report every one of them at once.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pythonosc.osc_message_builder import OscMessageBuilder

from tests.live.osc_helpers import OscCollector
from tests.live.receiver_notes import NoteEv, burst_indices, read_session_log, sounding_at
from tests.live.serve_helpers import ServeProcess

log = logging.getLogger(__name__)

MS = 1_000_000
AIM_NS = 500_000
"""Controls are sent this long before the step's grid time: inside the engine's 1 ms spin."""
MELODY = (67, 69, 71, 72, 74, 72, 71, 69, 67, 66, 67, 69, 71, 72, 69, 67)
"""The performer's line (a soprano), one note per beat."""
SPB = 4
"""Steps per beat (the shipped policies: sixteenths)."""


def osc(address: str, *args: int | float | str) -> bytes:
    """One prebuilt OSC datagram."""
    b = OscMessageBuilder(address)
    for a in args:
        b.add_arg(a)
    return bytes(b.build().dgram)


@dataclass(frozen=True)
class Grid:
    """Serve's grid: T_k = t0 + k * step (ns)."""

    t0: int
    step: float

    def t(self, k: int) -> int:
        return self.t0 + round(k * self.step)

    def k_at(self, t_ns: int) -> int:
        """The step nearest to ``t_ns``."""
        return round((t_ns - self.t0) / self.step)

    def k_after(self, t_ns: int, mod: int = 1, rem: int = 0) -> int:
        """The first step at or after ``t_ns`` with ``k % mod == rem``."""
        k = max(0, int((t_ns - self.t0) // self.step) + 1)
        while k % mod != rem:
            k += 1
        return k


@dataclass
class Episode:
    """One control aimed at step ``k``'s grid time less :data:`AIM_NS`."""

    kind: str
    k: int
    grid: Grid
    t_sent: int = 0
    t_after: int = 0
    """When the episode's effect ends (unmute sent, start sent): 0 while open."""


@contextmanager
def fast_switch(interval_s: float = 0.0005, fifo_priority: int = 30) -> Iterator[None]:
    """The sender's conditions: the test process's GIL switch interval short while the sender spins (the
    receiver's thread stamps arrivals: with the default 5 ms a spinning sender held its stamps back), and
    the calling thread on SCHED_FIFO above serve's engine (fifo:20) when allowed. A peer on another machine
    is not starved by serve's spin; on this 2-core machine a normal-priority sender was, and its controls
    left ~1 ms late (p50), after T_k instead of inside the spin."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(interval_s)
    policy = os.sched_getscheduler(0)
    param = os.sched_getparam(0)
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(fifo_priority))
    except OSError as e:
        log.warning("sender stays at normal priority (%s): its aim is looser", e)
    try:
        yield
    finally:
        os.sched_setscheduler(0, policy, param)
        sys.setswitchinterval(old)


class Stage:
    """A performer and a control desk on one socket, against one ServeProcess."""

    def __init__(self, sp: ServeProcess) -> None:
        self.sp = sp
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addr = ("127.0.0.1", sp.osc_port)
        self.grids: list[tuple[int, Grid]] = []
        """(valid from ns, grid): every grid the session played on."""
        self.episodes: list[Episode] = []
        self.aim_errors_ns: list[int] = []
        """Send time minus aimed time of every control (how well this sender aimed)."""
        self._beat_i = 0

    @property
    def grid(self) -> Grid:
        return self.grids[-1][1]

    def send_at(self, t_ns: int, dgram: bytes) -> int:
        """Send ``dgram`` at ``t_ns`` (sleep, then spin the last 2 ms); returns the send time."""
        left = t_ns - time.perf_counter_ns()
        if left > 2 * MS:
            time.sleep((left - 2 * MS) / 1e9)
        while (now := time.perf_counter_ns()) < t_ns:
            pass
        self.sock.sendto(dgram, self.addr)
        return now

    def regrid(self, timeout: float = 5.0, valid_from: int | None = None) -> Grid:
        """Wait until the status shows a running grid different from the last one; record it."""
        deadline = time.monotonic() + timeout
        old = self.grids[-1][1] if self.grids else None
        while time.monotonic() < deadline:
            st = self.sp.status()
            if st.get("running") == 1 and "grid_t0_ns" in st:
                g = Grid(int(st["grid_t0_ns"]), float(st["step_ns"]))
                if old is None or abs(g.t0 - old.t0) > MS or abs(g.step - old.step) > 1000:
                    start = valid_from if valid_from is not None else g.t0 - MS
                    self.grids.append((start, g))
                    return g
            time.sleep(0.05)
        raise AssertionError(f"no new running grid in {timeout} s (last {old})")

    def play(self, k_from: int, k_to: int, controls: Sequence[tuple[int, bytes]] = ()) -> list[int]:
        """The performer's beats in [k_from, k_to) on the current grid (each note-off half a beat after its
        note-on, even past k_to), merged with ``controls`` (time, datagram); returns the controls' send
        times in their order."""
        g = self.grid
        items: list[tuple[int, int, bytes]] = []
        for k in range(k_from, k_to):
            if k % SPB == 0:
                pitch = MELODY[self._beat_i % len(MELODY)]
                self._beat_i += 1
                items.append((g.t(k), -1, osc("/liveagent/note", pitch, 90)))
                items.append((g.t(k + SPB // 2), -1, osc("/liveagent/note", pitch, 0)))
        for i, (t, d) in enumerate(controls):
            items.append((t, i, d))
        items.sort(key=lambda x: (x[0], x[1]))
        sent = [0] * len(controls)
        for t, i, d in items:
            ts = self.send_at(t, d)
            if i >= 0:
                sent[i] = ts
        return sent

    def aim(
        self, kind: str, k: int, dgram: bytes, k_to: int, after: tuple[int, bytes] | None = None
    ) -> Episode:
        """Play the performer up to ``k_to`` with ``dgram`` aimed at T_k - 0.5 ms (and ``after``, the end of
        the episode: an unmute, a start); the episode is kept for the checks."""
        ep = Episode(kind, k, self.grid)
        target = ep.grid.t(k) - AIM_NS
        controls = [(target, dgram)] + ([after] if after is not None else [])
        sent = self.play(self.grid.k_after(time.perf_counter_ns() + 5 * MS), k_to, controls)
        ep.t_sent = sent[0]
        ep.t_after = sent[1] if after is not None else 0
        self.aim_errors_ns.append(ep.t_sent - target)
        self.episodes.append(ep)
        return ep

    def next_k(self, rem: int, mod: int = SPB, ahead_steps: int = 2) -> int:
        """A target step a little ahead (room to schedule), with ``k % mod == rem``."""
        g = self.grid
        return g.k_after(time.perf_counter_ns() + round(ahead_steps * g.step), mod, rem)

    def grid_of(self, t_ns: int) -> Grid:
        g = self.grids[0][1]
        for start, gg in self.grids:
            if start <= t_ns:
                g = gg
        return g


# -- what the receiver heard --------------------------------------------------------------------------


def notes_at(rx: OscCollector, address: str) -> list[NoteEv]:
    """(arrival ns, pitch, velocity) of every message on ``address``, in arrival order."""
    return [(t, int(p[0]), int(p[1])) for t, a, p in list(rx.messages) if a == address]


def beats_of(rx: OscCollector) -> list[tuple[int, int]]:
    """(arrival ns, beat index = bar * 4 + beat) of every /liveagent/out/beat."""
    return [(t, int(p[0]) * 4 + int(p[1])) for t, a, p in list(rx.messages) if a == "/liveagent/out/beat"]


def check_silenced(stage: Stage, events: list[NoteEv], ep: Episode, label: str) -> tuple[list[str], int]:
    """After a /mute 1 or /stop aimed at T_k - 0.5 ms: at T_k + step/2 nothing sounds, and no note-on
    arrives from then until the episode's end (unmute / start sent). Returns the problems and whether step
    k itself still went out with a note-on after the control was sent (the one step in flight)."""
    problems: list[str] = []
    g = ep.grid
    t_check = g.t(ep.k) + round(g.step / 2)
    t_end = ep.t_after or t_check + 10**9
    left = sounding_at(events, t_check)
    if left:
        problems.append(f"{label} {ep.kind} k={ep.k}: still sounding at T_k+step/2: {left}")
    late_ons = [(t - g.t(ep.k)) / MS for t, _, v in events if v > 0 and t_check < t < t_end]
    if late_ons:
        problems.append(f"{label} {ep.kind} k={ep.k}: note-ons after the reaction, at T_k+{late_ons} ms")
    in_flight = sum(1 for t, _, v in events if v > 0 and ep.t_sent < t <= t_check)
    return problems, in_flight


def check_panicked(events: list[NoteEv], ep: Episode, label: str) -> list[str]:
    """After a /panic aimed at T_k - 0.5 ms: every note struck before the panic was sent is released (by
    the engine, the all-notes-off burst not counted) by T_k + step/2."""
    g = ep.grid
    t_check = g.t(ep.k) + round(g.step / 2)
    skip = burst_indices(events)
    struck: dict[int, int] = {}
    for i, (t, p, v) in enumerate(events):
        if t > t_check:
            break
        if i in skip:
            continue
        if v > 0:
            struck[p] = t
        else:
            struck.pop(p, None)
    old = {p: (t - ep.t_sent) / MS for p, t in struck.items() if t < ep.t_sent}
    return [f"{label} panic k={ep.k}: struck before the panic, still sounding: {old}"] if old else []


def check_beats(stage: Stage, beats: list[tuple[int, int]], restarts: Sequence[int]) -> list[str]:
    """Beats count 0, 1, 2, ... within each transport run (runs split at the ``restarts`` send times):
    none doubled, none missing, none after the run's stop."""
    problems: list[str] = []
    cuts = sorted(restarts)
    runs: list[list[tuple[int, int]]] = [[] for _ in range(len(cuts) + 1)]
    for t, b in beats:
        runs[sum(1 for c in cuts if c <= t)].append((t, b))
    for i, run in enumerate(runs):
        idx = [b for _, b in run]
        if not idx:
            continue
        gaps = [(a, b) for a, b in itertools.pairwise(idx) if b != a + 1]
        if gaps:
            problems.append(f"run {i}: beats not consecutive: {gaps[:6]}")
    return problems


def doubles(stage: Stage, events: list[NoteEv], label: str) -> list[str]:
    """A monophonic voice strikes at most once per step: two note-ons in one step is a step sent twice."""
    seen: dict[tuple[int, int], int] = {}
    for t, _, v in events:
        if v > 0:
            g = stage.grid_of(t)
            key = (g.t0, g.k_at(t))
            seen[key] = seen.get(key, 0) + 1
    dup = {k: n for k, n in seen.items() if n > 1}
    return [f"{label}: steps struck twice {list(dup.items())[:6]}"] if dup else []


def collapse(events: Sequence[NoteEv]) -> list[NoteEv]:
    """The receiver's notes without the all-notes-off bursts and without the note-off repeats (every
    note-off is sent twice back to back): what the engine played, once."""
    skip = burst_indices(events)
    out: list[NoteEv] = []
    for i, ev in enumerate(events):
        if i in skip:
            continue
        if ev[2] == 0 and out and out[-1][2] == 0 and out[-1][1] == ev[1]:
            continue
        out.append(ev)
    return out


@dataclass
class RecordingMatch:
    """The session log's agent notes against the receiver's, in order."""

    problems: list[str] = field(default_factory=list)
    matched: int = 0
    delay_ms: list[float] = field(default_factory=list)
    """Arrival minus the recorded time of every matched note. A note-off released by a control (mute,
    stop, panic, swap) is recorded at a time taken after its send, so it may arrive a few us "before" it;
    a step's notes are recorded at the time taken before their sends."""
    on_delay_ms: list[float] = field(default_factory=list)
    """The same, note-ons only (each one a step's emission): never negative."""


def match_recording(
    directory: Path, heard: dict[str, list[NoteEv]], voice_of: dict[str, str | None]
) -> RecordingMatch:
    """Every note the receiver heard on each address must be in the recording, in the same order (pitch
    and velocity, note-offs included), recorded no later than it arrived."""
    lines = read_session_log(directory)
    t0 = int(lines[0]["clock_ns"])
    res = RecordingMatch()
    for address, events in heard.items():
        voice = voice_of[address]
        rec = [
            (t0 + round(float(ln["t"]) * 1e9), int(ln["pitch"]), int(ln["velocity"]))
            for ln in lines
            if ln.get("kind") == "note" and ln.get("track") == "agent" and ln.get("voice") == voice
        ]
        got = collapse(events)
        a = [(p, v) for _, p, v in got]
        b = [(p, v) for _, p, v in rec]
        if a != b:
            i = next((j for j, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
            res.problems.append(
                f"{address}: heard {len(a)} notes, recorded {len(b)}; first difference at {i}: "
                f"heard {a[max(0, i - 2) : i + 3]} recorded {b[max(0, i - 2) : i + 3]}"
            )
        for (ta, _, va), (tb, _, _) in zip(got, rec, strict=False):
            res.delay_ms.append((ta - tb) / MS)
            if va > 0:
                res.on_delay_ms.append((ta - tb) / MS)
        res.matched += min(len(a), len(b))
    early = [d for d in res.on_delay_ms if d < -0.01]
    if early:
        res.problems.append(f"{len(early)} note-ons heard before their recorded time: {sorted(early)[:5]} ms")
    return res


def summary(values: Sequence[float]) -> str:
    if not values:
        return "n=0"
    s = sorted(values)
    return f"n={len(s)} p50={statistics.median(s):.3f} p95={s[int(0.95 * (len(s) - 1))]:.3f} max={s[-1]:.3f}"


def serve_args(*extra: str, record: Path) -> tuple[str, ...]:
    return ("--clock", "internal", "--bpm", "240", "--autostart", "--record", str(record), *extra)
