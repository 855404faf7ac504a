"""`liveagent demo`: the main job end to end, in real time.

A melody (a held-out chorale soprano shipped with the package, or your MIDI file) is played over real OSC
on loopback into a real `liveagent serve` subprocess, which accompanies it live. This process is the
performer and the listener: a sender thread plays the melody on the server's grid (one bar of count-in),
a receiver thread timestamps every note and beat the server sends, and the main thread shows the live
monitor. At the end it writes the duet (MIDI, and a WAV rendered with FluidSynth when it is installed:
performer on piano, agent on cello), a piano roll (PNG) and a timing report (JSON), and prints the emission
lateness measured at the receiver. With ``--band satb`` the server plays a band (alto, tenor, bass under the
melody as soprano) and the files hold the four parts (`band_demo.py`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from liveagent.live.style_rules import mood_arg

log = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--melody",
        default="chorale",
        help="chorale (default), a shipped melody name, ode, or a MIDI file path",
    )
    parser.add_argument("--track", default=None, help="track of a MIDI file: name:X, index:N or channel:N")
    parser.add_argument("--list", action="store_true", help="list the shipped melodies and exit")
    parser.add_argument("--out", default="demo-out", help="output directory")
    parser.add_argument("--bpm", type=float, default=100.0, help="tempo")
    parser.add_argument("--bars", type=int, default=8, help="play the first N bars of the melody (0 = all)")
    parser.add_argument(
        "--policy",
        default=None,
        help="policy for the server (default falls back to rules; with --band: the shipped band)",
    )
    parser.add_argument("--temperature", type=float, default=0.0, help="sampling temperature (0 = greedy)")
    parser.add_argument(
        "--mood",
        type=mood_arg,
        default=None,
        help="with a style policy (--policy style): its mood (calm, busy, bright, dark)",
    )
    parser.add_argument("--seed", type=int, default=None, help="sampler seed")
    parser.add_argument(
        "--band",
        choices=["satb"],
        default=None,
        help="a band instead of one agent: satb = alto, tenor, bass under the melody (four parts written)",
    )
    parser.add_argument("--no-monitor", action="store_true", help="no live monitor (e.g. in CI logs)")


def _wait_ready(proc: subprocess.Popen[str], timeout: float = 30.0) -> str:
    assert proc.stdout is not None
    box: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("ready"):
                box.append(line.strip())
                return

    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(timeout)
    if not box:
        raise RuntimeError("the server did not become ready")
    return box[0]


def _num(v: object) -> str:
    return f"{v:.0f}" if isinstance(v, int | float) else str(v)


def _pct(v: object) -> str:
    return f"{v:.1f}" if isinstance(v, int | float) else str(v)


def _sleep_until(t_ns: int) -> None:
    while True:
        d = t_ns - time.perf_counter_ns()
        if d <= 0:
            return
        if d > 2_000_000:
            time.sleep((d - 1_000_000) / 1e9)
        elif d > 300_000:
            time.sleep(0.0002)


def _render_duet(midi_path: Path, wav_path: Path) -> tuple[str | None, str]:
    """duet.wav through FluidSynth (performer on piano, agent on cello): (its path or None, the line to
    print). Missing FluidSynth or soundfont, or a failed rendering, is said and never fails the demo."""
    from liveagent.live.commands.render import RenderError, RenderUnavailableError, render_wav

    try:
        rms = render_wav(midi_path, wav_path)
    except RenderUnavailableError as e:
        return None, f"no duet.wav: {e}"
    except RenderError as e:
        log.warning("rendering the duet failed: %s", e)
        return None, f"no duet.wav: {e}"
    return str(wav_path), f"{wav_path}  (performer: piano, agent: cello; RMS {rms:.3f})"


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from pythonosc.udp_client import SimpleUDPClient

    from liveagent.live.commands.duet import (
        agent_notes,
        list_melodies,
        load_melody,
        performer_events,
        plot_piano_roll,
        write_duet_midi,
    )
    from liveagent.live.io.osc import OUT_BEAT, OUT_NOTE, build_message
    from liveagent.live.io.receiver import (
        OscReceiver,
        emission_times,
        follow_window_ms,
        grid_of,
        lateness_ns,
        summarize_us,
    )
    from liveagent.music.tokens import Grid

    if args.list:
        for name in list_melodies():
            print(name)
        return 0
    grid = Grid()
    try:
        name, melody = load_melody(args.melody, grid, bars=args.bars or None, track=args.track)
    except ValueError as e:
        print(f"liveagent demo: error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rx = OscReceiver()
    policy = args.policy or ("band" if args.band else "default")  # serve --band refuses a one-line policy
    cmd = [
        sys.executable, "-m", "liveagent", "serve", "--osc-port", "0", "--osc-out", f"127.0.0.1:{rx.port}",
        "--osc-reply", "out", "--bpm", f"{args.bpm:g}", "--policy", policy,
        "--temperature", f"{args.temperature:g}", "--record", str(out / "server-recording"),
    ]  # fmt: skip
    if args.seed is not None:
        cmd += ["--seed", str(args.seed)]
    if args.mood:
        cmd += ["--mood", args.mood]
    if args.band:
        cmd += ["--band", args.band]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    t_launch = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    stderr_lines: list[str] = []
    threading.Thread(
        target=lambda: stderr_lines.extend(proc.stderr or []), name="serve-stderr", daemon=True
    ).start()
    try:
        try:
            ready = _wait_ready(proc)
        except RuntimeError:
            proc.wait(timeout=10)
            print("liveagent demo: error: `liveagent serve` failed to start:", file=sys.stderr)
            print("".join(stderr_lines[-20:]), file=sys.stderr)
            return 2
        cold_start = time.perf_counter() - t_launch
        fields = dict(p.split("=", 1) for p in ready.split()[1:] if "=" in p)
        osc_port = int(fields["osc"].rsplit(":", 1)[1])
        client = SimpleUDPClient("127.0.0.1", osc_port)
        for w in stderr_lines:
            if "warning" in w:
                print(w.strip())
        print(
            f"liveagent demo: {name}, {len(melody)} notes, {args.bars or 'all'} bars at {args.bpm:g} BPM; "
            f"policy {fields.get('policy')}; server ready in {cold_start:.2f} s"
        )
        # start, then learn the server's grid (T_0 and step length) from its status
        n_status = rx.status_count
        client.send_message("/liveagent/start", [])
        time.sleep(0.02)
        grid_t = None
        for _ in range(50):
            client.send_message("/liveagent/status", [])
            st = rx.wait_status(n_status, timeout=0.2)
            n_status = rx.status_count
            grid_t = grid_of(st)
            if grid_t is not None:
                break
        if grid_t is None:
            print("liveagent demo: error: the server did not report its grid", file=sys.stderr)
            return 1
        t0_ns, step_ns = grid_t
        count_in = grid.steps_per_bar
        events = performer_events(melody, count_in)
        end_step = max(s for s, _, _ in events) + grid.steps_per_bar
        msgs = [(t0_ns + round(s * step_ns), build_message("/liveagent/note", [p, v])) for s, p, v in events]
        sock = client._sock
        dest = ("127.0.0.1", osc_port)
        done = threading.Event()
        sent_lateness: list[int] = []

        def perform() -> None:
            if hasattr(os, "sched_setscheduler"):  # a performer keeps time too (when allowed)
                with contextlib.suppress(OSError):
                    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(25))
            for t, data in msgs:
                _sleep_until(t)
                sock.sendto(data, dest)
                sent_lateness.append(time.perf_counter_ns() - t)
            _sleep_until(t0_ns + round(end_step * step_ns))
            done.set()

        performer = threading.Thread(target=perform, name="performer", daemon=True)
        performer.start()
        if args.no_monitor:
            done.wait()
        else:
            from liveagent.live.commands.monitor import Monitor

            def snapshot() -> dict[str, Any]:
                client.send_message("/liveagent/status", [])
                return rx.status

            total_bars = end_step // grid.steps_per_bar

            def extra() -> dict[str, str]:
                return {"melody": name, "bars": str(total_bars), "out": str(out)}

            Monitor(snapshot, title="liveagent demo", extra=extra).run_until(done.is_set)
        t_stop = time.perf_counter_ns()
        client.send_message("/liveagent/stop", [])
        time.sleep(0.2)
        n_status = rx.status_count
        client.send_message("/liveagent/status", [])
        final = rx.wait_status(n_status, timeout=2.0)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
        rx.close()

    if args.band:
        from liveagent.live.commands.band_demo import BandRun, finish_band

        return finish_band(
            BandRun(
                out=out,
                melody_name=name,
                melody=melody,
                grid=grid,
                count_in=count_in,
                bpm=args.bpm,
                policy=fields.get("policy"),
                band=args.band,
                messages=list(rx.messages),
                t0_ns=t0_ns,
                step_ns=step_ns,
                t_stop=t_stop,
                end_step=end_step,
                cold_start_s=cold_start,
                sent_lateness_ns=sent_lateness,
                final=final,
            )
        )
    # -- the duet as heard by the receiver
    emitted = [t for t in emission_times(rx) if t < t_stop]
    late = lateness_ns(emitted, t0_ns, step_ns)
    late_summary = summarize_us(late)
    note_events = []
    for t, p in rx.of(OUT_NOTE):
        if t < t_stop:
            note_events.append((round((t - t0_ns) / step_ns), int(p[0]), int(p[1])))
    agent = agent_notes(note_events)
    performer_notes = [type(n)(n.start + count_in, n.length, n.pitch, n.velocity) for n in melody]
    midi_path = write_duet_midi(out / "duet.mid", performer_notes, agent, args.bpm, grid)
    png_path = plot_piano_roll(
        out / "pianoroll.png",
        performer_notes,
        agent,
        grid,
        title=f"{name} · policy {fields.get('policy')} · {args.bpm:g} BPM (blue: performer, orange: agent)",
    )
    wav_path, sound_note = _render_duet(midi_path, out / "duet.wav")
    beats = len([1 for t, _ in rx.of(OUT_BEAT) if t < t_stop])
    report = {
        "melody": name,
        "policy": fields.get("policy"),
        "bpm": args.bpm,
        "bars": end_step // grid.steps_per_bar,
        "cold_start_s": round(cold_start, 3),
        "performer_notes": len(melody),
        "agent_notes": len(agent),
        "beats_received": beats,
        "emission_lateness_at_receiver_us": late_summary,
        "performer_send_lateness_us": summarize_us(np.asarray(sent_lateness, dtype=np.float64)),
        "misses": final.get("misses"),
        "steps": final.get("steps"),
        "decision_latency_us": {
            "p50": final.get("decision_p50_us"),
            "p99": final.get("decision_p99_us"),
            "max": final.get("decision_max_us"),
        },
        "server_lateness_us": {"p50": final.get("lateness_p50_us"), "p99": final.get("lateness_p99_us")},
        "timing": final.get("timing"),
        "answer_latency_us": {q: final.get(f"answer_{q}_us") for q in ("p50", "p95", "p99", "max")},
        "late_amended": final.get("late_amended"),
        "answered_pct": round(float(final.get("answered_pct", 0.0)), 1),
        "follow_window_ms": follow_window_ms(final),
        "input_errors": final.get("input_errors"),
        "files": {"duet": str(midi_path), "pianoroll": str(png_path), "sound": wav_path},
    }
    (out / "timing.json").write_text(json.dumps(report, indent=2) + "\n")
    print()  # the monitor leaves the cursor at the end of its panel
    print(f"duet:       {midi_path}  ({len(melody)} performer notes, {len(agent)} agent notes)")
    print(f"piano roll: {png_path}")
    print(f"sound:      {sound_note}")
    print(f"timing:     {out / 'timing.json'}")
    print(
        f"emission lateness at the receiver: p50 {late_summary['p50']:.0f} us, "
        f"p99 {late_summary['p99']:.0f} us, "
        f"max {late_summary['max']:.0f} us over {late_summary['n']} emissions; misses {final.get('misses')}; "
        f"decision latency p50 {_num(final.get('decision_p50_us'))} us, "
        f"p99 {_num(final.get('decision_p99_us'))} us"
    )
    if final.get("timing") == "follow":
        print(
            f"follow timing: answer latency p50 {_num(final.get('answer_p50_us'))} us, "
            f"p95 {_num(final.get('answer_p95_us'))} us over {final.get('answered')} onsets "
            f"({_pct(final.get('answered_pct'))} % answered); window "
            f"{follow_window_ms(final)} ms; late onsets amended {final.get('late_amended')}"
        )
    return 0
