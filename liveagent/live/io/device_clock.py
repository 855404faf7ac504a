"""Event times from the MIDI backend's own timeline, mapped onto ``time.perf_counter_ns()``.

Why: the rtmidi input callback is Python, so it runs when its thread gets the CPU *and* the GIL; under
load that is milliseconds (and, in stalls, tens of milliseconds) after the event reached the backend.
Stamping with ``perf_counter_ns()`` in the callback puts that delay on every clock tick and performer
onset. RtMidi measures each message's ``delta_time`` in C before the callback takes the GIL (JACK:
``jack_get_time()`` in the client's process callback; ALSA: the sequencer's event time stamp), so the sum
of the deltas is a device clock free of the Python-side delay.

The two clocks share a rate (JACK and ALSA time is CLOCK_MONOTONIC, as is ``perf_counter_ns``) but not
an origin. Each message gives ``arrival - device = offset + python_delay`` with ``python_delay >= 0``,
so the offset is the *minimum* of that difference (the classic minimum-offset estimator, as NTP's clock
filter and PTP servos use): one undelayed message in the window pins it. The minimum is taken over a
sliding window of device time kept as two buckets (current and previous), so the estimate forgets old
samples after one to two buckets: slow drift (``r`` ppm) costs at most ``r * 2 * bucket`` and a lasting
jump in the offset (a lost interval) heals within two buckets. Mapped times never exceed the arrival
(the estimate is at most this message's difference) and never go backwards.
"""

from __future__ import annotations

import math

_NONE = 1 << 62  # an empty bucket's minimum


class DeviceClockMapper:
    """Accumulates rtmidi delta times into a device clock and maps it onto the ``perf_counter_ns`` timeline.

    Used by one thread (the rtmidi callback); :meth:`map` is O(1) and allocation-free.
    """

    def __init__(self, bucket_ns: int = 1_000_000_000, max_delay_ns: int = 500_000_000) -> None:
        if bucket_ns <= 0 or max_delay_ns <= 0:
            raise ValueError("bucket_ns and max_delay_ns must be positive")
        self.bucket_ns = int(bucket_ns)
        """Length of one of the two window buckets (device time): the window is one to two of these."""
        self.max_delay_ns = int(max_delay_ns)
        """A message this much later than the estimate says is not a delay but a jump of the device
        clock (deltas lost, backend restarted): the estimator restarts from it."""
        self.device_ns = 0
        """The device clock: the sum of the delta times so far (the first message is 0)."""
        self.messages = 0
        self.resets = 0
        self._cur = self._prev = _NONE
        self._bucket_end = 0
        self._last = -_NONE

    @property
    def offset_ns(self) -> int:
        """The current estimate of ``perf_counter_ns - device_ns`` (meaningful after one message)."""
        return min(self._cur, self._prev)

    def map(self, delta_s: float, arrival_ns: int) -> int:
        """The ``perf_counter_ns`` time of a message that arrived in Python at ``arrival_ns`` and whose
        backend delta time (seconds since the previous message) is ``delta_s``."""
        if self.messages and delta_s > 0.0 and math.isfinite(delta_s):
            self.device_ns += round(delta_s * 1e9)
        self.messages += 1
        d = self.device_ns
        diff = arrival_ns - d
        if d >= self._bucket_end:
            # rotate; when more than a bucket passed without messages the old minimum is stale too
            self._prev = self._cur if d < self._bucket_end + self.bucket_ns else _NONE
            self._cur = _NONE
            self._bucket_end = d + self.bucket_ns
        est = min(self._cur, self._prev)
        if est != _NONE and diff - est > self.max_delay_ns:
            self._prev = _NONE
            self._cur = _NONE
            self.resets += 1
        if diff < self._cur:
            self._cur = diff
        t = d + min(self._cur, self._prev)
        if t < self._last:
            t = self._last
        self._last = t
        return t
