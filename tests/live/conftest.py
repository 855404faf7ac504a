"""A real JACK server for the MIDI tests (``jackd -d dummy``: no sound card needed).

Session-scoped: one server per test session under a unique name, exported through ``JACK_DEFAULT_SERVER``
(so in-process rtmidi clients, ``jack_*`` tools and ``liveagent serve`` subprocesses all find it) together
with ``MIDO_BACKEND=mido.backends.rtmidi/UNIX_JACK``. Skips locally without jackd, fails under CI=true.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.support import require, require_tool


@dataclass
class JackServer:
    name: str
    period: int
    rate: int

    @property
    def period_ms(self) -> float:
        return 1000.0 * self.period / self.rate

    def env(self) -> dict[str, str]:
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


@pytest.fixture(scope="session")
def jack_server() -> Iterator[JackServer]:
    require_tool("jackd", "jack_lsp", "jack_connect")
    name = f"liveagent-test-{os.getpid()}"
    server = JackServer(name=name, period=64, rate=48000)
    env = server.env()
    proc = subprocess.Popen(
        ["jackd", "-n", name, "-d", "dummy", "-r", str(server.rate), "-p", str(server.period)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 10
    up = False
    while time.monotonic() < deadline and proc.poll() is None:
        r = subprocess.run(["jack_lsp"], env=env, capture_output=True, text=True, timeout=10)
        if r.returncode == 0 and "system:" in r.stdout:
            up = True
            break
        time.sleep(0.1)
    if not up:
        proc.kill()
        err = proc.stderr.read() if proc.stderr else ""
        require(False, f"jackd did not start: {err[-500:]}")
    saved = {k: os.environ.get(k) for k in ("JACK_DEFAULT_SERVER", "MIDO_BACKEND")}
    os.environ["JACK_DEFAULT_SERVER"] = name
    os.environ["MIDO_BACKEND"] = "mido.backends.rtmidi/UNIX_JACK"
    try:
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
