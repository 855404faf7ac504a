"""A private JACK server (``jackd -d dummy``: no sound card) for the MIDI tests and `liveagent bench`.

Both need real JACK MIDI ports on machines without audio hardware (CI, containers). The server runs under
a unique name, exported through ``JACK_DEFAULT_SERVER`` together with
``MIDO_BACKEND=mido.backends.rtmidi/UNIX_JACK`` while the context is open, so in-process rtmidi clients,
``jack_*`` tools and ``liveagent serve`` subprocesses all find it; the variables are restored on exit.

:func:`close_in_turn` closes our JACK clients one at a time, far enough apart for libjack (see there).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

ENV_KEYS = ("JACK_DEFAULT_SERVER", "MIDO_BACKEND")
JACK_SETTLE_S = 0.1
"""Time for a JACK graph change's latency notifications to reach our other clients (:func:`close_in_turn`)."""


class JackError(RuntimeError):
    """jackd is missing or did not come up (the message carries the end of its stderr)."""


@dataclass
class JackServer:
    """A running JACK server: its name and period, and the few ``jack_*`` operations tests need."""

    name: str
    """The server name (``jackd -n``), also ``JACK_DEFAULT_SERVER`` for its clients."""
    period: int
    """Frames per JACK period."""
    rate: int
    """Sample rate (Hz)."""

    @property
    def period_ms(self) -> float:
        return 1000.0 * self.period / self.rate

    def env(self) -> dict[str, str]:
        """``os.environ`` plus what a subprocess needs to use this server through rtmidi/mido."""
        return {
            **os.environ,
            "JACK_DEFAULT_SERVER": self.name,
            "MIDO_BACKEND": "mido.backends.rtmidi/UNIX_JACK",
            "JACK_NO_AUDIO_RESERVATION": "1",
        }

    def ports(self) -> list[str]:
        out = subprocess.run(["jack_lsp"], env=self.env(), capture_output=True, text=True, timeout=10)
        return [ln.strip() for ln in out.stdout.splitlines() if ln.strip()]

    def connect(self, src: str, dst: str) -> None:
        subprocess.run(
            ["jack_connect", src, dst], env=self.env(), check=True, timeout=10, capture_output=True
        )

    def wait_port(self, name: str, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if name in self.ports():
                return
            time.sleep(0.05)
        raise AssertionError(f"JACK port {name!r} did not appear; ports: {self.ports()}")


@contextmanager
def dummy_jack_server(
    name: str | None = None, *, period: int = 64, rate: int = 48000, timeout_s: float = 10.0
) -> Iterator[JackServer]:
    """Start ``jackd -n NAME -d dummy``, wait until it serves, export its environment; stop it on exit.

    Raises :class:`JackError` when jackd is not installed or does not answer ``jack_lsp`` in ``timeout_s``.
    """
    server = JackServer(name=name or f"liveagent-{os.getpid()}", period=period, rate=rate)
    env = server.env()
    cmd = ["jackd", "-n", server.name, "-d", "dummy", "-r", str(rate), "-p", str(period)]
    with tempfile.TemporaryFile("w+") as err:  # a file, not a pipe: nobody reads jackd's stderr while it runs
        try:
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err, text=True)
        except OSError as e:
            raise JackError(f"cannot run jackd: {e}") from e
        saved = {k: os.environ.get(k) for k in ENV_KEYS}
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                if proc.poll() is not None or time.monotonic() > deadline:
                    err.seek(0)
                    raise JackError(f"jackd did not start: {err.read()[-500:]}")
                r = subprocess.run(["jack_lsp"], env=env, capture_output=True, text=True, timeout=10)
                if r.returncode == 0 and "system:" in r.stdout:
                    break
                time.sleep(0.1)
            os.environ.update({k: env[k] for k in ENV_KEYS})
            yield server
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def close_in_turn(closers: Sequence[Callable[[], None]], settle_s: float = JACK_SETTLE_S) -> None:
    """Run ``closers`` (each closes one JACK client's ports and the client) in order, ``settle_s`` apart.

    Why: libjack (JACK2's, the copy python-rtmidi bundles too) erases a port from its client's port list in
    ``jack_port_unregister`` without a lock, while the client's notification thread may be walking that list
    to answer a latency notification (jackaudio/jack2#216; RtMidi unregisters its port while the client is
    still active). Each graph change (a port or a client closed) makes the server send every remaining
    client such a notification about a period later, and closing our next port at once raced it: `serve`
    died of SIGSEGV at exit in 1 of 143 stops on a loaded two-core machine, its core dump showing
    ``JackClient::HandleLatencyCallback`` on a freed list node while the main thread was in
    ``MidiInJack::closePort``. The wait lets the notification be handled before the next port goes. It
    narrows the race, it cannot close it (another program's graph change at that moment, a notification
    thread held off for longer): the cure, deactivating the client first, is out of RtMidi's reach.
    """
    for i, close in enumerate(closers):
        if i:
            time.sleep(settle_s)
        close()
