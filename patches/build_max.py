"""Build patches/liveagent.maxpat: the Max 8 counterpart of liveagent-help.pd.

Max's [udpsend]/[udpreceive] speak OSC natively: a message whose selector is an OSC address
(``/liveagent/note 60 100``) goes out as that OSC message (ints as ``i``, floats as ``f``), and incoming OSC
comes out as a Max message with the address as selector, ready for [route].
"""

from __future__ import annotations

import json
from typing import Any

from liveagent.live.commands.duet import one_note_a_beat

# The fixed address space (DESIGN.md, docs/OSC.md).
IN_NOTE = "/liveagent/note"
IN_TEMPO = "/liveagent/tempo"
IN_START = "/liveagent/start"
IN_STOP = "/liveagent/stop"
IN_CONTINUE = "/liveagent/continue"
IN_BEAT = "/liveagent/beat"
IN_TEMPERATURE = "/liveagent/temperature"
IN_MUTE = "/liveagent/mute"
IN_PANIC = "/liveagent/panic"
IN_POLICY = "/liveagent/policy"
IN_STATUS = "/liveagent/status"
IN_STYLE = "/liveagent/style"
IN_MOOD = "/liveagent/mood"
MOODS = ("calm", "busy", "bright", "dark", "neutral")
OUT_NOTE = "/liveagent/out/note"
OUT_BEAT = "/liveagent/out/beat"
OUT_STATUS = "/liveagent/status"
OUT_ERROR = "/liveagent/error"
# `liveagent serve --band satb`: each band voice on its own address (the bass also on OUT_NOTE, for v1).
BAND_VOICES = ("alto", "tenor", "bass")
OUT_BAND_NOTES = tuple(f"/liveagent/out/{v}/note" for v in BAND_VOICES)
BAND_CHANNELS = (2, 3, 4)  # serve --band-channels' default: one MIDI channel per voice

# Ode to Joy, one note a beat; 0 is a rest (the same melody as `liveagent demo --melody ode`).
DEMO_MELODY = one_note_a_beat()


