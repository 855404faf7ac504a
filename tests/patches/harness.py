"""The headless Pd harness: a patch that instantiates the shipped [liveagent] abstraction, plays a melody into
the server and logs what comes back, with Pd's own timestamps, to a text file. Plus the log parser.

The patch is written at test time (ports are chosen free then) with patches/pdwriter.py, the same writer
that builds the shipped patches. Log lines (one per event, Pd's [textfile] format, ``;`` terminated):
``KIND REAL_MS LOGICAL_MS ARGS...`` with REAL_MS from [realtime] and LOGICAL_MS from [timer], both counted
from the harness's load. KIND: ``note`` (pitch velocity, from outlet 1), ``beat`` (bar beat, outlet 2),
``info`` (outlet 3: status, error, connected), ``sent`` (pitch velocity the harness played), ``mark``
(start, stop).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PATCHES = REPO / "patches"
if str(PATCHES) not in sys.path:
    sys.path.insert(0, str(PATCHES))

from pdwriter import Canvas  # noqa: E402


@dataclass(frozen=True)
class HarnessConfig:
    """What the harness plays and where it talks."""

    server_port: int
    """UDP port of the server's OSC input (creation argument 2 of [liveagent])."""
    reply_port: int
    """UDP port [liveagent] listens on for the server's notes and beats (creation argument 3)."""
    log_path: Path
    """Where the harness writes its event log (no spaces: it is a Pd symbol)."""
    bpm: float = 120.0
    melody: tuple[int, ...] = (60, 62, 64, 65, 67, 65, 64, 62, 60, 64, 67, 72)
    """One note a beat, each held for ``gate`` of a beat."""
    gate: float = 0.8
    lead_in_ms: float = 300.0
    """From load to /liveagent/start (lets both sockets open)."""
    tail_ms: float = 700.0
    """From /liveagent/stop to writing the log and quitting (collects the note-offs of the stop)."""


def _recorder(c: Canvas, x: int, y: int, kind: str, reset: int, sink: int) -> int:
    """A chain that turns a list L into ``add KIND REAL LOGICAL L...`` for [textfile]; returns its input.

    Each recorder owns a [realtime] and a [timer], all reset by the same bang at load, so the stamps of every
    kind share one origin."""
    t = c.obj(x, y, "t a b b")
    real = c.obj(x + 60, y + 30, "realtime")
    logical = c.obj(x + 140, y + 30, "timer")
    c.connect(reset, 0, real, 0)
    c.connect(reset, 0, logical, 0)
    stamps = c.obj(x + 60, y + 60, "pack f f")
    c.connect(t, 2, logical, 1)  # fires first: the logical time waits in the cold inlet
    c.connect(logical, 0, stamps, 1)
    c.connect(t, 1, real, 1)
    c.connect(real, 0, stamps, 0)
    prepend = c.obj(x, y + 90, "list prepend")
    c.connect(stamps, 0, prepend, 1)
    c.connect(t, 0, prepend, 0)
    label = c.obj(x, y + 120, f"list prepend add {kind}")
    c.connect(prepend, 0, label, 0)
    trim = c.obj(x, y + 150, "list trim")
    c.connect(label, 0, trim, 0)
    c.connect(trim, 0, sink, 0)
    return t


