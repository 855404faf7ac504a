"""The machine's floor for emission lateness: the least a bare Python sender does here, beside `serve`.

A separate process with none of the engine: SCHED_FIFO when allowed, absolute deadlines (T_0 + k * step),
a sleep to a millisecond before each one, a spin to it, then one prebuilt OSC datagram and one ``sendto``.
The same receiver (kernel timestamps) and the same grid as `liveagent bench`'s ``osc`` run judge it, so the
two figures side by side say how much of the engine's lateness is the engine and how much the machine
(scheduling, the hypervisor, loopback delivery). It also reports the longest gap the spin itself saw before
each deadline: time the process did not run although it never blocked.

    python -m liveagent.live.commands.bench_floor PORT T0_NS STEP_NS STEPS SPIN_NS   # the sender (internal)
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from typing import Any

import numpy as np

from liveagent.live.io.osc_wire import OUT_NOTE, build_message
from liveagent.live.io.receiver import OscReceiver, lateness_ns, summarize_us

SPIN_NS = 1_000_000
"""The sender spins the last millisecond before each deadline, as the engine does (``spin_ms``)."""
FIFO_PRIORITY = 40
"""As `serve`'s engine thread would ask for (``--rt-priority``); ignored when not permitted."""


def send_on_grid(port: int, t0_ns: int, step_ns: int, steps: int, spin_ns: int = SPIN_NS) -> dict[str, Any]:
    """Send one prebuilt note datagram at every grid point; returns the spin's longest gaps (us)."""
    realtime = False
    if hasattr(os, "sched_setscheduler"):
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(FIFO_PRIORITY))
            realtime = True
        except OSError:
            pass
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    data = build_message(OUT_NOTE, [60, 90])
    dest = ("127.0.0.1", port)
    clock = time.perf_counter_ns
    gaps = np.zeros(steps, dtype=np.int64)
    for k in range(steps):
        due = t0_ns + k * step_ns
        while (left := due - clock()) > spin_ns:
            time.sleep((left - spin_ns) / 1e9)
        last = clock()
        longest = 0
        while (now := clock()) < due:
            if now - last > longest:
                longest = now - last
            last = now
        sock.sendto(data, dest)
        gaps[k] = longest
    sock.close()
    return {"realtime": realtime, "spin_gap_us": summarize_us(gaps.astype(np.float64))}


def bench_floor(bpm: float, duration_s: float) -> dict[str, Any]:
    """The floor run: the sender in a child process, this process the receiver, 16ths at ``bpm``."""
    step_ns = round(60e9 / bpm / 4)
    steps = max(1, int(duration_s * 1e9 / step_ns))
    rx = OscReceiver()
    try:
        port = rx.sock.getsockname()[1]
        t0 = time.perf_counter_ns() + 300_000_000
        args = [str(port), str(t0), str(step_ns), str(steps), str(SPIN_NS)]
        out = subprocess.run(
            [sys.executable, "-m", "liveagent.live.commands.bench_floor", *args],
            capture_output=True,
            text=True,
            timeout=duration_s + 30,
            check=True,
        )
        time.sleep(0.1)
        times = [t for t, a, _ in list(rx.messages) if a == OUT_NOTE]
    finally:
        rx.close()
    res: dict[str, Any] = json.loads(out.stdout)
    res["osc_lateness_us"] = summarize_us(lateness_ns(times, t0, step_ns))
    res["sent"] = steps
    return res


def main(argv: list[str]) -> int:
    port, t0, step, steps, spin = (int(a) for a in argv)
    print(json.dumps(send_on_grid(port, t0, step, steps, spin)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
