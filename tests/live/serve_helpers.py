"""Run the real `liveagent serve` as a subprocess and talk to it over real UDP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

from pythonosc.udp_client import SimpleUDPClient

from liveagent.live.commands.bench import maps_torch as proc_has_torch
from liveagent.live.commands.bench import rss_mb
from tests.live.osc_helpers import OscCollector

__all__ = ["ServeProcess", "env_with", "proc_has_torch", "rss_mb", "unmatched_notes"]


class ServeProcess:
    """``liveagent serve --osc-port 0 --osc-out <collector>`` plus a collector of what it sends."""

    def __init__(self, *args: str, env: Mapping[str, str] | None = None, ready_timeout: float = 30.0) -> None:
        self.rx = OscCollector()
        cmd = [
            sys.executable,
            "-m",
            "liveagent",
            "serve",
            "--osc-port",
            "0",
            "--osc-out",
            f"127.0.0.1:{self.rx.port}",
            *args,
        ]
        self.t_launch = time.perf_counter()
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # faulthandler: a crash (a segfault at exit) leaves every Python thread's stack in stderr
            env={**(env if env is not None else os.environ), "PYTHONFAULTHANDLER": "1"},
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._ready = threading.Event()
        self.t_ready = 0.0
        threading.Thread(target=self._read_out, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()
        if not self._ready.wait(ready_timeout):
            self.kill()
            raise AssertionError(
                f"serve not ready: stdout={self.stdout} stderr={''.join(self.stderr)[-2000:]}"
            )
        ready = next(ln for ln in self.stdout if ln.startswith("ready"))
        self.fields = dict(p.split("=", 1) for p in ready.split()[1:] if "=" in p)
        host, port = self.fields["osc"].rsplit(":", 1)
        self.osc_port = int(port)
        self.client = SimpleUDPClient(host, self.osc_port)

    def _read_out(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.stdout.append(line.rstrip("\n"))
            if line.startswith("ready") and not self._ready.is_set():
                self.t_ready = time.perf_counter()
                self._ready.set()
        self._ready.set()

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)

    def send(self, address: str, *args: Any) -> None:
        self.client.send_message(address, list(args))

    def status(self, timeout: float = 5.0) -> dict[str, Any]:
        n = len(self.rx.of("/liveagent/status"))
        self.send("/liveagent/status")
        got = self.rx.wait_for("/liveagent/status", n + 1, timeout)
        assert len(got) > n, "no /liveagent/status reply"
        st = got[-1]
        return dict(zip(st[::2], st[1::2], strict=False))

    def terminate(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait(timeout=5)
        time.sleep(0.1)
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def close(self) -> None:
        self.kill()
        self.rx.close()

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def unmatched_notes(messages: list[list[Any]]) -> dict[int, int]:
    """Pitches whose note-ons outnumber their note-offs in a list of /out/note argument lists.

    It counts the all-notes-off burst of exit and /panic as releases, so after one it cannot fail: to check
    the engine's own releases use :mod:`tests.live.receiver_notes` (``sounding_at``, ``before_first_burst``).
    """
    balance: dict[int, int] = {}
    for pitch, vel in messages:
        balance[pitch] = balance.get(pitch, 0) + (1 if vel > 0 else -1)
        balance[pitch] = max(balance[pitch], 0)  # extra offs (all notes off) are harmless
    return {p: n for p, n in balance.items() if n > 0}


def env_with(**kw: str) -> dict[str, str]:
    return {**os.environ, **kw}


def wait_until(pred: Any, timeout: float = 5.0) -> bool:
    """Poll ``pred()`` every 50 ms until it is true (True) or ``timeout`` seconds pass (False); 50 ms keeps
    a status poll under the server's reply limit (50/s per sender)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False
