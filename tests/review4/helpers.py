"""Shared pieces of the review-4 attacks: a real ``serve --start-on-note`` and what a listener hears of its
beat (``/liveagent/out/beat`` arrival times at the independent receiver)."""

from __future__ import annotations

import time

import numpy as np

from liveagent.live.io.osc_wire import OUT_BEAT
from tests.live.serve_helpers import ServeProcess

BPM = 100.0
"""``--bpm`` of every attack: a beat is 600 ms, a sixteenth (one step) 150 ms."""
BEAT_MS = 60e3 / BPM
FASTEST_BEAT_MS = BEAT_MS / 1.25
"""The shortest beat ``--follow-tempo`` promises (+25 % of ``--bpm``): 480 ms."""
SLOWEST_BEAT_MS = BEAT_MS / 0.8
"""The longest beat ``--follow-tempo`` allows (the period at most 1.25 x): 750 ms."""


def beat_times(sp: ServeProcess, after_ns: int = 0) -> list[int]:
    """Arrival times (ns) of the beats the listener received after ``after_ns``."""
    return [t for t, a, _ in list(sp.rx.messages) if a == OUT_BEAT and t >= after_ns]


def intervals_ms(ts: list[int]) -> np.ndarray:
    return np.diff(np.asarray(ts, dtype=np.float64)) / 1e6


def wait_ns(t_ns: float) -> None:
    """Sleep until ``t_ns`` (perf_counter_ns), finishing with a short spin for a few-ms precision."""
    while (w := t_ns - time.perf_counter_ns()) > 0:
        time.sleep(min(w / 1e9, 0.005) if w > 2e6 else 0)
