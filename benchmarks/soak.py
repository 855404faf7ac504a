"""Soak: a real `liveagent serve` for a long run under an OSC flood, following a MIDI clock master.

    .venv/bin/python benchmarks/soak.py --minutes 60 --bpm 200          # the one-hour figure
    .venv/bin/python benchmarks/soak.py --minutes 5 --bpm 240           # five minutes at 240 BPM (16ths)
    .venv/bin/python benchmarks/soak.py --minutes 5 --clock internal    # without JACK

A private dummy JACK server; ``jack_midi_clock`` (driven by JACK transport, an independent process) is the
MIDI clock master into serve's virtual JACK input (``--clock midi``); a performer plays an arpeggio over
OSC on the grid, and a flood of 1,000 messages/s (every fifth datagram a bundle of 10 notes) comes from a
second socket. An OSC receiver in this process timestamps the agent's beats: their deviation from one
straight line fitted through them (a constant-tempo grid, which is what the master plays) gives the
lateness figures a listener hears. Every minute the serve process's resident memory is sampled.

A figure, never pass/fail: it prints and saves (``--out``, JSON) misses, skipped steps, RSS growth,
beat deviation p50/p99/p99.9 at the receiver, the server's own lateness percentiles and the OSC counters.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from liveagent.live.commands.bench import ServeRun, _perform, rss_mb
from liveagent.live.io.jack import dummy_jack_server
from liveagent.live.io.osc import build_message
from liveagent.live.io.receiver import OUT_BEAT, grid_of, summarize_us

log = logging.getLogger("soak")


def _bundle(messages: list[bytes]) -> bytes:
    """An OSC bundle (time tag 'immediately') of already encoded messages."""
    out = b"#bundle\0" + (1).to_bytes(8, "big")
    for m in messages:
        out += len(m).to_bytes(4, "big") + m
    return out


def _flood(port: int, rate: float, stop: threading.Event, sent: list[int]) -> None:
    """``rate`` OSC messages/s in 10 ms batches: single notes, and every fifth datagram a bundle of 10."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    notes = [build_message("/liveagent/note", [48 + (i % 24), 64 if i % 2 == 0 else 0]) for i in range(24)]
    bundle = _bundle(notes[:10])
    # a 10 ms batch: 4 single notes and bundles of 10 (one bundle per 4 singles), scaled to the rate
    t = time.perf_counter()
    i = n = 0
    while not stop.is_set():
        k = 0
        while k < rate / 100:
            if i % 5 == 4:
                s.sendto(bundle, ("127.0.0.1", port))
                k += 10
            else:
                s.sendto(notes[i % 24], ("127.0.0.1", port))
                k += 1
            i += 1
        n += k
        t += k / rate
        d = t - time.perf_counter()
        if d > 0:
            time.sleep(d)
    sent[0] = n
    s.close()


def _beat_deviation_us(times_ns: list[int]) -> dict[str, float]:
    """Deviation of each beat's arrival from the straight line fitted through all of them."""
    if len(times_ns) < 3:
        return summarize_us(np.zeros(0))
    t = np.asarray(times_ns, dtype=np.float64)
    k = np.arange(t.size, dtype=np.float64)
    slope, icpt = np.polyfit(k, t, 1)
    return summarize_us(np.abs(t - (slope * k + icpt)))


def _grid(srv: ServeRun, bpm: float, steps_per_beat: int = 4) -> tuple[int, float]:
    """The grid the performer plays on: announced by an internal clock; under an external clock (which
    announces none) the agent's first beat at the receiver and the master's nominal tempo."""
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        grid = grid_of(srv.status())
        if grid is not None:
            return grid
        beats = [t for t, a, _ in list(srv.rx.messages) if a == OUT_BEAT]
        if beats:
            return beats[-1], 60e9 / (bpm * steps_per_beat)
        time.sleep(0.1)
    raise RuntimeError("serve did not start playing (no grid, no beat)")


def _status_figures(st: dict[str, Any]) -> dict[str, Any]:
    keys: tuple[str, ...] = ("steps", "misses", "skipped", "bpm", "lateness_p50_us", "lateness_p99_us")
    keys += ("lateness_max_us", "decision_p99_us", "osc_in", "osc_flood_dropped", "osc_errors")
    keys += ("input_errors",)
    return {k: st.get(k) for k in keys}


