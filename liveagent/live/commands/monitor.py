"""The live monitor: a small rich panel refreshed a few times a second from a status snapshot.

It never touches engine state and never makes the engine thread build anything: ``snapshot()`` returns
the status the engine thread last published in its slack time (at most ``status_interval_ms`` old; see
:meth:`Engine.published_status <liveagent.live.engine.loop.Engine.published_status>`). In `serve` that is
``Server.status()``, a copy of the published snapshot merged with the I/O counters, written as JSON lines
to a child process that renders it (:class:`MonitorProcess`: rendering is Python time, which would be
taken from the engine's process); in `demo` it is the last ``/liveagent/status`` reply, which the server's
OSC thread answers from the same published snapshot. `liveagent bench` measures emission lateness with
the monitor on and off.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from liveagent.music.theory import pitch_name

Snapshot = Callable[[], Mapping[str, Any]]


def _f(v: Any, fmt: str = "{:.0f}", default: str = "-") -> str:
    if v is None or v == "":
        return default
    try:
        return fmt.format(float(v))
    except (TypeError, ValueError):
        return str(v)


def _pitches(v: Any) -> str:
    if isinstance(v, list | tuple):
        return " ".join(pitch_name(int(p)) for p in v) or "·"
    if isinstance(v, str):
        return " ".join(pitch_name(int(p)) for p in v.split() if p.isdigit()) or "·"
    if isinstance(v, int | float) and v >= 0:
        return pitch_name(int(v))
    return "·"


def render(st: Mapping[str, Any], title: str = "liveagent", extra: Mapping[str, str] | None = None) -> Panel:
    """One frame of the monitor for a status snapshot (pure: tests render it to text)."""
    running = bool(st.get("running"))
    state = Text("● playing", style="bold green") if running else Text("■ stopped", style="bold yellow")
    if running and st.get("waiting"):
        state = Text("◌ waiting for the performer", style="bold blue")
    if st.get("muted"):
        state = Text("◌ muted", style="bold magenta")
    bar, beat = st.get("bar", -1), st.get("beat", -1)
    pos = f"{int(bar) + 1}:{int(beat) + 1}" if isinstance(bar, int | float) and bar >= 0 else "-:-"
    top = Table.grid(padding=(0, 3))
    top.add_row(
        state,
        Text(f"{_f(st.get('bpm'), '{:.1f}')} BPM", style="bold"),
        Text(f"bar:beat {pos}", style="bold cyan"),
        Text(f"policy {st.get('policy', '-')} ({st.get('mode', '-')})"),
    )
    t = Table(show_header=True, header_style="bold", box=None, padding=(0, 2))
    for col in ("", "p50", "p99", "max"):
        t.add_column(col, justify="right" if col else "left")
    t.add_row(
        "decision latency (us)",
        _f(st.get("decision_p50_us"), "{:.0f}"),
        _f(st.get("decision_p99_us"), "{:.0f}"),
        _f(st.get("decision_max_us"), "{:.0f}"),
    )
    t.add_row(
        "emission lateness (us)",
        _f(st.get("lateness_p50_us"), "{:.0f}"),
        _f(st.get("lateness_p99_us"), "{:.0f}"),
        _f(st.get("lateness_max_us"), "{:.0f}"),
    )
    if st.get("timing") == "follow":
        t.add_row(
            "answer latency (us)",
            _f(st.get("answer_p50_us"), "{:.0f}"),
            _f(st.get("answer_p99_us"), "{:.0f}"),
            _f(st.get("answer_max_us"), "{:.0f}"),
        )
    c = Table.grid(padding=(0, 3))
    misses = int(st.get("misses", 0) or 0)
    errors = int(st.get("input_errors", 0) or 0) + int(st.get("policy_errors", 0) or 0)
    c.add_row(
        f"steps {st.get('steps', 0)}",
        f"notes in {st.get('notes_in', 0)}",
        f"notes out {st.get('notes_out', 0)}",
        Text(f"misses {misses}", style="bold red" if misses else "green"),
        Text(f"errors {errors}", style="bold red" if errors else "green"),
        f"sounding {_pitches(st.get('sounding'))}",
    )
    rows: list[Any] = [top, t, c]
    if st.get("timing") == "follow":
        f = Table.grid(padding=(0, 3))
        how = "adaptive" if st.get("follow_adaptive") else "fixed"
        f.add_row(
            f"follow window {_f(st.get('follow_window_ms'), '{:.1f}')} ms ({how})",
            f"performer {_f(st.get('follow_offset_p50_ms'), '{:+.1f}')} ms vs grid",
            f"answered {st.get('answered', 0)} ({_f(st.get('answered_pct'), '{:.1f}')} %)",
            f"late amended {st.get('late_amended', 0)}",
        )
        rows.append(f)
    if extra:
        e = Table.grid(padding=(0, 3))
        e.add_row(*[f"{k} {v}" for k, v in extra.items()])
        rows.append(e)
    return Panel(Group(*rows), title=title, border_style="cyan")


class Monitor:
    """Refreshes :func:`render` of ``snapshot()`` at ``hz`` on the caller's thread until ``done()``."""

    def __init__(
        self,
        snapshot: Snapshot,
        *,
        title: str = "liveagent",
        hz: float = 4.0,
        console: Console | None = None,
        extra: Callable[[], Mapping[str, str]] | None = None,
    ) -> None:
        self.snapshot = snapshot
        self.title = title
        self.period = 1.0 / max(0.5, hz)
        self.console = console or Console(stderr=False)
        self.extra = extra
        self.frames = 0
        self.render_ns = 0
        """Total time spent building frames (what the monitor costs)."""

    def frame(self) -> Panel:
        t0 = time.perf_counter_ns()
        try:
            st = self.snapshot()
        except Exception as e:  # a snapshot racing a shutdown must not kill the monitor
            st = {"policy": f"(status unavailable: {type(e).__name__})"}
        panel = render(st, self.title, self.extra() if self.extra else None)
        self.frames += 1
        self.render_ns += time.perf_counter_ns() - t0
        return panel

    def run_until(self, done: Callable[[], bool]) -> None:
        with Live(self.frame(), console=self.console, auto_refresh=False, transient=False) as live:
            while not done():
                time.sleep(self.period)
                live.update(self.frame(), refresh=True)
            # The input may end between two refreshes: show the last snapshot it brought.
            live.update(self.frame(), refresh=True)


