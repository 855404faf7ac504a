"""Test helpers for OSC over real UDP: a receiver that collects parsed messages on a free port."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

from pythonosc.osc_message import OscMessage


def free_udp_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


class OscCollector:
    """Binds 127.0.0.1:0 and records (arrival perf_counter_ns, address, params) of every message."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port: int = self.sock.getsockname()[1]
        self.messages: list[tuple[int, str, list[Any]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                data, _ = self.sock.recvfrom(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            t = time.perf_counter_ns()
            try:
                m = OscMessage(data)
            except Exception:
                continue
            self.messages.append((t, m.address, list(m.params)))

    def of(self, address: str) -> list[list[Any]]:
        return [p for _, a, p in list(self.messages) if a == address]

    def wait_for(self, address: str, n: int = 1, timeout: float = 5.0) -> list[list[Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.of(address)
            if len(got) >= n:
                return got
            time.sleep(0.01)
        return self.of(address)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1)
        self.sock.close()
