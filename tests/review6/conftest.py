"""The real dummy JACK server of tests/live (session-scoped) for the review's pad CC probes."""

from tests.live.conftest import jack_server

__all__ = ["jack_server"]
