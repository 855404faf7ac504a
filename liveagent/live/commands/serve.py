"""`liveagent serve`: run the live accompanist (OSC and/or MIDI) until a terminating signal.

SIGINT, SIGTERM, SIGHUP (the terminal or ssh session closes) and SIGQUIT (Ctrl-\\) all end it the same
clean way: every agent note released, recording closed, exit status 0 (measured: within 0.3 s).

Prints exactly one line starting with ``ready`` on stdout once it accepts input (scripts and the demo wait
for it), and one ``stopped ...`` summary line on the way out. Start-up errors (a policy that does not load,
a port that does not exist, a bad flag value) print one clear message on stderr and exit with status 2.
MIDI channels on the command line are 1..16, as musicians count them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType

from liveagent.live.style_rules import mood_arg

log = logging.getLogger(__name__)

STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT") if hasattr(signal, name)
)
"""Every signal a stage machine sends to end a program: each releases every note before the exit (the
defaults of SIGHUP and SIGQUIT would kill the process with a note sounding)."""


def _channels(text: str) -> tuple[int, ...]:
    try:
        chans = tuple(int(c) for c in text.split(",") if c.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"channels must be numbers 1..16, got {text!r}") from None
    if not chans or any(not 1 <= c <= 16 for c in chans):
        raise argparse.ArgumentTypeError(f"channels must be 1..16, got {text!r}")
    return tuple(c - 1 for c in chans)


def _channel(text: str) -> int:
    return _channels(text)[0]


def _style_cc(text: str) -> tuple[int, int]:
    """``X,Y`` (two CC numbers), or ``0`` (the pad off)."""
    try:
        ccs = tuple(int(c) for c in text.split(",") if c.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--style-cc takes X,Y (CC numbers) or 0, got {text!r}") from None
    if ccs == (0,):
        return (0, 0)
    if len(ccs) != 2 or not all(0 <= c <= 119 for c in ccs) or (ccs[0] and ccs[0] == ccs[1]):
        raise argparse.ArgumentTypeError(f"--style-cc takes two different CCs 0..119 (0 = off), got {text!r}")
    return (ccs[0], ccs[1])


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """The serve flags (shared with `liveagent demo`, which passes some of them through)."""
    g = parser.add_argument_group("policy")
    g.add_argument(
        "--policy",
        default=None,
        help="NAME (export/NAME.onnx), PATH.onnx, or rules (default: default; with --band: band)",
    )
    g.add_argument(
        "--band",
        choices=("satb",),
        default="",
        help="play a band: alto, tenor and bass under the performer's soprano (default policy: band)",
    )
    g.add_argument("--temperature", type=float, default=0.0, help="sampling temperature (0 = greedy)")
    g.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling threshold")
    g.add_argument("--seed", type=int, default=None, help="sampler seed")
    g.add_argument("--pitch-min", type=int, default=None, help="lowest agent pitch (default: the policy's)")
    g.add_argument("--pitch-max", type=int, default=None, help="highest agent pitch (default: the policy's)")
    g.add_argument(
        "--mood",
        type=mood_arg,
        default=None,
        metavar="NAME",
        help="a style policy (e.g. --policy style) starts in this mood: calm, busy, bright, dark, neutral, "
        "... (default: the policy's style_default; /liveagent/mood changes it live)",
    )
    g = parser.add_argument_group("clock")
    g.add_argument(
        "--clock",
        choices=("internal", "midi", "osc", "link"),
        default="internal",
        help="beat source (link: Ableton Link, needs the optional extra liveagent[link])",
    )
    g.add_argument(
        "--link-bpm",
        type=float,
        default=None,
        help="--clock link: propose this tempo to the Link session once joined (default: none, join at the "
        "session's tempo; alone, start at --bpm)",
    )
    g.add_argument("--bpm", type=float, default=120.0, help="tempo of the internal/OSC clock")
    g.add_argument("--autostart", action="store_true", help="start playing at once (internal/osc clock)")
    g.add_argument(
        "--start-on-note",
        action="store_true",
        help="internal/osc clock: the performer leads. A start (or --autostart) arms the transport and the "
        "performer's first note-on starts it, as the downbeat, and the grid follows their tempo "
        "(--follow-tempo): the agent plays on the performer's phase, no count-in",
    )
    g.add_argument(
        "--follow-tempo",
        action="store_true",
        help="internal/osc clock: each performer onset pulls the grid's phase and tempo toward it (within "
        "+-10 %% of --bpm), so a performer off --bpm stays on the agent's beat",
    )
    g.add_argument(
        "--lead-ms",
        type=float,
        default=None,
        help="decide each step this long before it is due (default: auto, a quarter step within 5..20 ms)",
    )
    g.add_argument(
        "--follow-window-ms",
        type=float,
        default=0.0,
        metavar="F",
        help="follow timing (react/follow policies): wait at most F ms after each step for the performer's "
        "onset (0 = adaptive, the default: p95 of the performer's late onsets the window can catch + 2 ms, "
        "within 3..50 ms; else 0.1..100)",
    )
    g.add_argument(
        "--follow-chord-ms",
        type=float,
        default=3.0,
        metavar="C",
        help="follow timing: after a step's first note-on, wait C ms for the rest of a chord sent note by "
        "note before answering (default 3; 0 = answer the first note-on at once; at most 30)",
    )
    g.add_argument(
        "--no-wait-for-performer",
        action="store_true",
        help="let the agent lead: play from the first step and through the performer's silences (by "
        "default it rests before the performer's first note and after a bar of performer silence)",
    )
    g.add_argument(
        "--performer-max-hold-bars",
        type=float,
        default=4.0,
        metavar="B",
        help="a performer key held B bars without its note-off while other notes are played is released "
        "(a lost note-off; default 4); a key played alone (a pedal point) after 4 x B bars",
    )
    g = parser.add_argument_group("OSC")
    g.add_argument("--no-osc", action="store_true", help="no OSC input or output")
    g.add_argument("--osc-host", default="127.0.0.1", help="bind address (non-loopback needs --osc-allow)")
    g.add_argument("--osc-port", type=int, default=9000, help="OSC input port (0 = any free port)")
    g.add_argument("--osc-out", default="127.0.0.1:9001", help="HOST:PORT for notes, beats, status, errors")
    g.add_argument(
        "--osc-allow",
        default="",
        help="comma-separated client addresses/networks allowed to send (e.g. 192.168.1.0/24)",
    )
    g.add_argument("--osc-max-rate", type=float, default=2000.0, help="OSC messages/s before flood dropping")
    g.add_argument(
        "--osc-reply", choices=("sender", "out", "both"), default="both", help="where status/error replies go"
    )
    g.add_argument(
        "--osc-noteoff-repeat",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="UDP safety net: send each OSC note-off twice, back to back, before any note-on that follows "
        "(default on; a receiver ignores a note-off for a silent note)",
    )
    g = parser.add_argument_group("MIDI")
    g.add_argument("--midi-in", default=None, help="MIDI input port (name or unique substring; see `ports`)")
    g.add_argument("--midi-out", default=None, help="MIDI output port")
    g.add_argument("--virtual", action="store_true", help="open virtual MIDI ports NAME:in and NAME-out:out")
    g.add_argument("--midi-api", default="auto", help="auto (honours MIDO_BACKEND), jack, alsa")
    g.add_argument("--midi-name", default="liveagent", help="MIDI client name")
    g.add_argument(
        "--midi-channel",
        type=_channels,
        default=(),
        help="performer input channels, e.g. 1,2 (default: all but the output channel)",
    )
    g.add_argument(
        "--midi-out-channel",
        type=_channel,
        default=1,
        help="accompaniment output channel (1..16; default 2, apart from a keyboard's default channel 1)",
    )
    g.add_argument(
        "--band-channels",
        type=_channels,
        default=None,
        help="with --band: each voice's output channel, top-down (default 2,3,4 for alto,tenor,bass)",
    )
    g.add_argument("--midi-thru", action="store_true", help="forward the performer's notes to the output")
    g.add_argument("--midi-clock-out", action="store_true", help="send MIDI clock + Start/Stop (master)")
    g.add_argument(
        "--style-cc",
        type=_style_cc,
        default=(16, 17),
        metavar="X,Y",
        help="MIDI CCs of the style pad on the performer's channels, 0..127 -> -1..1 (default 16,17; "
        "0 = off)",
    )
    g = parser.add_argument_group("session")
    g.add_argument(
        "--record",
        default=None,
        metavar="DIR",
        help="where the session is recorded (MIDI + JSONL, rewritten every bar); default "
        "$LIVEAGENT_RECORD_DIR or ~/.local/share/liveagent/sessions (a default folder that cannot be used "
        "is a warning and the session goes unrecorded; a DIR given here that fails is an error)",
    )
    g.add_argument("--no-record", action="store_true", help="do not record this session")
    g.add_argument("--monitor", action="store_true", help="live terminal monitor (rich)")
    g.add_argument("--no-gc-freeze", action="store_true", help="keep Python's automatic gc on while playing")
    g.add_argument(
        "--rt-priority",
        type=int,
        default=20,
        help="SCHED_FIFO priority of the engine thread (0 = off; falls back to normal without permission)",
    )
    g.add_argument(
        "--osc-rt-priority",
        type=int,
        default=None,
        help="SCHED_FIFO priority of the OSC input thread (default: one below the engine; 0 = normal)",
    )


def configure(parser: argparse.ArgumentParser) -> None:
    add_serve_arguments(parser)
    parser.add_argument("--status-json", action="store_true", help="print the final status as JSON on exit")


def config_from_args(args: argparse.Namespace) -> object:
    from liveagent.live.commands.serve_config import ServeConfig

    policy = args.policy or ("band" if args.band else "default")  # the shipped band for --band
    return ServeConfig(
        policy=policy,
        band=args.band,
        band_channels=args.band_channels if args.band_channels is not None else (1, 2, 3),
        clock=args.clock,
        bpm=args.bpm,
        link_bpm=args.link_bpm,
        autostart=args.autostart,
        osc=not args.no_osc,
        osc_host=args.osc_host,
        osc_port=args.osc_port,
        osc_out=args.osc_out,
        osc_allow=tuple(a.strip() for a in args.osc_allow.split(",") if a.strip()),
        osc_max_rate=args.osc_max_rate,
        osc_reply=args.osc_reply,
        osc_noteoff_repeat=args.osc_noteoff_repeat,
        midi_in=args.midi_in,
        midi_out=args.midi_out,
        virtual=args.virtual,
        midi_api=args.midi_api,
        midi_name=args.midi_name,
        midi_channels=args.midi_channel,
        midi_out_channel=args.midi_out_channel,
        midi_thru=args.midi_thru,
        midi_clock_out=args.midi_clock_out,
        style_cc=args.style_cc,
        mood=args.mood or "",
        temperature=args.temperature,
        top_p=args.top_p,
        seed=args.seed,
        lead_ms=args.lead_ms,
        follow_window_ms=args.follow_window_ms,
        follow_chord_ms=args.follow_chord_ms,
        waits_for_performer=not args.no_wait_for_performer,
        start_on_note=args.start_on_note,
        follow_tempo=args.follow_tempo or args.start_on_note,
        performer_max_hold_bars=args.performer_max_hold_bars,
        pitch_min=args.pitch_min,
        pitch_max=args.pitch_max,
        record=None if args.no_record else (args.record or str(default_session_dir())),
        record_optional=args.record is None,
        gc_freeze=not args.no_gc_freeze,
        rt_priority=args.rt_priority,
        osc_rt_priority=args.osc_rt_priority,
    )


def run(args: argparse.Namespace) -> int:
    from liveagent.live.commands.serve_config import ServeConfig, ServeError
    from liveagent.live.commands.server import Server
    from liveagent.live.io.midi import MidiUnavailableError

    cfg = config_from_args(args)
    assert isinstance(cfg, ServeConfig)
    try:
        server = Server(cfg)
    except (ServeError, MidiUnavailableError, ValueError, OSError) as e:
        print(f"liveagent serve: error: {e}", file=sys.stderr)
        return 2
    if server.warning:
        print(f"liveagent serve: warning: {server.warning}", file=sys.stderr)

    stop = threading.Event()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    old = {s: signal.signal(s, _on_signal) for s in STOP_SIGNALS}
    status = 0
    try:
        server.start()
        print(server.ready_line(), flush=True)
        if args.monitor:
            from liveagent.live.commands.monitor import MonitorProcess

            mon = MonitorProcess(title=f"liveagent serve · {server.policy.name}")

            def _done() -> bool:
                server.housekeeping()  # warnings the input threads only counted, as in the loop below
                return stop.is_set() or not server.engine_alive()

            try:
                mon.run_until(server.status, _done)
            finally:
                mon.close()
        while not stop.wait(0.5):  # (also after a monitor that was closed by its user)
            server.housekeeping()
            if not server.engine_alive():
                break
        if not stop.is_set() and not server.engine_alive():
            print("liveagent serve: error: the engine stopped unexpectedly", file=sys.stderr)
            status = 1
    finally:
        t0 = time.perf_counter()
        server.stop()
        for s, h in old.items():
            signal.signal(s, h)
        final = server.engine.status()
        keys = (
            "steps",
            "misses",
            "notes_in",
            "notes_out",
            "input_errors",
            "decision_p99_us",
            "lateness_p99_us",
            "answer_p95_us",
            "late_amended",
            "answered_pct",
        )
        summary = " ".join(f"{k}={final.get(k)}" for k in keys)
        print(f"stopped {summary} shutdown_ms={1000 * (time.perf_counter() - t0):.1f}", flush=True)
        if args.status_json:
            print(json.dumps(final, default=str), flush=True)
    return status


def default_session_dir() -> Path:
    """Every session is recorded unless asked not to: ``$LIVEAGENT_RECORD_DIR``, else the XDG data dir."""
    override = os.environ.get("LIVEAGENT_RECORD_DIR")
    if override:
        return Path(override)
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "liveagent" / "sessions"
