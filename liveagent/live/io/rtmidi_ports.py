"""Opening, finding and closing rtmidi ports (ALSA or JACK), and the guard that ends a SysEx that never
ended.

Why the guard: RtMidi's input keeps appending every message after a SysEx start (0xF0) to that SysEx until
a message ends with 0xF7, and delivers nothing meanwhile. One truncated SysEx from any device (a cable
pulled mid-dump, a garbage byte stream) silenced all MIDI input, notes and clock alike, until the next
0xF7, that is for good (found by the fuzz test, ``tests/live/test_fuzz_serve.py``: the first unterminated
SysEx of 10,000 random messages stopped the input at message 2). :class:`SysexGuard` is a private output
port connected to our own input that sends a lone 0xF7 every ``interval_s``: a SysEx stuck open ends
there (delivered whole and ignored: we use no SysEx), else the lone byte arrives and is ignored. Input
is never deaf for longer than the interval.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

__all__ = [
    "MidiUnavailableError",
    "SysexGuard",
    "api_from_env",
    "close_rtmidi_port",
    "find_port",
    "list_ports",
    "open_rtmidi",
]

log = logging.getLogger(__name__)

_API_NAMES = {"jack": "UNIX_JACK", "alsa": "LINUX_ALSA", "coremidi": "MACOSX_CORE", "winmm": "WINDOWS_MM"}
SYSEX_END = 0xF7
IN_QUEUE_SIZE = 8192
"""RtMidi's input queue, in messages (python-rtmidi's default is 1024)."""


class MidiUnavailableError(RuntimeError):
    """No MIDI backend could be opened (no ALSA sequencer, no JACK server, or rtmidi missing)."""


def api_from_env(api: str = "auto") -> str:
    """The rtmidi API name: ``api`` ("jack", "alsa", "UNIX_JACK" ...), else ``MIDO_BACKEND``'s suffix."""
    if api and api != "auto":
        return _API_NAMES.get(api.lower(), api.upper())
    env = os.environ.get("MIDO_BACKEND", "")
    if "/" in env:
        return env.split("/", 1)[1].upper()
    return "auto"


def _rtmidi_api_ids(api: str) -> list[int]:
    import rtmidi

    compiled = rtmidi.get_compiled_api()
    if api == "auto":
        order = [rtmidi.API_LINUX_ALSA, rtmidi.API_UNIX_JACK, rtmidi.API_MACOSX_CORE, rtmidi.API_WINDOWS_MM]
        if not os.path.exists("/dev/snd/seq"):  # no ALSA sequencer: skip it (and libasound's stderr noise)
            order.remove(rtmidi.API_LINUX_ALSA)
        return [a for a in order if a in compiled]
    const = getattr(rtmidi, "API_" + api, None)
    if const is None or const not in compiled:
        names = [rtmidi.get_api_name(a) for a in compiled]
        raise MidiUnavailableError(f"MIDI API {api!r} not available in python-rtmidi (compiled: {names})")
    return [const]


def open_rtmidi(kind: str, api: str = "auto", client_name: str = "liveagent") -> Any:
    """An rtmidi ``MidiIn``/``MidiOut`` on the first API that works, else :class:`MidiUnavailableError`."""
    try:
        import rtmidi
    except ImportError as e:  # pragma: no cover - it is a dependency
        raise MidiUnavailableError(f"python-rtmidi is not installed: {e}") from e
    errors = []
    for api_id in _rtmidi_api_ids(api_from_env(api)):
        try:
            if kind == "in":  # polled (see liveagent.live.io.midi): room for a burst between two polls
                return rtmidi.MidiIn(rtapi=api_id, name=client_name, queue_size_limit=IN_QUEUE_SIZE)
            return rtmidi.MidiOut(rtapi=api_id, name=client_name)
        except (rtmidi.SystemError, RuntimeError) as e:
            errors.append(f"{rtmidi.get_api_name(api_id)}: {e}")
    raise MidiUnavailableError(
        "no MIDI backend available (" + "; ".join(errors or ["none compiled"]) + "). On Linux without "
        "/dev/snd start JACK (jackd -d dummy) and set MIDO_BACKEND=mido.backends.rtmidi/UNIX_JACK"
    )


def close_rtmidi_port(port: Any, *, settle_s: float = 0.05) -> None:
    """Close and free an rtmidi port without racing a message in flight; never raises.

    With JACK, RtMidi calls an input port's Python callback from JACK's process thread, which then waits for
    the GIL. Cancelling the callback frees what python-rtmidi handed to C, so a message already in flight at
    that moment calls freed memory: a segfault seen on CI when a peer closed its port just after our last
    note-off reached it. So: unregister the port first (no new messages), sleep (the GIL is released and a
    callback in flight finishes), and only then cancel the callback and free the port.
    """
    try:
        port.close_port()
        if hasattr(port, "cancel_callback"):
            time.sleep(settle_s)
            port.cancel_callback()
        port.delete()
    except Exception as e:  # closing must never raise on the way out
        log.debug("closing MIDI port: %s", e)


def find_port(ports: list[str], name: str) -> int:
    """Index of port ``name``: exact match first, then a unique case-insensitive substring."""
    if name in ports:
        return ports.index(name)
    hits = [i for i, p in enumerate(ports) if name.lower() in p.lower()]
    if len(hits) == 1:
        return hits[0]
    what = "matches several ports" if hits else "not found"
    raise ValueError(f"MIDI port {name!r} {what}; available: {ports}")


def list_ports(api: str = "auto") -> tuple[str, list[str], list[str]]:
    """(backend name, input port names, output port names); raises :class:`MidiUnavailableError`."""
    import rtmidi

    mi = open_rtmidi("in", api, "liveagent-ports")
    mo = open_rtmidi("out", api, "liveagent-ports")
    try:
        return rtmidi.get_api_name(mi.get_current_api()), mi.get_ports(), mo.get_ports()
    finally:
        mi.delete()
        mo.delete()


class SysexGuard:
    """A lone 0xF7 into our own input port every ``interval_s`` (see the module docstring), from a
    thread of its own; ``sent`` and ``errors`` count the sends."""

    def __init__(self, api: str, client_name: str, in_port: str, interval_s: float = 0.25) -> None:
        self.interval_s = interval_s
        self.sent = self.errors = 0
        self.port = open_rtmidi("out", api, client_name)
        try:
            self.port.open_port(find_port(self.port.get_ports(), in_port), "sysex-guard")
        except BaseException:
            close_rtmidi_port(self.port)
            raise
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="midi-sysex-guard", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.port.send_message([SYSEX_END])
                self.sent += 1
            except Exception as e:  # the port may be gone (JACK restarted): count, never raise
                self.errors += 1
                if self.errors == 1:
                    log.warning("MIDI SysEx guard cannot send: %r", e)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1.0)
        close_rtmidi_port(self.port)
