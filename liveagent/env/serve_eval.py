"""Evaluate a policy *through a real* ``liveagent serve``, played by a human-timed performer.

``liveagent eval`` plays policies in lockstep with the corpus: the performer is on the grid and the agent
always hears what the contract lets it hear. On stage the performer is late, early, uneven and sometimes
wrong, and the agent hears them over a socket through the engine's clock, quantizer and decision
schedule. This module measures that, end to end:

1. A real ``liveagent serve --policy P --clock internal --bpm B`` subprocess on free loopback ports (OSC in;
   OSC out to an independent :class:`~liveagent.live.io.receiver.OscReceiver` in this process, which stamps
   every arrival with the kernel's receive time; ``--no-record``). One server per condition, so its
   counters (misses, late inputs) belong to that condition.
2. Per piece: ``/liveagent/mute 1``, ``/liveagent/start``; the server's grid (``grid_t0_ns``, ``step_ns``,
   on the machine-wide ``perf_counter_ns``) is read from its ``/liveagent/status``; one bar of count-in
   (muted, so the agent's own history is REST as in the offline eval), ``/liveagent/mute 0`` half a step
   before the piece; then the performer line is played as ``/liveagent/note pitch vel`` (velocity 0 =
   off) at ``T_start + step * period + offset + jitter`` (:func:`plan_performance`) on absolute deadlines
   (sleep, then spin the last millisecond); a short tail, then ``/liveagent/stop``. Stop + start clears
   the server's history (``PolicyView.restart``), so every piece starts fresh, as in the offline eval.
3. The agent's line is rebuilt on the server's grid from what the receiver heard (:func:`rebuild_line`):
   the arrivals of ``/out/beat (bar, beat)`` anchor the grid (:func:`beat_anchor`); each note-on goes to
   the nearest step (ONSET), a step where a note-off leaves nothing sounding is REST, HOLD in between.
   The performer's *played* line is rebuilt the same way from the send times (with the wrong notes:
   :func:`played_line`).
4. Scored with :func:`liveagent.env.metrics.line_metrics` against the played line and the real part (the
   columns of ``liveagent eval``) and the environment's reward terms, plus live columns
   (:data:`LIVE_COLUMNS`): the answer latency (arrival of the agent's note-on minus the send time of the
   performer onset of the same step), the emission lateness of the agent's notes against the server's
   grid, the server's misses and the performer onsets it heard too late for their own step.

The performer's timing is a :class:`PerformerTiming`: a constant offset (lateness), normal jitter of each
onset and each note-off, and a share of wrong notes (a semitone or a tone off), all seeded. Conditions run
one after another (two cores: parallel servers would distort each other's timing).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from liveagent.env.evaluate import PolicyResult
from liveagent.env.metrics import Column, line_metrics
from liveagent.env.serve_performer import (
    PRESETS,
    PerformerEvent,
    PerformerPlan,
    PerformerTiming,
    RebuiltLine,
    answer_latencies_ns,
    beat_anchor,
    nearest_step,
    plan_performance,
    played_line,
    rebuild_line,
    timing_from_spec,
)
from liveagent.env.tables import fmt_value as _fmt
from liveagent.env.tables import markdown_table as eval_table
from liveagent.music.piece import Piece
from liveagent.music.tokens import (
    ONSET_BASE,
)

if TYPE_CHECKING:
    from liveagent.live.io.receiver import OscReceiver

log = logging.getLogger(__name__)

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

DEFAULT_PIECES = 8
DEFAULT_BPM = 100.0
SPIN_NS = 1_000_000
"""Deadlines: sleep until this long before, then spin."""


class ServeEvalError(RuntimeError):
    """The server could not be started or driven (the message says why)."""


# -- the server and its ear -------------------------------------------------------------------------


def _sleep_until(t_ns: int) -> None:
    """Sleep until ``SPIN_NS`` before the absolute deadline ``t_ns`` (perf_counter_ns), then spin."""
    while True:
        d = t_ns - time.perf_counter_ns()
        if d <= 0:
            return
        if d > SPIN_NS:
            time.sleep((d - SPIN_NS) / 1e9)


class ServeProcess:
    """A real ``liveagent serve`` subprocess on free loopback ports, and the receiver that hears it."""

    def __init__(
        self,
        policy: str,
        bpm: float,
        extra_args: Sequence[str] = (),
        *,
        ready_timeout: float = 60.0,
    ) -> None:
        from liveagent.live.io.receiver import OscReceiver

        self.rx: OscReceiver = OscReceiver()
        self.cmd = [
            sys.executable, "-m", "liveagent", "serve", "--policy", policy, "--clock", "internal",
            "--bpm", f"{bpm:g}", "--osc-port", "0", "--osc-out", f"127.0.0.1:{self.rx.port}",
            "--osc-reply", "out", "--no-record", *extra_args,
        ]  # fmt: skip
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._ready = threading.Event()
        self._closed = False
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            self.cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        threading.Thread(target=self._read_out, name="serve-stdout", daemon=True).start()
        threading.Thread(target=self._read_err, name="serve-stderr", daemon=True).start()
        ready = self._ready.wait(ready_timeout)
        line = next((ln for ln in self.stdout if ln.startswith("ready")), None)
        if not ready or line is None:
            self.close()
            tail = "".join(self.stderr[-20:]).strip()
            raise ServeEvalError(f"`{' '.join(self.cmd[2:])}` did not become ready: {tail or 'no output'}")
        self.ready_s = time.perf_counter() - t0
        self.fields = dict(p.split("=", 1) for p in line.split()[1:] if "=" in p)
        host, port = self.fields["osc"].rsplit(":", 1)
        self.dest = (host, int(port))

    def _read_out(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.stdout.append(line.rstrip("\n"))
            if line.startswith("ready"):
                self._ready.set()
        self._ready.set()  # EOF: the process ended (the caller finds no ready line)

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)

    def send(self, address: str, *args: Any) -> None:
        from liveagent.live.io.osc import build_message

        self.sock.sendto(build_message(address, args), self.dest)

    def status(self, timeout: float = 1.0) -> dict[str, Any]:
        """A fresh ``/liveagent/status`` reply (raises :class:`ServeEvalError` when none comes)."""
        n = self.rx.status_count
        self.send("/liveagent/status")
        st = self.rx.wait_status(n, timeout)
        if self.rx.status_count <= n:
            raise ServeEvalError(f"no /liveagent/status reply within {timeout:g} s")
        return dict(st)

    def wait_grid(self, after_ns: int, timeout: float = 3.0) -> tuple[int, float]:
        """``(T_0 ns, step ns)`` of a run that started after ``after_ns`` (older statuses are ignored)."""
        from liveagent.live.io.receiver import grid_of

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(ServeEvalError):
                st = self.status(timeout=0.3)
                g = grid_of(st)
                if g is not None and g[0] > after_ns and st.get("running"):
                    return g
            time.sleep(0.005)
        raise ServeEvalError(f"the server did not report a running grid within {timeout:g} s")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, wait, kill if needed; returns the exit status."""
        rc: int | None = self.proc.poll()
        if self._closed:
            return rc
        self._closed = True
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                rc = self.proc.wait(timeout=5)
        finally:
            self.rx.close()
            self.sock.close()
        return rc

    def stopped_line(self) -> dict[str, str]:
        """The fields of serve's final ``stopped k=v ...`` line (empty before it exits)."""
        line = next((ln for ln in reversed(self.stdout) if ln.startswith("stopped ")), "")
        return dict(p.split("=", 1) for p in line.split()[1:] if "=" in p)

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- one piece through the server -------------------------------------------------------------------


