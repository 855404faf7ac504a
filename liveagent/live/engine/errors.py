"""Rate-limited error reporting: every error is counted, at most one report per interval reaches the sink.

Floods of bad input (a misconfigured patch sending garbage at 1 kHz) must not turn into a flood of
replies or log lines; the engine keeps time and the next report says how many were folded into it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from liveagent.live.events import OutputSink

log = logging.getLogger(__name__)


class ErrorReporter:
    """Reports through ``sink.error`` at most once per ``interval_s``; summarizes the rest."""

    def __init__(self, sink: OutputSink, interval_s: float, now: Callable[[], int]) -> None:
        self.sink = sink
        self.interval_ns = int(interval_s * 1e9)
        self.now = now
        self.unreported = 0
        self._last_report = -(10**18)
        self._last: tuple[str, tuple[str, int] | None] = ("", None)

    def error(self, message: str, reply_to: tuple[str, int] | None) -> None:
        self.unreported += 1
        self._last = (message, reply_to)
        self.flush(self.now())

    def flush(self, now: int, *, force: bool = False) -> None:
        """Send the pending report if the interval has passed (or ``force``)."""
        if not self.unreported:
            return
        if not force and now - self._last_report < self.interval_ns:
            return
        message, reply_to = self._last
        n = self.unreported
        text = message if n == 1 else f"{message} (and {n - 1} more since the last report)"
        self.unreported = 0
        self._last_report = now
        log.warning("%s", text)
        try:
            self.sink.error(text, reply_to)
        except Exception:
            log.exception("sink.error failed")
