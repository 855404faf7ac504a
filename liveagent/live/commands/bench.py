"""Live benchmarks: measured numbers, never pass/fail (machines are noisy; read them against the targets).

- decision latency: observation fill + policy + sampling, as the engine does it, in this process;
- emission lateness at an independent receiver: a real `liveagent serve` subprocess, this process
  listening over OSC (and over JACK MIDI when jackd is installed), with the monitor off and on, and under
  an OSC input flood; lateness = arrival - T_k on the shared monotonic clock (the server announces T_0 and
  the step length in ``/liveagent/status``);
- cold start of `serve` until its ready line, its resident memory, and that it never maps torch;
- ONNX against torch eager on the same policy (a ratio; only when torch is installed; measured by
  ``liveagent.train.bench_torch`` in a subprocess, so this module never imports torch);
- the most engines one process holds at 240 BPM in sixteenths with zero misses.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from liveagent.live.engine.stats import answered_pct
from liveagent.live.io.receiver import (
    OscReceiver,
    emission_times,
    follow_window_ms,
    grid_of,
    lateness_ns,
    summarize_us,
)

log = logging.getLogger(__name__)


@dataclass
class BenchConfig:
    """What to run and for how long."""

    policy: str = "default"
    """Policy under test (default falls back to rules)."""
    bpm: float = 240.0
    """Tempo of the timing runs (16ths: 62.5 ms steps at 240 BPM)."""
    duration_s: float = 15.0
    """Length of each emission-lateness run."""
    flood_rate: float = 1000.0
    """OSC input flood (messages/s) of the flood run; 0 skips it."""
    decisions: int = 5000
    """Policy calls for the decision-latency figure."""
    cold_starts: int = 3
    """`serve` launches for the cold-start figure."""
    agents_s: float = 6.0
    """Seconds per agent count in the max-agents search."""
    max_agents: int = 256
    """Largest agent count tried."""
    jack: bool = True
    """Measure over JACK MIDI when jackd is installed."""
    torch: bool = True
    """Measure ONNX against torch eager when torch is installed."""
    monitor: bool = True
    """Also measure lateness with the serve monitor on."""
    rt_priority: int = 20
    """SCHED_FIFO priority for the in-process measurements (decision latency), as `serve` uses; 0 = off."""
    serve_args: tuple[str, ...] = ()
    """Extra `serve` flags for the timing runs (e.g. ``--follow-chord-ms=0``)."""
    only: tuple[str, ...] = ()
    """Only these sections (decision, cold, osc, floor, flood, monitor, jack, torch, agents); empty: all."""
    band: str = ""
    """A band (``satb``): measure it beside ``policy`` (decision, osc, agents; ``bench_band.py``)."""
    band_policy: str = "band"
    """The band policy of ``band``."""
    results: dict[str, Any] = field(default_factory=dict)


def _serve_cmd(policy: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "liveagent", "serve", "--osc-port", "0", "--policy", policy, *args]


class ServeRun:
    """A `liveagent serve` subprocess whose OSC output goes to an :class:`OscReceiver` in this process."""

    def __init__(self, policy: str, *args: str, env: dict[str, str] | None = None) -> None:
        self.rx = OscReceiver()
        self.t_launch = time.perf_counter()
        self.proc = subprocess.Popen(
            _serve_cmd(policy, "--osc-out", f"127.0.0.1:{self.rx.port}", "--osc-reply", "out", *args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None
        line = ""
        for line in self.proc.stdout:
            if line.startswith("ready"):
                break
        if not line.startswith("ready"):
            err = self.proc.stderr.read() if self.proc.stderr else ""
            self.close()
            raise RuntimeError(f"serve did not start: {err.strip()[-500:]}")
        self.ready_s = time.perf_counter() - self.t_launch
        self.fields = dict(p.split("=", 1) for p in line.split()[1:] if "=" in p)
        self.port = int(self.fields["osc"].rsplit(":", 1)[1])
        self.out_lines: list[str] = []
        threading.Thread(target=self._drain, daemon=True).start()
        import socket

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if len(self.out_lines) < 1000:
                self.out_lines.append(line)

    def send(self, address: str, *args: Any) -> None:
        from liveagent.live.io.osc import build_message

        self.sock.sendto(build_message(address, args), ("127.0.0.1", self.port))

    def status(self) -> dict[str, Any]:
        n = self.rx.status_count
        self.send("/liveagent/status")
        return self.rx.wait_status(n, timeout=2.0)

    def start_on_grid(self) -> tuple[int, float]:
        """``/liveagent/start``, then serve's grid (``grid_t0_ns``, ``step_ns``) from its status."""
        self.send("/liveagent/start")
        time.sleep(0.1)
        for _ in range(20):
            grid = grid_of(self.status())
            if grid is not None:
                return grid
        raise RuntimeError("serve did not report its grid")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.rx.close()


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for ln in f:
                if ln.startswith("VmRSS:"):
                    return int(ln.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def maps_torch(pid: int) -> bool:
    """Whether a live process has any torch library mapped (an independent check of "no torch")."""
    try:
        with open(f"/proc/{pid}/maps") as f:
            return any("libtorch" in ln or "/torch/" in ln for ln in f)
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------- sections


def bench_decision(cfg: BenchConfig) -> dict[str, Any]:
    """Fill + policy + sample, exactly the engine's decide path, ``cfg.decisions`` times."""
    from liveagent.live.commands.server_setup import realtime_thread, resolve_policy
    from liveagent.music.features import ObservationBuffers, StreamingObservation, hears_current_step
    from liveagent.music.sampling import Sampler, SamplerConfig, range_mask

    policy, _ = resolve_policy(cfg.policy)
    m = policy.meta
    stream = StreamingObservation(window=m.window, steps_per_bar=m.steps_per_bar, mode=m.mode)
    obs = ObservationBuffers.allocate(1, m.window)
    sampler = Sampler(SamplerConfig())
    mask = range_mask(m.pitch_min, m.pitch_max)
    rng = np.random.default_rng(0)
    perf = rng.integers(0, 130, size=cfg.decisions + 64)
    for _ in range(50):
        sampler.sample(policy(obs), mask)
    out = np.empty(cfg.decisions, dtype=np.int64)
    react = hears_current_step(m.mode)
    with realtime_thread(cfg.rt_priority) as rt:  # as `serve` runs its engine thread
        _decide_loop(cfg.decisions, stream, obs, policy, sampler, mask, perf, out, react)
    return {"policy": policy.name, "realtime": rt, **summarize_us(out.astype(np.float64))}


def _decide_loop(
    n: int, stream: Any, obs: Any, policy: Any, sampler: Any, mask: Any, perf: Any, out: Any, react: bool
) -> None:
    for i in range(n):
        if react:  # follow timing (react, follow) decides step i having heard the performer's step i
            stream.push_performer(int(perf[i]))
        t0 = time.perf_counter_ns()
        stream.fill(obs, i)
        tok = int(sampler.sample(policy(obs), mask)[0])
        out[i] = time.perf_counter_ns() - t0
        stream.push_agent(tok)
        if not react:
            stream.push_performer(int(perf[i]))


def bench_cold_start(cfg: BenchConfig) -> dict[str, Any]:
    times, rss, torch_seen = [], [], False
    for _ in range(cfg.cold_starts):
        run = ServeRun(cfg.policy)
        try:
            times.append(run.ready_s)
            run.send("/liveagent/start")
            time.sleep(1.0)  # a second of playing: the resident set includes the warmed-up session
            rss.append(rss_mb(run.proc.pid))
            torch_seen |= maps_torch(run.proc.pid)
            torch_status = run.status().get("torch_loaded")
        finally:
            run.close()
    return {
        "cold_start_s": {
            "median": round(float(np.median(times)), 3),
            "max": round(max(times), 3),
            "runs": len(times),
        },
        "rss_mb": round(float(np.median(rss)), 1),
        "torch_mapped": torch_seen,
        "torch_in_sys_modules": bool(torch_status),
    }


def _lateness_run(
    cfg: BenchConfig,
    *args: str,
    env: dict[str, str] | None = None,
    flood: float = 0.0,
    midi_rx: Any = None,
    extra: Callable[[OscReceiver, int, int, int, float], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """``extra(receiver, t_start, t_end, T_0, step)``: more figures from what the receiver heard (a band's
    voices, each on its own address: ``bench_band.py``)."""
    run = ServeRun(cfg.policy, "--bpm", f"{cfg.bpm:g}", *cfg.serve_args, *args, env=env)
    stop_flood = threading.Event()
    flood_sent = [0]
    try:
        if midi_rx is not None:
            midi_rx.connect(run)
        grid = run.start_on_grid()
        # a performer on the grid (a note per beat), so that every policy has something to answer
        threading.Thread(target=_perform, args=(run.port, grid, stop_flood), daemon=True).start()
        if flood > 0:
            threading.Thread(
                target=_flood, args=(run.port, flood, stop_flood, flood_sent), daemon=True
            ).start()
        time.sleep(0.3)  # the first steps are not part of the measurement window
        st0 = run.status()
        t_start = time.perf_counter_ns()
        time.sleep(cfg.duration_s)
        t_end = time.perf_counter_ns()
        stop_flood.set()
        time.sleep(0.2)
        st = run.status()
        run.send("/liveagent/stop")
        t0, step = grid
        osc = [t for t in emission_times(run.rx) if t_start <= t <= t_end]
        res: dict[str, Any] = {
            "osc_lateness_us": summarize_us(lateness_ns(osc, t0, step)),
            "misses": int(st.get("misses", 0)) - int(st0.get("misses", 0)),
            "steps": int(st.get("steps", 0)) - int(st0.get("steps", 0)),
            "server_lateness_p99_us": st.get("lateness_p99_us"),
            "server_lateness_max_us": st.get("lateness_max_us"),
            "decision_p99_us": st.get("decision_p99_us"),
            "timing": st.get("timing"),
            "notes_out": int(st.get("notes_out", 0)) - int(st0.get("notes_out", 0)),
        }
        if extra is not None:
            res.update(extra(run.rx, t_start, t_end, t0, step))
        if st.get("timing") == "follow":  # answer latency: emission minus the performer onset's arrival
            res["answer_us"] = {q: st.get(f"answer_{q}_us") for q in ("p50", "p95", "p99", "max")}
            res["answered"] = int(st.get("answered", 0)) - int(st0.get("answered", 0))
            res["late_amended"] = int(st.get("late_amended", 0)) - int(st0.get("late_amended", 0))
            res["answered_pct"] = answered_pct(res["answered"], res["late_amended"])  # over this run
            res["follow_window_ms"] = follow_window_ms(st)
        if flood > 0:
            res["flood_sent"] = flood_sent[0]
            res["flood_rate_achieved"] = round(flood_sent[0] / cfg.duration_s, 1)
            res["osc_in"] = st.get("osc_in")
            res["osc_flood_dropped"] = st.get("osc_flood_dropped")
        if midi_rx is not None:
            times = [t for t in midi_rx.times if t_start <= t <= t_end]
            res["midi_lateness_us"] = summarize_us(lateness_ns(times, t0, step))
        return res
    finally:
        stop_flood.set()
        run.close()


def _perform(port: int, grid: tuple[int, float], stop: threading.Event) -> None:
    """An arpeggio, one note per beat (held three sixteenths), sent on the server's grid."""
    import socket

    from liveagent.live.io.osc import build_message

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    t0, step = grid
    pitches = (60, 64, 67, 72, 67, 64)
    k = int((time.perf_counter_ns() - t0) / step) + 4
    k -= k % 4
    j = 0
    while not stop.is_set():
        p = pitches[j % len(pitches)]
        for due, vel in ((t0 + k * step, 90), (t0 + (k + 3) * step, 0)):
            while (d := due - time.perf_counter_ns()) > 0 and not stop.is_set():
                time.sleep(min(d / 1e9, 0.05))
            s.sendto(build_message("/liveagent/note", [p, vel]), ("127.0.0.1", port))
        k += 4
        j += 1
    s.close()


def _flood(port: int, rate: float, stop: threading.Event, sent: list[int]) -> None:
    """Valid performer notes at ``rate`` msg/s, paced in 10 ms batches (what a runaway patch does)."""
    import socket

    from liveagent.live.io.osc import build_message

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    msgs = [build_message("/liveagent/note", [60 + (i % 12), 64 if i % 2 == 0 else 0]) for i in range(24)]
    batch = max(1, round(rate / 100))
    t = time.perf_counter()
    i = 0
    while not stop.is_set():
        for _ in range(batch):
            s.sendto(msgs[i % 24], ("127.0.0.1", port))
            i += 1
        t += batch / rate
        d = t - time.perf_counter()
        if d > 0:
            time.sleep(d)
    sent[0] = i
    s.close()


def bench_osc(cfg: BenchConfig) -> dict[str, Any]:
    return _lateness_run(cfg)


def bench_monitor(cfg: BenchConfig) -> dict[str, Any]:
    env = {**os.environ, "TTY_COMPATIBLE": "1", "FORCE_COLOR": "1", "COLUMNS": "110"}
    return _lateness_run(cfg, "--monitor", env=env)


def bench_flood(cfg: BenchConfig) -> dict[str, Any]:
    return _lateness_run(cfg, flood=cfg.flood_rate)


class _MidiReceiver:
    """An rtmidi JACK input in this process that timestamps the server's MIDI note messages."""

    def __init__(self, name: str) -> None:
        import rtmidi

        self.port = rtmidi.MidiIn(rtapi=rtmidi.API_UNIX_JACK, name=name)
        self.port.open_virtual_port("in")
        self.name = name
        self.times: list[int] = []
        self.port.set_callback(self._cb)

    def _cb(self, msg: Any, _data: Any = None) -> None:
        t = time.perf_counter_ns()
        if msg[0] and msg[0][0] & 0xE0 == 0x80:  # note on/off
            self.times.append(t)

    def connect(self, run: ServeRun) -> None:
        out = run.fields.get("midi_out", "")
        subprocess.run(["jack_connect", out, f"{self.name}:in"], check=True, timeout=10, capture_output=True)

    def close(self) -> None:
        from liveagent.live.io.midi import close_rtmidi_port

        close_rtmidi_port(self.port)


def bench_jack(cfg: BenchConfig) -> dict[str, Any]:
    import shutil

    from liveagent.live.io.jack import dummy_jack_server

    if shutil.which("jackd") is None:
        return {"skipped": "jackd not installed"}
    with dummy_jack_server(f"liveagent-bench-{os.getpid()}") as jack:
        rx = _MidiReceiver("bench-rx")
        try:
            res = _lateness_run(cfg, "--virtual", "--midi-name", "bench-srv", env=jack.env(), midi_rx=rx)
        finally:
            rx.close()
    res["jack_period_ms"] = round(jack.period_ms, 3)
    return res


def bench_torch(cfg: BenchConfig) -> dict[str, Any]:
    """ONNX against torch eager on the same policy, measured in a subprocess (this process never imports
    torch or liveagent.train): ``python -m liveagent.train.bench_torch --json``, its last stdout line."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return {"skipped": "torch not installed"}
    name = cfg.policy if cfg.policy.isidentifier() else "default"  # an export name, not a path
    cmd = [sys.executable, "-m", "liveagent.train.bench_torch", "--json", "--n", str(cfg.decisions)]
    cmd += ["--policy", name]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    lines = r.stdout.strip().splitlines()
    if r.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(cmd[1:])} failed ({r.returncode}): {r.stderr.strip()[-500:]}")
    res: dict[str, Any] = json.loads(lines[-1])
    return res


def bench_agents(cfg: BenchConfig) -> dict[str, Any]:
    from liveagent.live.commands.bench_agents import max_agents

    return max_agents(cfg.policy, bpm=cfg.bpm, seconds=cfg.agents_s, limit=cfg.max_agents)


def bench_floor(cfg: BenchConfig) -> dict[str, Any]:
    """The machine's floor beside the ``osc`` run: a bare Python sender on the same grid and receiver."""
    from liveagent.live.commands.bench_floor import bench_floor as floor

    return floor(cfg.bpm, cfg.duration_s)


SECTIONS: dict[str, Callable[[BenchConfig], dict[str, Any]]] = {
    "decision": bench_decision,
    "cold": bench_cold_start,
    "osc": bench_osc,
    "floor": bench_floor,
    "monitor": bench_monitor,
    "flood": bench_flood,
    "jack": bench_jack,
    "torch": bench_torch,
    "agents": bench_agents,
}


def run_all(
    cfg: BenchConfig,
    report: Callable[[str, dict[str, Any]], None],
    sections: dict[str, Callable[[BenchConfig], dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """Run ``sections`` (default :data:`SECTIONS`; ``bench --band``: ``bench_band.BAND_SECTIONS``)."""
    for name, fn in (sections or SECTIONS).items():
        if cfg.only and name not in cfg.only:
            continue
        if (name == "jack" and not cfg.jack) or (name == "torch" and not cfg.torch):
            continue
        if (name == "monitor" and not cfg.monitor) or (name == "flood" and cfg.flood_rate <= 0):
            continue
        t0 = time.perf_counter()
        try:
            res = fn(cfg)
        except Exception as e:  # one failing section must not lose the others' numbers
            log.exception("bench %s failed", name)
            res = {"error": f"{type(e).__name__}: {e}"}
        res["seconds"] = round(time.perf_counter() - t0, 1)
        res["loadavg_1min"] = round(os.getloadavg()[0], 2)
        cfg.results[name] = res
        report(name, res)
    return cfg.results


def save(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