def soak(minutes: float, bpm: float, clock: str, flood_rate: float, policy: str) -> dict[str, Any]:
    stop = threading.Event()
    sent = [0]

    def run(env: dict[str, str] | None, jack: Any) -> dict[str, Any]:
        args = ["--bpm", f"{bpm:g}", "--no-record"]
        if jack is not None:
            args += ["--clock", "midi", "--virtual", "--midi-name", "soak-srv"]
        srv = ServeRun(policy, *args, env=env)
        clock_proc: subprocess.Popen[bytes] | None = None
        try:
            if jack is not None:
                clock_proc = subprocess.Popen(
                    ["jack_midi_clock", "-b", f"{bpm:g}", "-B"],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                jack.wait_port("jack_midi_clock:mclk_out")
                jack.connect("jack_midi_clock:mclk_out", "soak-srv:in")
                subprocess.run(["jack_transport"], input=b"play\n", env=env, capture_output=True, timeout=10)
            else:
                srv.send("/liveagent/start")
            grid = _grid(srv, bpm)
            threading.Thread(target=_perform, args=(srv.port, grid, stop), daemon=True).start()
            if flood_rate > 0:
                threading.Thread(target=_flood, args=(srv.port, flood_rate, stop, sent), daemon=True).start()
            t_flood = time.perf_counter()
            time.sleep(1.0)
            st0 = srv.status()
            rss = [rss_mb(srv.proc.pid)]
            load = [os.getloadavg()[0]]
            t_start = time.perf_counter_ns()
            t_end_s = time.monotonic() + minutes * 60
            while (left := t_end_s - time.monotonic()) > 0:
                time.sleep(min(60.0, left))
                rss.append(rss_mb(srv.proc.pid))
                load.append(os.getloadavg()[0])
                log.info("%.1f min left, rss %.1f MB", max(0.0, (t_end_s - time.monotonic()) / 60), rss[-1])
            t_end = time.perf_counter_ns()
            stop.set()
            time.sleep(0.3)
            st = srv.status()
            beats = [t for t, a, _ in list(srv.rx.messages) if a == OUT_BEAT and t_start <= t <= t_end]
            before, after = _status_figures(st0), _status_figures(st)
            return {
                "minutes": minutes,
                "bpm": bpm,
                "clock": "midi (jack_midi_clock)" if jack is not None else "internal",
                "policy": policy,
                "misses": int(after["misses"] or 0) - int(before["misses"] or 0),
                "skipped": int(after["skipped"] or 0) - int(before["skipped"] or 0),
                "steps": int(after["steps"] or 0) - int(before["steps"] or 0),
                "rss_mb_start": rss[0],
                "rss_mb_end": rss[-1],
                "rss_growth_mb": round(rss[-1] - rss[0], 1),
                "load_1min_mean": round(float(np.mean(load)), 2),
                "load_1min_max": round(max(load), 2),
                "cores": os.cpu_count(),
                "beat_deviation_us": _beat_deviation_us(beats),
                "flood_messages_sent": sent[0],
                "flood_rate_achieved": round(sent[0] / max(1e-9, time.perf_counter() - t_flood), 1),
                "server": after,
            }
        finally:
            stop.set()
            if clock_proc is not None:
                clock_proc.terminate()
                clock_proc.wait(timeout=5)
            srv.close()

    if clock == "midi":
        if shutil.which("jackd") is None or shutil.which("jack_midi_clock") is None:
            raise SystemExit("--clock midi needs jackd and jack_midi_clock (Debian: jackd2, jack-midi-clock)")
        with dummy_jack_server(f"liveagent-soak-{os.getpid()}") as jack:
            return run(jack.env(), jack)
    return run(None, None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="soak", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="length of the run")
    parser.add_argument("--bpm", type=float, default=200.0, help="tempo of the master (quarter notes/min)")
    parser.add_argument("--clock", choices=("midi", "internal"), default="midi", help="the beat source")
    parser.add_argument("--flood", type=float, default=1000.0, help="OSC flood, messages/s (0 = none)")
    parser.add_argument("--policy", default="default", help="policy under test")
    parser.add_argument("--out", type=Path, default=None, help="also save the figures as JSON here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    res = soak(args.minutes, args.bpm, args.clock, args.flood, args.policy)
    text = json.dumps(res, indent=2)
    sys.stdout.write(text + "\n")
    if args.out is not None:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
