"""Engine statistics: latency and lateness rings, counters, and a snapshot for the monitor and /status.

The engine thread is the only writer and the only caller of :meth:`Stats.snapshot`: it publishes the
result (inside :meth:`Engine.status <liveagent.live.engine.loop.Engine.status>`) in its slack time, and other
threads (OSC ``/status``, the monitor) read that published copy. Samples go into preallocated int64 rings
(no allocation per step); percentiles are taken with ``ndarray.partition`` on a preallocated scratch copy
(a few tens of microseconds for 4096 samples), not ``np.percentile``, which sorts and allocates.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import numpy.typing as npt


class Ring:
    """A fixed-size ring of int64 samples (nanoseconds)."""

    def __init__(self, size: int = 4096) -> None:
        if size < 1:
            raise ValueError("ring size must be positive")
        self._buf: npt.NDArray[np.int64] = np.zeros(size, dtype=np.int64)
        self._scratch: npt.NDArray[np.int64] = np.zeros(size, dtype=np.int64)
        """Percentiles partition a copy here (the ring keeps being written meanwhile)."""
        self.count = 0
        """Samples ever added (the ring holds the last ``min(count, size)``)."""

    def add(self, value: int) -> None:
        self._buf[self.count % self._buf.size] = value
        self.count += 1

    def values(self) -> npt.NDArray[np.int64]:
        """A copy of the samples held (oldest order is not preserved)."""
        n = min(self.count, self._buf.size)
        return self._buf[:n].copy()

    def clear(self) -> None:
        self.count = 0

    def percentiles_us(self, qs: tuple[float, ...] = (50.0, 99.0, 99.9)) -> dict[str, float]:
        """Percentiles in microseconds, keyed ``p50``, ``p99``, ``p99.9``, plus ``max`` (empty -> 0).

        Same values as ``np.percentile`` (linear interpolation), but computed by partitioning a copy in
        the preallocated scratch around the few ranks needed: no sort, no array allocated. Not
        thread-safe (one scratch): the engine thread calls it.
        """
        n = min(self.count, self._buf.size)
        out: dict[str, float] = {}
        if n == 0:
            for q in qs:
                out[f"p{q:g}"] = 0.0
            out["max"] = 0.0
            return out
        v = self._scratch[:n]
        np.copyto(v, self._buf[:n])
        ranks: list[tuple[int, int, float]] = []
        for q in qs:
            pos = (n - 1) * q / 100.0
            lo = int(pos)
            ranks.append((lo, min(lo + 1, n - 1), pos - lo))
        kth = sorted({r for lo, hi, _ in ranks for r in (lo, hi)} | {n - 1})
        v.partition(kth)
        for q, (lo, hi, frac) in zip(qs, ranks, strict=True):
            a, b = float(v[lo]), float(v[hi])
            out[f"p{q:g}"] = (a + (b - a) * frac) / 1e3
        out["max"] = float(v[n - 1]) / 1e3
        return out


@dataclass
class Counters:
    """Plain counters the engine bumps."""

    steps: int = 0
    """Steps emitted (decided or fallback)."""
    decisions: int = 0
    """Policy calls that produced the played token in time."""
    misses: int = 0
    """Steps where no decision was ready at T_k (fallback played, or skipped after a stall)."""
    skipped: int = 0
    """Steps skipped because the engine woke up more than a step late (a subset of misses)."""
    policy_errors: int = 0
    """Policy calls that raised (the fallback token was played)."""
    notes_in: int = 0
    """Performer note-ons received."""
    notes_out: int = 0
    """Agent note-ons sent."""
    input_errors: int = 0
    """Bad input events (InputError) received."""
    late_inputs: int = 0
    """Performer events whose nearest step was already finalized (moved to the next open step)."""
    late_amended: int = 0
    """Follow timing: performer onsets that arrived after their step was closed by the follow window,
    folded into that step's token in the history (the next step shows a HOLD, never a phantom onset)."""
    answered: int = 0
    """Follow timing: steps decided on the performer's onset (the rest waited for the window to close)."""
    swaps: int = 0
    """Policy swaps done."""
    swaps_refused: int = 0
    """Policy loads that failed or were refused (wrong grid, range, band shape): the old policy plays on."""
    gc_collections: int = 0
    """Young-generation collections run in slack time."""