@dataclass
class PieceTake:
    """One piece played through the server."""

    piece: Piece
    agent: IntArray
    """The agent's line rebuilt on the server's grid (the piece's steps)."""
    performer: IntArray
    """The performer's line as sent (wrong notes and timing in)."""
    wrong: int
    answer_ns: FloatArray
    """Answer latency of each agent onset on a step with a performer onset."""
    lateness_ns: FloatArray
    """Arrival minus the step's due time, for every agent note message (on or off) of the piece's steps."""
    send_lateness_ns: FloatArray
    """When each performer message went out minus when it was meant to (the harness's own timing)."""
    collisions: int
    beats: int


def play_piece(
    serve: ServeProcess,
    piece: Piece,
    timing: PerformerTiming,
    *,
    index: int = 0,
    count_in_bars: int = 1,
    tail_steps: int = 2,
) -> PieceTake:
    """Play one piece into a running server (see the module docstring) and rebuild what happened."""
    from liveagent.live.io.osc import OUT_BEAT, OUT_NOTE, build_message

    grid = piece.grid
    count_in = count_in_bars * grid.steps_per_bar
    serve.send("/liveagent/mute", 1)
    t_start = time.perf_counter_ns()
    serve.send("/liveagent/start")
    t0, step_ns = serve.wait_grid(t_start)
    plan = plan_performance(piece.performer, timing, step_ns, piece_index=index)
    t_piece = t0 + count_in * step_ns
    if t_piece - time.perf_counter_ns() < 0.25e9:
        raise ServeEvalError(
            "the server reported its grid too late for the count-in (is the machine overloaded?)"
        )
    # (deadline, datagram, event or None): the unmute half a step before the piece, then the performer.
    schedule: list[tuple[int, bytes, PerformerEvent | None]] = [
        (round(t_piece - step_ns / 2), build_message("/liveagent/mute", [0]), None)
    ]
    for e in plan.events:
        schedule.append((round(t_piece + e.t_ns), build_message("/liveagent/note", [e.pitch, e.velocity]), e))
    schedule.sort(key=lambda s: s[0])
    t_end = round(t_piece + (piece.n_steps + tail_steps) * step_ns)
    sent: list[tuple[int, int, int, int]] = []
    send_late: list[int] = []
    failure: list[BaseException] = []

    def perform() -> None:
        if hasattr(os, "sched_setscheduler"):  # a performer keeps time too (when allowed)
            with contextlib.suppress(OSError):
                os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(25))
        try:
            sock, dest = serve.sock, serve.dest
            for deadline, data, ev in schedule:
                _sleep_until(deadline)
                t = time.perf_counter_ns()
                sock.sendto(data, dest)
                if ev is not None:
                    sent.append((t - round(t_piece), ev.pitch, ev.velocity, ev.note))
                    send_late.append(t - deadline)
            _sleep_until(t_end)
        except BaseException as exc:  # reported by the caller
            failure.append(exc)

    performer = threading.Thread(target=perform, name="performer", daemon=True)
    performer.start()
    performer.join()
    t_stop = time.perf_counter_ns()
    serve.send("/liveagent/stop")
    if failure:
        raise ServeEvalError(f"the performer failed: {failure[0]!r}")
    if not serve.alive():
        raise ServeEvalError(f"the server died: {''.join(serve.stderr[-10:])}")
    time.sleep(0.05)  # the server's last messages are already in the receiver; let stragglers land

    msgs = [(t, a, p) for t, a, p in list(serve.rx.messages) if t_start <= t < t_stop]
    beats = [(t, int(p[0]), int(p[1])) for t, a, p in msgs if a == OUT_BEAT and len(p) >= 2]
    notes = [(t, int(p[0]), int(p[1])) for t, a, p in msgs if a == OUT_NOTE and len(p) >= 2]
    anchor = beat_anchor(beats, grid, step_ns)
    if anchor is None:
        raise ServeEvalError(f"{piece.name}: no beat messages from the server")
    rebuilt = rebuild_line(notes, anchor, step_ns, piece.n_steps, first_step=count_in)
    perf = played_line(sent, step_ns, piece.n_steps)
    # The send time of each performer onset, by the step it was quantized to (the first one wins).
    onset_sent: dict[int, int] = {}
    for t_rel, _, vel, _ in sent:
        if vel > 0:
            onset_sent.setdefault(nearest_step(t_rel, step_ns), t_rel + round(t_piece))
    answer = answer_latencies_ns(rebuilt.onset_ns, onset_sent)
    # Emission lateness of the agent's notes (on and off) against the server's grid (T_0 from its status).
    # Beats are left out: the server sends them on the grid whatever the policy's timing.
    late = [
        t - (t0 + k * step_ns)
        for (t, _, _), k in zip(notes, rebuilt.steps_of, strict=True)
        if count_in <= k < count_in + piece.n_steps
    ]
    return PieceTake(
        piece=piece,
        agent=rebuilt.tokens,
        performer=perf,
        wrong=plan.wrong,
        answer_ns=answer,
        lateness_ns=np.asarray(late, dtype=np.float64),
        send_lateness_ns=np.asarray(send_late, dtype=np.float64),
        collisions=rebuilt.collisions,
        beats=len(beats),
    )


