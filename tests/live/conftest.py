"""A real JACK server for the MIDI tests (``jackd -d dummy``: no sound card needed).

Session-scoped: one server per test session under a unique name, started by
:func:`liveagent.live.io.jack.dummy_jack_server` (which `liveagent bench` uses too).
Skips locally without jackd, fails under CI=true.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import pytest

from liveagent.live.io.jack import JackError, JackServer, dummy_jack_server
from tests.support import require, require_tool

__all__ = ["JackServer", "jack_server"]


@pytest.fixture(scope="session")
def jack_server() -> Iterator[JackServer]:
    require_tool("jackd", "jack_lsp", "jack_connect")
    stack = contextlib.ExitStack()
    try:
        # 512 frames (10.7 ms), not 64: the dummy driver drops the time of every late cycle (an xrun resets
        # its schedule), so on a loaded machine JACK time - and jack_midi_clock's 150 BPM, counted in
        # frames - runs slow in wall time (measured under load: 56 xruns in 8 s and two-beat tempos of
        # 144 BPM at 64 frames; 0-4 xruns and 149.4-150.3 BPM at 512).
        server = stack.enter_context(dummy_jack_server(f"liveagent-test-{os.getpid()}", period=512))
    except JackError as e:
        require(False, str(e))
    with stack:
        yield server