class MonitorProcess:
    """The monitor in a child process: this process only takes snapshots and writes them as JSON lines.

    Rendering a rich frame costs ~15 ms of Python (measured); in `serve` that would be GIL time taken from
    the engine's process. The child (``python -m liveagent.live.commands.monitor``) renders to the same
    terminal.
    """

    def __init__(self, title: str = "liveagent", hz: float = 4.0) -> None:
        import subprocess
        import sys

        self.period = 1.0 / max(0.5, hz)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "liveagent.live.commands.monitor", "--title", title, "--hz", str(hz)],
            stdin=subprocess.PIPE,
            text=True,
        )

    def feed(self, snapshot: Mapping[str, Any]) -> bool:
        import json

        if self.proc.stdin is None or self.proc.poll() is not None:
            return False
        try:
            self.proc.stdin.write(json.dumps(snapshot, default=str) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            return False
        return True

    def run_until(self, snapshot: Snapshot, done: Callable[[], bool]) -> None:
        while not done():
            time.sleep(self.period)
            try:
                st = snapshot()
            except Exception as e:  # racing a shutdown: show it, keep going
                st = {"policy": f"(status unavailable: {type(e).__name__})"}
            if not self.feed(st):
                return

    def close(self) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except Exception:  # never let the monitor block a shutdown
            self.proc.kill()


def _main() -> None:
    """Child side of :class:`MonitorProcess`: render the latest JSON snapshot from stdin until EOF."""
    import argparse
    import json
    import sys
    import threading

    ap = argparse.ArgumentParser()
    ap.add_argument("--title", default="liveagent")
    ap.add_argument("--hz", type=float, default=4.0)
    a = ap.parse_args()
    latest: dict[str, Any] = {}
    eof = threading.Event()

    def reader() -> None:
        for line in sys.stdin:
            try:
                latest.update(json.loads(line))
            except json.JSONDecodeError:
                continue
        eof.set()

    threading.Thread(target=reader, daemon=True).start()
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C reaches the process group; the parent shuts down
        Monitor(lambda: dict(latest), title=a.title, hz=a.hz).run_until(eof.is_set)


if __name__ == "__main__":
    _main()