# -- scoring ------------------------------------------------------------------------------------------

LIVE_COLUMNS: tuple[Column, ...] = (
    Column("notes", "notes", "d", "real"),
    Column("answer_p50_ms", "answer p50 ms", ".1f", "low"),
    Column("answer_p95_ms", "answer p95 ms", ".1f", "low"),
    Column("answer_p99_ms", "answer p99 ms", ".1f", "low"),
    Column("emit_late_p50_ms", "emit late p50 ms", ".2f", "low"),
    Column("emit_late_p99_ms", "emit late p99 ms", ".2f", "low"),
    Column("misses", "misses", "d", "low"),
    Column("late_onsets", "late onsets", "d", "low"),
)
"""The live columns appended to the eval table's (see the module docstring). ``late onsets``: performer
onsets the server heard after their step was decided (its ``late_amended``, folded into their own step
after the fact, plus ``late_inputs``, moved to the next step)."""


def _pct_ms(values_ns: FloatArray, q: float) -> float:
    return float(np.percentile(values_ns, q)) / 1e6 if values_ns.size else math.nan


def mean_rewards(
    agents: Sequence[IntArray], performers: Sequence[IntArray], pieces: Sequence[Piece]
) -> dict[str, float]:
    """The environment's weighted reward terms (and ``total``), averaged per step, as ``liveagent eval``
    reports them (the environment's default reward config and pitch range)."""
    from liveagent.env.config import EnvConfig
    from liveagent.env.rewards import RewardTracker, key_mask_of

    env = EnvConfig()
    grid = pieces[0].grid
    n = len(pieces)
    tracker = RewardTracker(n, env.reward, grid=grid, pitch_min=env.pitch_min, pitch_max=env.pitch_max)
    keys = []
    for p in pieces:
        assert p.key is not None
        keys.append(key_mask_of(p.key))
    tracker.reset_rows(np.arange(n), np.stack(keys))
    lengths = np.array([a.size for a in agents], dtype=np.int64)
    t_max = int(lengths.max(initial=0))
    ag = np.zeros((n, t_max), dtype=np.int64)
    pf = np.zeros((n, t_max), dtype=np.int64)
    for i, (a_line, p_line) in enumerate(zip(agents, performers, strict=True)):
        ag[i, : a_line.size] = a_line
        pf[i, : p_line.size] = p_line
    sums: dict[str, float] = {}
    for t in range(t_max):
        live = t < lengths
        _, terms = tracker.step(ag[:, t], pf[:, t], np.full(n, t % grid.steps_per_bar))
        total = np.zeros(n, dtype=np.float64)
        for name, value in tracker.weighted(terms).items():
            v = value.astype(np.float64) * live
            sums[name] = sums.get(name, 0.0) + float(v.sum())
            total += v
        sums["total"] = sums.get("total", 0.0) + float(total.sum())
    steps = float(lengths.sum())
    return {k: v / steps for k, v in sums.items()} if steps else {}


