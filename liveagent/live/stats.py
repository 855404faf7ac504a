"""Engine statistics: latency and lateness rings, counters, and a snapshot for the monitor and /status.

The engine thread is the only writer. Samples go into preallocated int64 rings (no allocation per step);
:meth:`Stats.snapshot` may be called from another thread (the monitor): it copies the rings and computes
percentiles there, so a torn read costs at most one slightly stale sample.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


class Ring:
    """A fixed-size ring of int64 samples (nanoseconds)."""

    def __init__(self, size: int = 4096) -> None:
        if size < 1:
            raise ValueError("ring size must be positive")
        self._buf: npt.NDArray[np.int64] = np.zeros(size, dtype=np.int64)
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
        """Percentiles in microseconds, keyed ``p50``, ``p99``, ``p99.9`` (NaN-free: empty -> 0)."""
        v = self.values()
        out: dict[str, float] = {}
        for q in qs:
            key = f"p{q:g}"
            out[key] = float(np.percentile(v, q)) / 1e3 if v.size else 0.0
        out["max"] = float(v.max()) / 1e3 if v.size else 0.0
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
    swaps: int = 0
    """Policy swaps done."""
    gc_collections: int = 0
    """Young-generation collections run in slack time."""


class Stats:
    """Everything the engine measures; ``snapshot()`` is the monitor's and ``/status``'s view."""

    def __init__(self, ring_size: int = 4096) -> None:
        self.decision_ns = Ring(ring_size)
        """Decision latency: snapshot + policy + sampling, per decided step."""
        self.lateness_ns = Ring(ring_size)
        """Emission time minus T_k (the due time, or the arrival of the MIDI tick that opens the step)."""
        self.counters = Counters()
        self.input_errors_by_kind: Counter[str] = Counter()

    def reset_timing(self) -> None:
        """Forget the latency samples (e.g. after warm-up)."""
        self.decision_ns.clear()
        self.lateness_ns.clear()

    def snapshot(self) -> dict[str, object]:
        """A flat, JSON-friendly dict: counters, decision latency and lateness percentiles in us."""
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
            "swaps": c.swaps,
            "gc_collections": c.gc_collections,
            "input_errors_by_kind": dict(self.input_errors_by_kind),
        }
        for name, ring in (("decision", self.decision_ns), ("lateness", self.lateness_ns)):
            for key, value in ring.percentiles_us().items():
                out[f"{name}_{key}_us"] = round(value, 2)
        return out
