"""Decision latency inside a real `liveagent serve`, with and without the engine's prefetch, side by side.

Why: `liveagent bench --only decision` (a tight loop) measured p99 ~0.4 ms while a real `serve` at 240 BPM
reported p99 1.6-2.0 ms. The cause is the idle between steps (62.5 ms): the decision's first policy call
finds the weights and code out of the caches (in one process: the same call p50 ~0.3 ms back to back,
~0.9-1.1 ms after a 10-62 ms sleep). The engine now warms the policy just before each decision
(``liveagent.live.engine.policy_view.PREFETCH_CALLS``). This script runs `serve` with the prefetch on and
off, the variants interleaved (a loaded machine drifts: never compare against older figures), and prints the
status figures of each run: decision p50/p99/max, misses, emission lateness p99 and the process's CPU.

    python benchmarks/decision_in_serve.py [--seconds 20] [--reps 2] [--policies anticipate,default]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import threading
import time
from typing import Any

from liveagent.live.commands import bench

log = logging.getLogger("decision_in_serve")

_LAUNCH = (
    "import sys; import liveagent.live.engine.policy_view as pv; pv.PREFETCH_CALLS = int(sys.argv[1]); "
    "from liveagent.cli import main; raise SystemExit(main(sys.argv[2:]))"
)


def _cpu_s(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_once(policy: str, calls: int, seconds: float, bpm: float) -> dict[str, Any]:
    """One real `serve` (prefetch ``calls``) with an on-grid performer; its status after ``seconds``."""
    # ServeRun launches `python -m liveagent serve ...`; here the same CLI, with the prefetch set first.
    bench._serve_cmd = lambda pol, *args: [  # type: ignore[assignment]
        sys.executable,
        "-c",
        _LAUNCH,
        str(calls),
        "serve",
        "--osc-port",
        "0",
        "--policy",
        pol,
        *args,
    ]
    run = bench.ServeRun(policy, "--bpm", f"{bpm:g}")
    stop = threading.Event()
    try:
        grid = run.start_on_grid()
        threading.Thread(target=bench._perform, args=(run.port, grid, stop), daemon=True).start()
        time.sleep(0.3)
        st0 = run.status()
        cpu0, t0 = _cpu_s(run.proc.pid), time.perf_counter()
        time.sleep(seconds)
        st = run.status()
        cpu = (_cpu_s(run.proc.pid) - cpu0) / (time.perf_counter() - t0)
    finally:
        stop.set()
        run.close()
    return {
        "p50": float(st["decision_p50_us"]),
        "p99": float(st["decision_p99_us"]),
        "max": float(st["decision_max_us"]),
        "misses": int(st["misses"]) - int(st0["misses"]),
        "steps": int(st["steps"]) - int(st0["steps"]),
        "late_p99": float(st["lateness_p99_us"]),
        "cpu_pct": 100.0 * cpu,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="measured seconds per run")
    ap.add_argument("--reps", type=int, default=2, help="rounds of (policy x variant)")
    ap.add_argument("--bpm", type=float, default=240.0)
    ap.add_argument("--policies", default="anticipate,default")
    ap.add_argument("--calls", default="0,4", help="prefetch runs compared (at most; 0 = off)")
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    policies = a.policies.split(",")
    variants = [int(c) for c in a.calls.split(",")]
    res: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for rep in range(a.reps):
        for pol in policies:
            for calls in variants:
                r = run_once(pol, calls, a.seconds, a.bpm)
                res.setdefault((pol, calls), []).append(r)
                log.info(
                    "round %d %-10s prefetch %d: decision p50 %4.0f p99 %4.0f max %5.0f us, misses %d/%d, "
                    "lateness p99 %4.0f us, cpu %4.1f %%",
                    rep,
                    pol,
                    calls,
                    r["p50"],
                    r["p99"],
                    r["max"],
                    r["misses"],
                    r["steps"],
                    r["late_p99"],
                    r["cpu_pct"],
                )
    log.info("\nmedian over %d rounds (%g s each, %g BPM in 16ths):", a.reps, a.seconds, a.bpm)
    for (pol, calls), runs in res.items():
        med = {k: statistics.median(r[k] for r in runs) for k in ("p50", "p99", "max", "late_p99", "cpu_pct")}
        log.info(
            "%-10s prefetch %d: decision p50 %4.0f p99 %4.0f max %5.0f us | lateness p99 %4.0f us | "
            "misses %d | cpu %4.1f %%",
            pol,
            calls,
            med["p50"],
            med["p99"],
            med["max"],
            med["late_p99"],
            sum(r["misses"] for r in runs),
            med["cpu_pct"],
        )


if __name__ == "__main__":
    main()