def answered_pct(answered: int, late_amended: int) -> float:
    """Follow timing: the share of the performer's onsets that were answered (heard before their step was
    decided), in %: answered / (answered + late_amended); 0.0 before any onset. ``late_amended`` counts
    note-ons, so a chord note that missed its step's decision counts against it too."""
    n = answered + late_amended
    return round(100.0 * answered / n, 1) if n > 0 else 0.0


class Stats:
    """Everything the engine measures; ``snapshot()`` is the monitor's and ``/status``'s view."""

    def __init__(self, ring_size: int = 4096) -> None:
        self.decision_ns = Ring(ring_size)
        """Decision latency: snapshot + policy + sampling, per decided step."""
        self.lateness_ns = Ring(ring_size)
        """Emission time minus T_k (the due time, or the arrival of the MIDI tick that opens the step)."""
        self.answer_ns = Ring(ring_size)
        """Follow timing, steps decided on a performer onset: emission time minus the onset's arrival."""
        self.counters = Counters()
        self.input_errors_by_kind: Counter[str] = Counter()

    def reset_timing(self) -> None:
        """Forget the latency samples (e.g. after warm-up)."""
        self.decision_ns.clear()
        self.lateness_ns.clear()
        self.answer_ns.clear()

    def snapshot(self) -> dict[str, object]:
        """A flat, JSON-friendly dict: counters, decision latency and lateness percentiles (p50, p99,
        p99.9, max) and answer latency percentiles (p50, p95, p99, max) in us."""
        c = self.counters
        out: dict[str, object] = {
            "steps": c.steps,
            "decisions": c.decisions,
            "misses": c.misses,
            "skipped": c.skipped,
            "policy_errors": c.policy_errors,
            "notes_in": c.notes_in,
            "notes_out": c.notes_out,
            "input_errors": c.input_errors,
            "late_inputs": c.late_inputs,
            "late_amended": c.late_amended,
            "answered": c.answered,
            "answered_pct": answered_pct(c.answered, c.late_amended),
            "swaps": c.swaps,
            "swaps_refused": c.swaps_refused,
            "gc_collections": c.gc_collections,
            "input_errors_by_kind": dict(self.input_errors_by_kind),
        }
        for name, ring in (("decision", self.decision_ns), ("lateness", self.lateness_ns)):
            for key, value in ring.percentiles_us().items():
                out[f"{name}_{key}_us"] = round(value, 2)
        for key, value in self.answer_ns.percentiles_us((50.0, 95.0, 99.0)).items():
            out[f"answer_{key}_us"] = round(value, 2)
        return out


class StatusBoard:
    """The engine's published status: built on the engine thread in slack time, read from any thread.

    "One thread owns the state": other threads never compute a status (that walked the note tracker's
    dict while the engine changed it, and cost the engine thread ~0.75 ms per request when it did it
    itself at any moment). The engine builds a fresh dict in its slack time at most every ``interval_ns``
    (sooner, but at most every ``min_gap_ns``, after a control event or a STATUS request) and publishes
    it by one reference assignment, atomic in CPython; a published mapping is never mutated again.
    """

    def __init__(self, interval_ns: int, min_gap_ns: int = 20_000_000, max_replies: int = 32) -> None:
        self.interval_ns = interval_ns
        self.min_gap_ns = min(min_gap_ns, interval_ns)
        self.max_replies = max_replies
        self.latest: Mapping[str, object] = MappingProxyType({})
        """The last published status (read-only; replaced, never changed)."""
        self.published_ns: int | None = None
        self.publications = 0
        self.dirty = True
        """Something a reader would notice changed (a control event): publish at the next slack."""
        self._replies: list[tuple[str, int] | None] = []

    def due(self, now: int) -> bool:
        """Whether the engine should build and publish a status now (it has slack)."""
        if self.published_ns is None:
            return True
        age = now - self.published_ns
        if age >= self.interval_ns:
            return True
        return (self.dirty or bool(self._replies)) and age >= self.min_gap_ns

    def publish(self, fields: dict[str, object], now: int) -> None:
        self.latest = MappingProxyType(fields)
        self.published_ns = now
        self.publications += 1
        self.dirty = False

    def request_reply(self, reply_to: tuple[str, int] | None) -> None:
        """A STATUS request: answered from the next publication (duplicates and overflow are dropped)."""
        if reply_to not in self._replies and len(self._replies) < self.max_replies:
            self._replies.append(reply_to)

    def take_replies(self) -> list[tuple[str, int] | None]:
        out, self._replies = self._replies, []
        return out
