"""An OSC receiver that timestamps what the server sends: the demo's ear and the benchmark's judge.

It runs in a different process from the server, on its own thread, and records the arrival time of every
message on ``time.perf_counter_ns()`` (CLOCK_MONOTONIC, shared by all processes of the machine), so
emission lateness can be measured where it matters, at the receiver, against the grid the server
announces in ``/liveagent/status`` (``grid_t0_ns``, ``step_ns``).
"""

from __future__ import annotations

import os
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt
from pythonosc.osc_message import OscMessage

from liveagent.live.io.osc import OUT_BEAT, OUT_NOTE, OUT_STATUS

_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # 35 on Linux (SCM_TIMESTAMPNS)
_TIMESPEC = struct.Struct("qq")


def _realtime_offset_ns() -> int:
    """CLOCK_REALTIME - perf_counter_ns, the tightest of a few paired readings."""
    best = None
    for _ in range(9):
        a = time.perf_counter_ns()
        r = time.time_ns()
        b = time.perf_counter_ns()
        if best is None or b - a < best[0]:
            best = (b - a, r - (a + b) // 2)
    assert best is not None
    return best[1]


class OscReceiver:
    """Binds ``host:port`` (0 = a free port) and records ``(t_ns, address, params)`` of each message."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, rt_priority: int = 30) -> None:
        self.rt_priority = rt_priority
        self.realtime = False
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.bind((host, port))
        # Kernel receive timestamps (Linux SO_TIMESTAMPNS, on CLOCK_REALTIME): the arrival time does not
        # depend on when this process gets the CPU or the GIL. Mapped to perf_counter_ns by an offset.
        self.kernel_stamps = False
        if sys.platform.startswith("linux"):
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
                self.kernel_stamps = True
            except OSError:
                pass
        self._offset_ns = _realtime_offset_ns()
        self.sock.settimeout(0.2)
        self.host = host
        self.port: int = self.sock.getsockname()[1]
        self.messages: list[tuple[int, str, list[Any]]] = []
        self.status: dict[str, Any] = {}
        self.status_count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="osc-receiver", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        if self.rt_priority > 0 and hasattr(os, "sched_setscheduler"):
            # a real receiver (a synth) timestamps at interrupt-like priority; so does this judge, if allowed
            try:
                os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(self.rt_priority))
                self.realtime = True
            except OSError:
                pass
        while not self._stop.is_set():
            try:
                data, anc, _flags, _addr = self.sock.recvmsg(65536, 256)
            except TimeoutError:
                continue
            except OSError:
                return
            t = time.perf_counter_ns()
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(payload) >= 16:
                    sec, nsec = _TIMESPEC.unpack_from(payload)
                    t = sec * 1_000_000_000 + nsec - self._offset_ns
                    break
            try:
                msg = OscMessage(data)
            except Exception:  # not ours to judge: skip what does not parse
                continue
            params = list(msg.params)
            if msg.address == OUT_STATUS:
                self.status = dict(zip(params[::2], params[1::2], strict=False))
                self.status_count += 1
            else:
                self.messages.append((t, msg.address, params))

    def of(self, address: str) -> list[tuple[int, list[Any]]]:
        return [(t, p) for t, a, p in list(self.messages) if a == address]

    def wait_status(self, after: int, timeout: float = 2.0) -> dict[str, Any]:
        """Wait for the status reply number ``after + 1``; returns the latest status (maybe stale)."""
        deadline = time.monotonic() + timeout
        while self.status_count <= after and time.monotonic() < deadline:
            time.sleep(0.002)
        return self.status

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1.0)
        self.sock.close()


def grid_of(status: dict[str, Any]) -> tuple[int, float] | None:
    """``(T_0 ns, step ns)`` announced by a server status, or None (external clock, not running)."""
    try:
        return int(status["grid_t0_ns"]), float(status["step_ns"])
    except (KeyError, TypeError, ValueError):
        return None


def follow_window_ms(status: dict[str, Any]) -> float | None:
    """The follow window of a status received over OSC, in ms to 0.01 (None when absent): from the integer
    ``follow_window_us``, since OSC floats are 32-bit (``follow_window_ms`` 4.12 arrives as 4.1199998...)."""
    us = status.get("follow_window_us")
    if isinstance(us, int | float):
        return round(us / 1000.0, 2)
    ms = status.get("follow_window_ms")
    return round(float(ms), 2) if isinstance(ms, int | float) else None


def lateness_ns(times: Iterable[int], t0_ns: int, step_ns: float) -> npt.NDArray[np.float64]:
    """Arrival minus the nearest grid time for each arrival (emissions are always meant for a grid point)."""
    t = np.asarray(list(times), dtype=np.float64)
    if t.size == 0:
        return t
    k = np.round((t - t0_ns) / step_ns)
    return t - (t0_ns + k * step_ns)


def summarize_us(values_ns: npt.NDArray[np.float64]) -> dict[str, float]:
    """p50/p99/p99.9/max/min in microseconds (zeros when empty)."""
    if values_ns.size == 0:
        return {"n": 0, "p50": 0.0, "p99": 0.0, "p99.9": 0.0, "max": 0.0, "min": 0.0}
    q = np.percentile(values_ns, [50, 99, 99.9]) / 1e3
    return {
        "n": int(values_ns.size),
        "p50": round(float(q[0]), 1),
        "p99": round(float(q[1]), 1),
        "p99.9": round(float(q[2]), 1),
        "max": round(float(values_ns.max()) / 1e3, 1),
        "min": round(float(values_ns.min()) / 1e3, 1),
    }


def emission_times(rx: OscReceiver) -> list[int]:
    """Arrival times of every note and beat message (each is an emission on a grid point), except the
    repeats of the note-off safety net (``serve --osc-noteoff-repeat``: a note-off for a pitch whose last
    message was already a note-off), which are not emissions of their own."""
    out: list[int] = []
    last_vel: dict[Any, Any] = {}
    for t, a, p in list(rx.messages):
        if a == OUT_NOTE and len(p) == 2:
            repeat = p[1] == 0 and last_vel.get(p[0]) == 0
            last_vel[p[0]] = p[1]
            if repeat:
                continue
        if a in (OUT_NOTE, OUT_BEAT):
            out.append(t)
    return out