class MaxPatch:
    """Boxes and patchlines of one Max patcher, with inlet/outlet counts of Max 8's objects."""

    def __init__(self) -> None:
        self.boxes: list[dict[str, Any]] = []
        self.lines: list[dict[str, Any]] = []

    def _add(self, box: dict[str, Any]) -> str:
        box["id"] = f"obj-{len(self.boxes) + 1}"
        self.boxes.append({"box": box})
        return box["id"]

    def obj(self, x: float, y: float, text: str, inlets: int, outlets: list[str]) -> str:
        """A [newobj] box; ``outlets`` is its outlettype list (one entry per outlet)."""
        return self._add(
            {
                "maxclass": "newobj",
                "text": text,
                "numinlets": inlets,
                "numoutlets": len(outlets),
                "outlettype": outlets,
                "patching_rect": [x, y, 12.0 + 7.0 * len(text), 22.0],
            }
        )

    def msg(self, x: float, y: float, text: str, width: float | None = None) -> str:
        """A message box as wide as its text, or ``width`` wide with the text wrapped over several lines."""
        w = 16.0 + 7.0 * len(text) if width is None else width
        lines = -(-7 * len(text) // max(1, int(w) - 16))  # ceil: Max wraps a message box's text to its width
        return self._add(
            {
                "maxclass": "message",
                "text": text,
                "numinlets": 2,
                "numoutlets": 1,
                "outlettype": [""],
                "patching_rect": [x, y, w, 22.0 + 14.0 * (lines - 1)],
            }
        )

    def comment(self, x: float, y: float, text: str, width: float = 300.0) -> str:
        lines = max(1, int(len(text) * 7 / width) + 1)
        box: dict[str, Any] = {
            "maxclass": "comment",
            "text": text,
            "numinlets": 1,
            "numoutlets": 0,
            "patching_rect": [x, y, width, 20.0 * lines],
        }
        if lines > 1:
            box["linecount"] = lines
        return self._add(box)

    def ui(self, x: float, y: float, maxclass: str) -> str:
        outlets = {
            "toggle": ["int"],
            "button": ["bang"],
            "number": ["", "bang"],
            "flonum": ["", "bang"],
            "pictslider": ["int", "int"],  # a 2-D pad: x (left outlet) and y, 0..127 each
        }[maxclass]
        sizes = {"toggle": [24.0, 24.0], "button": [24.0, 24.0], "pictslider": [100.0, 100.0]}
        size = sizes.get(maxclass, [50.0, 22.0])
        return self._add(
            {
                "maxclass": maxclass,
                "numinlets": 2 if maxclass == "pictslider" else 1,
                "numoutlets": len(outlets),
                "outlettype": outlets,
                "parameter_enable": 0,
                "patching_rect": [x, y, *size],
            }
        )

    def connect(self, src: str, outlet: int, dst: str, inlet: int = 0) -> None:
        self.lines.append({"patchline": {"source": [src, outlet], "destination": [dst, inlet]}})

    def render(self) -> str:
        patcher = {
            "patcher": {
                "fileversion": 1,
                "appversion": {"major": 8, "minor": 5, "revision": 5, "architecture": "x64", "modernui": 1},
                "classnamespace": "box",
                "rect": [80.0, 80.0, 1180.0, 820.0],
                "bglocked": 0,
                "openinpresentation": 0,
                "default_fontsize": 12.0,
                "default_fontface": 0,
                "default_fontname": "Arial",
                "gridonopen": 1,
                "gridsize": [15.0, 15.0],
                "gridsnaponopen": 1,
                "toolbarvisible": 1,
                "description": "liveagent: play with a liveagent server (real-time RL accompanist) over OSC",
                "tags": "liveagent osc accompaniment",
                "boxes": self.boxes,
                "lines": self.lines,
            }
        }
        return json.dumps(patcher, indent=2) + "\n"


def build_maxpat() -> str:
    p = MaxPatch()
    p.comment(20, 10, "liveagent: a real-time RL accompanist, played over OSC", 500)
    p.comment(
        20,
        34,
        "1) in a terminal: liveagent serve --osc-port 9000 --osc-out 127.0.0.1:9001   "
        "2) click start: the demo melody (or your MIDI keyboard, [notein]) goes to the server, and its "
        "accompaniment comes back on the beat grid to [noteout].",
        1100,
    )

    send = p.obj(20, 700, "udpsend 127.0.0.1 9000", 1, [])
    p.comment(200, 700, "to the server (--osc-port): /liveagent/... messages as OSC", 300)

    # --- transport ---
    p.comment(20, 90, "transport", 100)
    start = p.msg(20, 115, "start")
    stop = p.msg(80, 115, "stop")
    t_start = p.obj(20, 150, "t b b b", 1, ["bang", "bang", "bang"])  # rewind, server, melody
    t_stop = p.obj(80, 180, "t b b", 1, ["bang", "bang"])  # melody off, then the server
    p.connect(start, 0, t_start, 0)
    p.connect(stop, 0, t_stop, 0)
    osc_start = p.msg(20, 215, IN_START)
    osc_stop = p.msg(140, 215, IN_STOP)
    osc_cont = p.msg(250, 215, IN_CONTINUE)
    p.connect(t_start, 1, osc_start, 0)
    p.connect(t_stop, 0, osc_stop, 0)
    for box in (osc_start, osc_stop, osc_cont):
        p.connect(box, 0, send, 0)

    p.comment(380, 90, "tempo (BPM)", 100)
    tempo = p.ui(380, 115, "flonum")
    lb = p.obj(470, 90, "loadbang", 1, ["bang"])
    bpm0 = p.msg(470, 115, "100.")
    p.connect(lb, 0, bpm0, 0)
    p.connect(bpm0, 0, tempo, 0)
    t_tempo = p.obj(380, 150, "t f f", 1, ["float", "float"])
    p.connect(tempo, 0, t_tempo, 0)
    tempo_osc = p.obj(380, 250, f"prepend {IN_TEMPO}", 1, [""])
    p.connect(t_tempo, 0, tempo_osc, 0)
    p.connect(tempo_osc, 0, send, 0)
    beat_ms = p.obj(470, 180, "!/ 60000.", 2, ["float"])
    p.connect(t_tempo, 1, beat_ms, 0)

    # --- performer: MIDI keyboard or the demo melody ---
    p.comment(620, 90, "performer: MIDI keyboard...", 200)
    notein = p.obj(620, 115, "notein", 1, ["int", "int", "int"])
    pack_in = p.obj(620, 150, "pack 0 0", 2, [""])
    p.connect(notein, 0, pack_in, 0)
    p.connect(notein, 1, pack_in, 1)
    p.comment(800, 90, "...or the demo melody", 200)
    demo = p.ui(800, 115, "toggle")
    p.comment(830, 115, "demo on/off", 100)
    demo_on = p.msg(940, 115, "1")
    p.connect(lb, 0, demo_on, 0)
    p.connect(demo_on, 0, demo, 0)
    gate = p.obj(800, 180, "gate", 2, [""])
    p.connect(demo, 0, gate, 0)
    metro = p.obj(800, 150, "metro 600", 2, ["bang"])
    p.connect(beat_ms, 0, metro, 1)
    p.connect(metro, 0, gate, 1)
    on = p.msg(700, 215, "1")
    off = p.msg(740, 215, "0")
    rewind = p.msg(640, 250, "0")
    p.connect(t_start, 2, rewind, 0)
    p.connect(t_start, 0, on, 0)
    p.connect(t_stop, 1, off, 0)
    p.connect(on, 0, metro, 0)
    p.connect(off, 0, metro, 0)
    counter = p.obj(800, 215, f"counter 0 {len(DEMO_MELODY) - 1}", 5, ["int", "", "", "int"])
    p.connect(gate, 0, counter, 0)
    p.connect(rewind, 0, counter, 2)  # third inlet: the next count starts here
    lookup = p.obj(800, 250, "zl.lookup", 2, ["", ""])
    p.connect(counter, 0, lookup, 0)
    melody = p.msg(900, 250, " ".join(str(n) for n in DEMO_MELODY), width=250.0)
    p.connect(lb, 0, melody, 0)
    p.connect(melody, 0, lookup, 1)
    rest = p.obj(800, 285, "sel 0", 2, ["bang", ""])
    p.connect(lookup, 0, rest, 0)
    makenote = p.obj(800, 320, "makenote 90 500", 3, ["float", "float"])
    p.connect(rest, 1, makenote, 0)
    pack_demo = p.obj(800, 355, "pack 0 0", 2, [""])
    p.connect(makenote, 0, pack_demo, 0)
    p.connect(makenote, 1, pack_demo, 1)
    note_osc = p.obj(620, 400, f"prepend {IN_NOTE}", 1, [""])
    p.connect(pack_in, 0, note_osc, 0)
    p.connect(pack_demo, 0, note_osc, 0)
    p.connect(note_osc, 0, send, 0)
    p.comment(780, 400, "pitch velocity; velocity 0 is a note-off", 300)

    # --- controls ---
    p.comment(20, 300, "controls", 100)
    temp = p.ui(20, 325, "flonum")
    p.comment(75, 325, "temperature (0 = greedy)", 170)
    temp_osc = p.obj(20, 360, f"prepend {IN_TEMPERATURE}", 1, [""])
    p.connect(temp, 0, temp_osc, 0)
    mute = p.ui(250, 325, "toggle")
    p.comment(280, 325, "mute", 60)
    mute_osc = p.obj(250, 395, f"prepend {IN_MUTE}", 1, [""])
    p.connect(mute, 0, mute_osc, 0)
    panic = p.ui(350, 325, "button")
    p.comment(380, 325, "panic", 60)
    panic_osc = p.msg(350, 430, IN_PANIC)
    p.connect(panic, 0, panic_osc, 0)
    policy = p.msg(20, 465, f"{IN_POLICY} rules")
    p.comment(20, 490, "swap the policy at the next bar: a name in export/, a .onnx path, or rules", 440)
    status = p.msg(250, 465, IN_STATUS)
    for box in (temp_osc, mute_osc, panic_osc, policy, status):
        p.connect(box, 0, send, 0)

    # --- follow Max's transport: beat pulses for `liveagent serve --clock osc` ---
    p.comment(20, 520, "sync: with the server on --clock osc, send a pulse each beat of Max's transport", 560)
    sync = p.ui(20, 550, "toggle")
    p.comment(50, 550, "beat pulses", 100)
    pulses = p.obj(20, 585, "metro 4n @quantize 4n", 2, ["bang"])
    p.connect(sync, 0, pulses, 0)
    beat_msg = p.msg(20, 620, IN_BEAT)
    p.connect(pulses, 0, beat_msg, 0)
    p.connect(beat_msg, 0, send, 0)

    # --- what comes back: the band's voices first, the v1 note (the bass, or the solo agent), the rest ---
    p.comment(450, 470, "from the server (--osc-out 127.0.0.1:9001)", 400)
    recv = p.obj(450, 495, "udpreceive 9001", 1, [""])
    notes = (*OUT_BAND_NOTES, OUT_NOTE)
    route_notes = p.obj(450, 525, "route " + " ".join(notes), 2, [""] * (len(notes) + 1))
    p.connect(recv, 0, route_notes, 0)
    n_band = len(OUT_BAND_NOTES)
    solo = _band(p, route_notes)
    p.connect(route_notes, n_band, solo, 1)
    unpack_note = p.obj(990, 590, "unpack 0 0", 1, ["int", "int"])
    p.connect(solo, 0, unpack_note, 0)
    noteout = p.obj(990, 620, "noteout", 3, [])
    p.connect(unpack_note, 0, noteout, 0)
    p.connect(unpack_note, 1, noteout, 1)
    p.comment(990, 650, "accompaniment (solo, or the band's bass) to your synth: double-click it", 180)
    route = p.obj(800, 700, f"route {OUT_BEAT} {OUT_STATUS} {OUT_ERROR}", 2, ["", "", "", ""])
    p.connect(route_notes, n_band + 1, route, 0)
    unpack_beat = p.obj(800, 735, "unpack 0 0", 1, ["int", "int"])
    p.connect(route, 0, unpack_beat, 0)
    bar = p.ui(800, 770, "number")
    beat = p.ui(860, 770, "number")
    p.connect(unpack_beat, 0, bar, 0)
    p.connect(unpack_beat, 1, beat, 0)
    p.comment(920, 770, "bar beat", 80)
    printer = p.obj(1000, 735, "print liveagent", 1, [])
    p.connect(route, 1, printer, 0)
    p.connect(route, 2, printer, 0)
    p.comment(1000, 765, "status (key value pairs) and errors, in the Max console", 180)
    _style(p, send)
    return p.render()


def _style(p: MaxPatch, send: str) -> None:
    """The style of a style policy (``liveagent serve --policy style``): a 2-D pad mapped to -1..1 on each
    axis (``/liveagent/style x y``) and a mood menu (``/liveagent/mood NAME``); the server glides a bar."""
    p.comment(20, 740, "style (liveagent serve --policy style): pad x = register, y = calm .. busy", 560)
    pad = p.ui(20, 765, "pictslider")
    sx = p.obj(140, 835, "scale 0 127 -1. 1.", 6, ["float"])
    sy = p.obj(260, 775, "scale 0 127 -1. 1.", 6, ["float"])
    p.connect(pad, 0, sx, 0)
    p.connect(pad, 1, sy, 0)
    t_y = p.obj(260, 805, "t b f", 1, ["bang", "float"])  # y waits in pack's right inlet, then x y goes
    p.connect(sy, 0, t_y, 0)
    pack = p.obj(140, 870, "pack 0. 0.", 2, [""])
    p.connect(sx, 0, pack, 0)
    p.connect(t_y, 1, pack, 1)
    p.connect(t_y, 0, pack, 0)
    style_osc = p.obj(140, 900, f"prepend {IN_STYLE}", 1, [""])
    p.connect(pack, 0, style_osc, 0)
    p.connect(style_osc, 0, send, 0)
    p.comment(480, 765, "moods (each glides over a bar)", 220)
    for i, mood in enumerate(MOODS):
        m = p.msg(480, 790 + 28 * i, f"{IN_MOOD} {mood}")
        p.connect(m, 0, send, 0)


def _band(p: MaxPatch, route_notes: str) -> str:
    """``liveagent serve --band satb``: outlets 0..2 of ``route_notes`` (alto, tenor, bass) each to number
    boxes and a ``[noteout CH]`` on the voice's channel (no ``[makenote]``: the server sends every note-off
    itself). Returns a ``[gate 1 1]`` (open at load) for the v1 note, ``/liveagent/out/note``, which carries
    the bass too: ticking **band** closes it, so the bass is heard once, on its own channel."""
    p.comment(
        20,
        950,
        "band satb: liveagent serve --band satb --osc-port 9000 --osc-out 127.0.0.1:9001 plays alto, tenor"
        " and bass under your melody, each on its own address and MIDI channel (2 3 4); tick band, since"
        " the v1 /liveagent/out/note carries the bass too",
        1100,
    )
    for i, voice in enumerate(BAND_VOICES):
        x = 450.0 + 170.0 * i
        unpack = p.obj(x, 560, "unpack 0 0", 1, ["int", "int"])
        p.connect(route_notes, i, unpack, 0)
        pitch = p.ui(x, 590, "number")
        velocity = p.ui(x + 55, 590, "number")
        p.connect(unpack, 0, pitch, 0)
        p.connect(unpack, 1, velocity, 0)
        noteout = p.obj(x, 620, f"noteout {BAND_CHANNELS[i]}", 3, [])
        p.connect(unpack, 0, noteout, 0)
        p.connect(unpack, 1, noteout, 1)
        p.comment(x, 650, f"{voice}: channel {BAND_CHANNELS[i]}", 160)
    band = p.ui(1070, 525, "toggle")
    p.comment(1100, 525, "band", 60)
    solo_open = p.obj(1070, 555, "== 0", 2, ["int"])
    p.connect(band, 0, solo_open, 0)
    gate = p.obj(990, 560, "gate 1 1", 2, [""])
    p.connect(solo_open, 0, gate, 0)
    return gate