def score_takes(
    name: str, takes: Sequence[PieceTake], server: Mapping[str, Any], seconds: float = 0.0
) -> PolicyResult:
    """One table row from the takes of one condition and the server's final status."""
    pieces = [t.piece for t in takes]
    keys = []
    for p in pieces:
        assert p.key is not None
        keys.append(p.key)
    agents = [t.agent for t in takes]
    performers = [t.performer for t in takes]
    row = line_metrics(
        agents, performers, [p.accompaniment for p in pieces], keys, names=[p.name for p in pieces]
    )
    answer = np.concatenate([t.answer_ns for t in takes]) if takes else np.zeros(0)
    late = np.concatenate([t.lateness_ns for t in takes]) if takes else np.zeros(0)
    send_late = np.concatenate([t.send_lateness_ns for t in takes]) if takes else np.zeros(0)

    def count(*keys: str) -> float:
        values = [float(v) for k in keys if isinstance(v := server.get(k), int | float)]
        return sum(values) if values else math.nan

    row.update(
        {
            "answer_p50_ms": _pct_ms(answer, 50),
            "answer_p95_ms": _pct_ms(answer, 95),
            "answer_p99_ms": _pct_ms(answer, 99),
            "emit_late_p50_ms": _pct_ms(late, 50),
            "emit_late_p99_ms": _pct_ms(late, 99),
            "misses": count("misses"),
            "late_onsets": count("late_inputs", "late_amended"),
        }
    )
    meta = {
        "answers": int(answer.size),
        "emissions": int(late.size),
        "wrong_notes": sum(t.wrong for t in takes),
        "collisions": sum(t.collisions for t in takes),
        "performer_send_lateness_p99_us": _pct_ms(send_late, 99) * 1e3,
        "server": {k: v for k, v in server.items() if not isinstance(v, dict)},
    }
    rewards = mean_rewards(agents, performers, pieces) if takes else {}
    return PolicyResult(name, row, rewards, agents, seconds, meta)