def build_harness(cfg: HarnessConfig) -> str:
    beat_ms = 60000.0 / cfg.bpm
    c = Canvas(width=1200, height=800)
    lb = c.obj(20, 20, "loadbang")
    reset = c.obj(20, 50, "t b b")  # outlet 1 resets every recorder's clocks, outlet 0 starts the script
    c.connect(lb, 0, reset, 0)
    textfile = c.obj(700, 600, "textfile")
    # a bang source every recorder's [realtime]/[timer] left inlet hangs on
    clocks = c.obj(200, 50, "t b")
    c.connect(reset, 1, clocks, 0)

    la = c.obj(20, 400, f"liveagent 127.0.0.1 {cfg.server_port} {cfg.reply_port}")
    for i, kind in enumerate(("note", "beat", "info")):
        rec = _recorder(c, 20 + 230 * i, 450, kind, clocks, textfile)
        c.connect(la, i, rec, 0)

    # the script: tempo, start, melody, stop, write, quit
    lead = c.obj(20, 80, f"delay {cfg.lead_in_ms}")
    c.connect(reset, 0, lead, 0)
    go = c.obj(20, 110, "t b b b")
    c.connect(lead, 0, go, 0)
    tempo = c.msg(200, 140, f"tempo {cfg.bpm}")
    start = c.msg(130, 140, "start")
    c.connect(go, 2, tempo, 0)
    c.connect(go, 1, start, 0)
    c.connect(tempo, 0, la, 1)
    c.connect(start, 0, la, 1)
    mark_start = c.msg(260, 110, "start")
    c.connect(go, 1, mark_start, 0)
    marks = _recorder(c, 920, 450, "mark", clocks, textfile)
    as_list_start = c.obj(260, 140, "list")
    c.connect(mark_start, 0, as_list_start, 0)
    c.connect(as_list_start, 0, marks, 0)

    metro = c.obj(20, 170, f"metro {beat_ms}")
    c.connect(go, 0, metro, 0)
    idx = c.obj(20, 200, "f")
    inc = c.obj(60, 200, "+ 1")
    c.connect(metro, 0, idx, 0)
    c.connect(idx, 0, inc, 0)
    c.connect(inc, 0, idx, 1)
    split = c.obj(20, 230, f"moses {len(cfg.melody)}")
    c.connect(idx, 0, split, 0)
    get = c.msg(20, 260, "get \\$1 1")
    c.connect(split, 0, get, 0)
    store = c.obj(20, 290, "list store " + " ".join(str(p) for p in cfg.melody))
    c.connect(get, 0, store, 0)
    makenote = c.obj(20, 320, f"makenote 96 {beat_ms * cfg.gate}")
    c.connect(store, 0, makenote, 0)
    pack = c.obj(20, 350, "pack f f")
    c.connect(makenote, 0, pack, 0)
    c.connect(makenote, 1, pack, 1)
    c.connect(pack, 0, la, 0)
    sent = _recorder(c, 690, 450, "sent", clocks, textfile)
    c.connect(pack, 0, sent, 0)

    # after the melody: metro off, /liveagent/status, /liveagent/stop, wait, write, quit
    done = c.obj(400, 230, "t b b b")  # melody off, ask for the status while playing, then stop
    c.connect(split, 1, done, 0)
    off = c.msg(400, 170, "stop")
    c.connect(done, 2, off, 0)
    status = c.msg(560, 230, "status")
    c.connect(done, 1, status, 0)
    c.connect(status, 0, la, 2)
    c.connect(off, 0, metro, 0)
    stop = c.msg(460, 260, "stop")
    c.connect(done, 0, stop, 0)
    c.connect(stop, 0, la, 1)
    as_list_stop = c.obj(520, 260, "list")
    c.connect(stop, 0, as_list_stop, 0)
    c.connect(as_list_stop, 0, marks, 0)
    tail = c.obj(400, 290, f"delay {cfg.tail_ms}")
    c.connect(done, 0, tail, 0)
    finish = c.obj(400, 320, "t b b")
    c.connect(tail, 0, finish, 0)
    write = c.msg(400, 350, f"write {cfg.log_path}")
    c.connect(finish, 1, write, 0)
    c.connect(write, 0, textfile, 0)
    quit_msg = c.msg(400, 380, "\\; pd quit")
    c.connect(finish, 0, quit_msg, 0)
    return c.render() + "\n"


@dataclass(frozen=True)
class Event:
    kind: str
    real_ms: float
    logical_ms: float
    args: tuple[str, ...]


def parse_log(text: str) -> list[Event]:
    """Parse the harness's [textfile] output (``;``-terminated lines, possibly wrapped by Pd at 60 chars)."""
    events = []
    for record in text.replace("\n", " ").split(";"):
        words = record.split()
        if len(words) < 3:
            continue
        events.append(Event(words[0], float(words[1]), float(words[2]), tuple(words[3:])))
    return events


def pd_command(*patches: Path, extra: tuple[str, ...] = ()) -> list[str]:
    """Headless Pd: no GUI, audio or MIDI, no user preferences; 1 ms scheduler grain; patches/ on the path."""
    return [
        "pd",
        "-nogui",
        "-nosound",
        "-nomidi",
        "-noprefs",
        "-stderr",
        "-sleepgrain",
        "1",
        "-path",
        str(PATCHES),
        *extra,
        *(str(p) for p in patches),
    ]


def quitter(delay_ms: float) -> str:
    """A patch that quits Pd ``delay_ms`` after load (opened next to the patch under test)."""
    c = Canvas(width=300, height=200)
    lb = c.obj(20, 20, "loadbang")
    d = c.obj(20, 50, f"delay {delay_ms}")
    q = c.msg(20, 80, "\\; pd quit")
    c.chain(lb, d, q)
    return c.render() + "\n"
