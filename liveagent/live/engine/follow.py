"""Follow timing's window: how long after T_k the engine waits for the performer's onset of step k.

A policy that hears the performer's step k (``mode`` react or follow) is decided as soon as a note-on
whose nearest step is k arrives (after a short chord grace, ``follow_chord_ms`` in the engine), or when
this window after T_k closes without one (the performer holds or rests). The window adapts to the
performer: it is a high percentile (``percentile``, p95) of the onset offsets it could catch among the
last ``size`` onsets (arrival time minus T of the step the onset is quantized to, positive and at most
``max_ms``), plus ``margin_ms``, clamped to ``[min_ms, max_ms]``. An onset later than ``max_ms`` does not
stretch the window: no window would catch it (it is amended into its step all the same), and counting it
only made every held step wait the maximum for nothing.

The default maximum is 50 ms. Ensemble onset asynchronies up to 30-50 ms are not heard as uneven (Rasch
1979), and a human player is often systematically 30-40 ms behind a machine's grid. With the former 30 ms
cap a performer 40 ms late (jitter sd 5 ms) was never heard in time: every onset was amended after its
step had been decided without it (answered_pct 0.2-1.5 %, 0.9 % on average over 8 x 400 onsets; the
review measured consonance at the melody's onsets falling from 98 % to 53 %). With 50 ms the same
performer's window converges to 46-49 ms (p95 of the catchable offsets, truncated at the maximum, + 2 ms)
and 95.4 % of the onsets are answered (93.8-96.2 % a run; at most 97.7 % of such onsets are 50 ms late or
less), the chord grace after each; an on-grid performer still gets the minimum (measured in
``tests/live/test_engine_follow_window.py``). The window follows the performer: p95 of the catchable
offsets is where a late player's onsets are. The cost is on held steps of a late player, which wait the
window (the player's own lateness) before being decided; live electronics aim at about 10 ms of response
(Wessel & Wright 2002), which is what an on-grid or slightly late performer gets. Never more than half a
step is used.

Until ``warmup`` onsets have been measured the window is ``max_ms``: a performer not yet heard gets the
benefit of the doubt (a hold waits up to 50 ms, rather than a late onset being decided without); once
measured, only late onsets count, and a performer who is never late (or always later than the maximum)
gets ``min_ms``. p95 rather than p90: under a jitter of sd 15 ms the p90 window answered 94.3 % of the
onsets, p95 96.2 %, for 3.7 ms more on held steps (on average 24.4 -> 28.1 ms; measured in
``tests/live/test_engine_follow_window.py``).
A fixed window (``--follow-window-ms``, OSC ``/liveagent/follow``, at least
:data:`FOLLOW_WINDOW_MIN_FIXED_MS`, kept to 10 us) replaces the adaptive one; 0 frees it again.

Offsets go into a preallocated int64 ring; :meth:`FollowWindow.update` sorts a preallocated scratch copy
in place (a few microseconds for 32 samples), so neither allocates an array. The engine thread owns the
object: it observes an offset when a step's first note-on arrives, and updates the window right after the
answer to it was sent (or at once for an onset that came too late to be answered), and in slack time.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from liveagent.live.events import FOLLOW_WINDOW_LIMIT_MS, FOLLOW_WINDOW_MIN_FIXED_MS

FIXED_RESOLUTION_NS = 10_000
"""A fixed window is kept to 10 us (0.01 ms): what it was asked for, without float32 noise (OSC floats
are 32-bit: 4.12 arrives as 4.119999885559082)."""

MS = 1_000_000
_EMPTY = np.iinfo(np.int64).max


def check_window_ms(value: float, what: str = "follow window") -> float:
    """``value`` if it is a valid fixed window (0 = adaptive, else :data:`FOLLOW_WINDOW_MIN_FIXED_MS` up
    to :data:`FOLLOW_WINDOW_LIMIT_MS`), else ``ValueError`` saying why (NaN, negative, tiny, absurd)."""
    v = float(value)
    if not (math.isfinite(v) and 0.0 <= v <= FOLLOW_WINDOW_LIMIT_MS):
        raise ValueError(f"{what} must be 0 (adaptive) .. {FOLLOW_WINDOW_LIMIT_MS:g} ms, got {value}")
    if 0.0 < v < FOLLOW_WINDOW_MIN_FIXED_MS:
        raise ValueError(
            f"{what} must be 0 (adaptive) or at least {FOLLOW_WINDOW_MIN_FIXED_MS:g} ms, got {value}"
        )
    return v


class FollowWindow:
    """The follow window (fixed, or adapted to the performer's measured onset offsets)."""

    def __init__(
        self,
        *,
        fixed_ms: float = 0.0,
        min_ms: float = 3.0,
        max_ms: float = 50.0,
        margin_ms: float = 2.0,
        percentile: float = 95.0,
        size: int = 32,
        warmup: int = 8,
    ) -> None:
        if not (math.isfinite(min_ms) and math.isfinite(max_ms) and 0.0 <= min_ms <= max_ms):
            raise ValueError(f"need 0 <= follow window min <= max, got {min_ms} and {max_ms}")
        if max_ms > FOLLOW_WINDOW_LIMIT_MS:
            raise ValueError(f"follow window max must be at most {FOLLOW_WINDOW_LIMIT_MS:g} ms, got {max_ms}")
        if not (math.isfinite(margin_ms) and 0.0 <= margin_ms <= FOLLOW_WINDOW_LIMIT_MS):
            raise ValueError(f"follow window margin must be 0..{FOLLOW_WINDOW_LIMIT_MS:g}, got {margin_ms}")
        if not (math.isfinite(percentile) and 0.0 < percentile <= 100.0):
            raise ValueError(f"follow window percentile must be in (0, 100], got {percentile}")
        if not 1 <= size <= 4096:
            raise ValueError(f"follow window ring size must be 1..4096, got {size}")
        if not 0 <= warmup <= size:
            raise ValueError(f"follow window warm-up must be 0..{size} onsets (the ring size), got {warmup}")
        self.min_ns = round(min_ms * MS)
        self.max_ns = round(max_ms * MS)
        self.margin_ns = round(margin_ms * MS)
        self.percentile = float(percentile)
        self.warmup = warmup
        self._ring: npt.NDArray[np.int64] = np.full(size, _EMPTY, dtype=np.int64)
        """Offsets; unused slots hold ``_EMPTY``, which sorts last (so no slice is ever taken)."""
        self._scratch: npt.NDArray[np.int64] = np.zeros(size, dtype=np.int64)
        self.count = 0
        """Onset offsets observed so far (the ring holds the last ``size``)."""
        self._dirty = False
        self.fixed_ns: int | None = None
        """The fixed window, or None when adaptive."""
        self.adaptive_ns = self.max_ns if warmup > 0 else self.min_ns
        """What the adaptive rule gives for the offsets held (kept up to date even while fixed)."""
        self.offset_p50_ns = 0
        """Median onset offset (all signs) of the offsets held: how late (+) or early (-) the performer
        plays against the grid."""
        self.fix(fixed_ms)

    @property
    def adaptive(self) -> bool:
        return self.fixed_ns is None

    @property
    def window_ns(self) -> int:
        """The current window (fixed, or adaptive as of the last :meth:`update`)."""
        return self.adaptive_ns if self.fixed_ns is None else self.fixed_ns

    def fix(self, ms: float) -> None:
        """Fix the window to ``ms`` milliseconds, or free it (0 = adaptive); ``ValueError`` when invalid."""
        v = check_window_ms(ms)
        res = FIXED_RESOLUTION_NS
        self.fixed_ns = None if v == 0.0 else max(res, round(v * MS / res) * res)

    def observe(self, offset_ns: int) -> None:
        """One onset's arrival time minus T of the step it is quantized to (engine thread; no allocation)."""
        self._ring[self.count % self._ring.size] = offset_ns
        self.count += 1
        self._dirty = True

    def clear(self) -> None:
        self._ring.fill(_EMPTY)
        self.count = 0
        self.adaptive_ns = self.max_ns if self.warmup > 0 else self.min_ns
        self.offset_p50_ns = 0
        self._dirty = False

    def update(self) -> int:
        """Recompute the adaptive window from the offsets held (slack time); returns the current window."""
        if not self._dirty or self.count == 0:
            return self.window_ns
        self._dirty = False
        n = min(self.count, self._ring.size)
        v = self._scratch
        np.copyto(v, self._ring)
        v.sort()  # in place, on the preallocated scratch: the n offsets first, then the empty slots
        self.offset_p50_ns = (int(v[(n - 1) // 2]) + int(v[n // 2])) // 2
        # The offsets the window could catch: positive, and at most the maximum (v[first:last]). A later
        # onset is amended whatever the window; counting it would only make every hold wait the maximum.
        first = int(np.searchsorted(v, 0, side="right"))
        last = int(np.searchsorted(v, self.max_ns, side="right"))  # empties sort after
        m = last - first
        if n < self.warmup:
            w = self.max_ns
        elif m == 0:
            w = self.min_ns
        else:
            pos = (m - 1) * self.percentile / 100.0
            lo = int(pos)
            hi = min(lo + 1, m - 1)
            a, b = int(v[first + lo]), int(v[first + hi])
            w = round(a + (b - a) * (pos - lo)) + self.margin_ns
        self.adaptive_ns = min(self.max_ns, max(self.min_ns, w))
        return self.window_ns

    def snapshot(self) -> dict[str, object]:
        return {
            "follow_window_ms": round(self.window_ns / MS, 2),
            "follow_window_us": round(self.window_ns / 1000),
            "follow_adaptive": self.adaptive,
            "follow_offset_p50_ms": round(self.offset_p50_ns / MS, 2),
            "follow_onsets": self.count,
        }
