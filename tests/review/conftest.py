"""The real dummy JACK server of tests/live (session-scoped) for the review's MIDI reproductions."""

from tests.live.conftest import jack_server

__all__ = ["jack_server"]