# -- conditions -----------------------------------------------------------------------------------------


def evaluate_through_serve(
    policy: str,
    pieces: Sequence[Piece],
    timing: PerformerTiming,
    *,
    bpm: float = DEFAULT_BPM,
    label: str | None = None,
    serve_args: Sequence[str] = (),
    count_in_bars: int = 1,
) -> PolicyResult:
    """Play ``pieces`` with a performer of ``timing`` into a fresh ``liveagent serve --policy policy`` and
    score it (one row, named ``LABEL (serve, CONDITION)``)."""
    if not pieces:
        raise ValueError("no pieces to play")
    name = f"{label or policy} (serve, {timing.name})"
    t0 = time.perf_counter()
    takes: list[PieceTake] = []
    with ServeProcess(policy, bpm, serve_args) as serve:
        log.info("%s: server ready in %.2f s (%s)", name, serve.ready_s, serve.fields.get("policy", policy))
        for i, piece in enumerate(pieces):
            t_piece = time.perf_counter()
            take = play_piece(serve, piece, timing, index=i, count_in_bars=count_in_bars)
            takes.append(take)
            log.info(
                "%s: piece %d/%d %s: %d steps, %d agent notes, %d answers in %.1f s",
                name, i + 1, len(pieces), piece.name, piece.n_steps,
                int((take.agent >= ONSET_BASE).sum()), take.answer_ns.size, time.perf_counter() - t_piece,
            )  # fmt: skip
            time.sleep(0.1)  # let the stop settle before the next start
        final = serve.status(timeout=2.0)
        rc = serve.close()
        if rc not in (0, None):
            log.warning("%s: serve exited with status %s: %s", name, rc, "".join(serve.stderr[-5:]))
        final.setdefault("exit_status", rc)
    result = score_takes(name, takes, final, time.perf_counter() - t0)
    result.meta.update(
        {
            "condition": timing.name,
            "timing": {
                "offset_ms": timing.offset_ms,
                "jitter_sd_ms": timing.jitter_sd_ms,
                "wrong_pct": timing.wrong_pct,
                "seed": timing.seed,
            },
            "policy": policy,
            "bpm": bpm,
            "serve_args": list(serve_args),
        }
    )
    return result


def markdown_table(results: Sequence[PolicyResult]) -> str:
    """``liveagent eval``'s Markdown table(s), with the :data:`LIVE_COLUMNS` appended to the first (the main
    figures); a live column already in that table (by header) is not repeated."""
    blocks = [b.split("\n") for b in eval_table(results).strip("\n").split("\n\n")]
    head, sep, *rows = blocks[0]
    if len(rows) != len(results):
        raise ValueError(f"eval's table has {len(rows)} rows for {len(results)} results")
    present = {h.strip() for h in head.strip("|").split("|")}
    live = [c for c in LIVE_COLUMNS if c.header not in present]
    blocks[0] = [
        head + " " + " | ".join(c.header for c in live) + " |",
        sep + "".join("---:|" for _ in live),
        *(
            line + " " + " | ".join(_fmt(r.row.get(c.key, math.nan), c.fmt) for c in live) + " |"
            for line, r in zip(rows, results, strict=True)
        ),
    ]
    return "\n\n".join("\n".join(b) for b in blocks) + "\n"


def trim(piece: Piece, steps: int) -> Piece:
    """The first ``steps`` steps of ``piece`` (its key kept)."""
    return replace(
        piece,
        performer=piece.performer[:steps].copy(),
        accompaniment=piece.accompaniment[:steps].copy(),
        voices={v: line[:steps].copy() for v, line in piece.voices.items()},
    )


__all__ = [
    "LIVE_COLUMNS",
    "PRESETS",
    "PerformerEvent",
    "PerformerPlan",
    "PerformerTiming",
    "PieceTake",
    "RebuiltLine",
    "ServeEvalError",
    "ServeProcess",
    "answer_latencies_ns",
    "beat_anchor",
    "evaluate_through_serve",
    "markdown_table",
    "plan_performance",
    "play_piece",
    "played_line",
    "rebuild_line",
    "score_takes",
    "timing_from_spec",
    "trim",
]
