"""Build patches/liveagent.pd (the abstraction) and patches/liveagent-help.pd (its help patch).

Run ``python patches/build_patches.py`` after editing; a test checks the shipped files match this code.
Only vanilla objects (Pd >= 0.51): oscformat/oscparse, netsend/netreceive -u -b, list store, pdcontrol.
"""

from __future__ import annotations

from build_band import abstraction_band_outlets, help_band_section
from pdwriter import Canvas

from liveagent.live.commands.duet import one_note_a_beat

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9000
DEFAULT_REPLY_PORT = 9001


def _sender(c: Canvas, x: int, y: int, name: str, routes: list[tuple[str, list[str], str]]) -> int:
    """[pd NAME]: an inlet, a [route] on the message name, and per name the [oscformat] chain it needs.

    ``routes``: (selector, boxes, otherwise) where boxes is the chain from the route outlet to [s $0-out].
    When the chain starts with [route bang] (a message with or without an argument), ``otherwise`` is
    where its right outlet (the argument) goes: "last" = the chain's last box, else a new
    [oscformat] of its own. Boxes stand in a reverse staircase under their outlets so no wire crosses a box.
    """
    rows = sum(len(chain) for _, chain, _ in routes)
    box, s = c.subpatch(x, y, name, 900, 160 + 30 * rows)
    inl = s.obj(20, 20, "inlet")
    route = s.obj(20, 60, "route " + " ".join(sel for sel, _, _ in routes))
    s.connect(inl, 0, route, 0)
    out = s.obj(20, 120 + 30 * rows, "s \\$0-out")
    n = len(routes)
    route_width = 7 * (6 + len(" ".join(sel for sel, _, _ in routes)))
    top = 100
    for k in reversed(range(n)):  # the last outlet's chain highest, so wires run straight down past boxes
        _, chain, otherwise = routes[k]
        ox = 20 + int(k * route_width / n)  # outlet k sits at about k/n of the route box's width
        prev, outlet = route, k
        first = route
        for j, text in enumerate(chain):
            cur = s.msg(ox, top, text[4:]) if text.startswith("msg:") else s.obj(ox, top, text)
            s.connect(prev, outlet, cur, 0)
            if j == 0:
                first = cur
            prev, outlet = cur, 0
            top += 30
        if not chain[-1].startswith("s "):  # a chain that ends in [s ...] sends elsewhere
            s.connect(prev, 0, out, 0)
        if otherwise == "last":
            s.connect(first, 1, prev, 0)
        elif otherwise:
            alt = s.obj(ox + 7 * len(chain[-1]) + 40, top - 30, otherwise)
            s.connect(first, 1, alt, 0)
            s.connect(alt, 0, out, 0)
    return box


def build_abstraction() -> str:
    """``[liveagent HOST PORT REPLY-PORT]``: three inlets (notes, transport, controls), six outlets (the v1
    three, then the band's alto, tenor, bass)."""
    c = Canvas(width=1220, height=620)
    c.text(
        20,
        10,
        "liveagent: a client of the liveagent server over OSC/UDP (Pd vanilla). See liveagent-help.pd",
        width=100,
    )
    c.text(20, 34, "args: host server-port reply-port (default 127.0.0.1 9000 9001)", width=100)

    # --- inlets (ordered left to right by x) and what each sends ---
    notes_in = c.obj(20, 70, "inlet")
    transport_in = c.obj(330, 70, "inlet")
    controls_in = c.obj(640, 70, "inlet")
    c.text(70, 70, "pitch velocity (velocity 0 = off) / note P V / noteoff P", width=34)
    c.text(380, 70, "start / stop / continue / tempo F (or F) / beat / beat I", width=34)
    c.text(
        690,
        70,
        "temperature F / follow MS / mute 0|1 / panic / policy S / style X Y / mood NAME / status / "
        "connect HOST PORT / listen PORT",
        width=40,
    )
    notes = _sender(
        c,
        20,
        130,
        "send-notes",
        [
            ("list", ["oscformat -f ii liveagent note"], ""),
            ("note", ["oscformat -f ii liveagent note"], ""),
            ("noteoff", ["oscformat -f i liveagent noteoff"], ""),
        ],
    )
    transport = _sender(
        c,
        330,
        130,
        "send-transport",
        [
            ("start", ["oscformat liveagent start"], ""),
            ("stop", ["oscformat liveagent stop"], ""),
            ("continue", ["oscformat liveagent continue"], ""),
            ("tempo", ["oscformat -f f liveagent tempo"], ""),
            ("float", ["oscformat -f f liveagent tempo"], ""),
            ("beat", ["route bang", "oscformat liveagent beat"], "oscformat -f i liveagent beat"),
        ],
    )
    controls = _sender(
        c,
        640,
        130,
        "send-controls",
        [
            ("temperature", ["oscformat -f f liveagent temperature"], ""),
            ("follow", ["oscformat -f f liveagent follow"], ""),
            ("mute", ["route bang", "msg:1", "oscformat -f i liveagent mute"], "last"),
            ("panic", ["oscformat liveagent panic"], ""),
            # "policy foo" leaves [route] as the message "foo": [list] makes it the list "foo"
            ("policy", ["list", "oscformat -f s liveagent policy"], ""),
            # "style X Y" (the pad) or "style Z1 ... ZD" (the latent): floats, as many as given
            ("style", ["list", "oscformat liveagent style"], ""),
            ("mood", ["list", "oscformat -f s liveagent mood"], ""),
            ("status", ["oscformat liveagent status"], ""),
            ("connect", ["s \\$0-connect"], ""),
            ("listen", ["s \\$0-listen"], ""),
        ],
    )
    c.connect(notes_in, 0, notes, 0)
    c.connect(transport_in, 0, transport, 0)
    c.connect(controls_in, 0, controls, 0)

    # --- creation arguments with defaults: args ++ defaults[len(args):] ---
    c.text(20, 190, "arguments, with defaults", width=30)
    lb = c.obj(20, 215, "loadbang")
    ask = c.msg(20, 245, "args")
    pdcontrol = c.obj(20, 275, "pdcontrol")
    t_args = c.obj(20, 305, "t a a")
    c.chain(lb, ask, pdcontrol, t_args)
    length = c.obj(110, 335, "list length")  # fires first (right outlet)
    c.connect(t_args, 1, length, 0)
    t_len = c.obj(110, 365, "t b f")
    c.connect(length, 0, t_len, 0)
    defaults = c.msg(110, 395, f"{DEFAULT_HOST} {DEFAULT_PORT} {DEFAULT_REPLY_PORT}")
    c.connect(t_len, 0, defaults, 0)
    split = c.obj(110, 425, "list split")
    c.connect(t_len, 1, split, 1)
    c.connect(defaults, 0, split, 0)
    append = c.obj(20, 455, "list append")
    c.connect(split, 1, append, 1)
    c.connect(t_args, 0, append, 0)
    unpack = c.obj(20, 485, "unpack s f f")
    c.connect(append, 0, unpack, 0)
    pack_hp = c.obj(20, 515, "pack s f")
    c.connect(unpack, 0, pack_hp, 0)
    c.connect(unpack, 1, pack_hp, 1)
    c.connect(pack_hp, 0, c.obj(20, 545, "s \\$0-connect"), 0)
    c.connect(unpack, 2, c.obj(140, 515, "s \\$0-listen"), 0)

    # --- outgoing OSC ---
    c.text(330, 190, "to the server", width=20)
    r_out = c.obj(330, 215, "r \\$0-out")
    send = c.obj(330, 245, "list prepend send")
    trim_send = c.obj(330, 275, "list trim")
    r_connect = c.obj(450, 275, "r \\$0-connect")
    connect_msg = c.msg(450, 305, "connect \\$1 \\$2")
    netsend = c.obj(330, 335, "netsend -u -b")
    c.chain(r_out, send, trim_send, netsend)
    c.chain(r_connect, connect_msg)
    c.connect(connect_msg, 0, netsend, 0)
    connected = c.obj(330, 365, "list prepend connected")
    c.connect(netsend, 0, connected, 0)
    c.connect(connected, 0, c.obj(330, 395, "s \\$0-info"), 0)

    # --- incoming OSC: /liveagent/out/note, /liveagent/out/beat, /liveagent/status, /liveagent/error ---
    c.text(640, 190, "from the server: numbers arrive as floats", width=44)
    r_listen = c.obj(640, 215, "r \\$0-listen")
    listen_msg = c.msg(640, 245, "listen \\$1")
    netreceive = c.obj(640, 275, "netreceive -u -b")
    oscparse = c.obj(640, 305, "oscparse")
    trim_in = c.obj(640, 335, "list trim")
    r_ns = c.obj(640, 365, "route liveagent")
    r_kind = c.obj(640, 395, "route out status error")
    c.chain(r_listen, listen_msg, netreceive, oscparse, trim_in, r_ns, r_kind)
    r_out_kind = c.obj(640, 455, "route note beat")
    c.connect(r_kind, 0, r_out_kind, 0)
    status_pre = c.obj(700, 425, "list prepend status")
    error_pre = c.obj(860, 395, "list prepend error")
    c.connect(r_kind, 1, status_pre, 0)
    c.connect(r_kind, 2, error_pre, 0)
    r_info = c.obj(860, 455, "r \\$0-info")
    trim_info = c.obj(820, 500, "list trim")
    for src in (status_pre, error_pre, r_info):
        c.connect(src, 0, trim_info, 0)

    # --- outlets (ordered left to right by x) ---
    notes_out = c.obj(640, 550, "outlet")
    beat_out = c.obj(730, 550, "outlet")
    info_out = c.obj(820, 550, "outlet")
    c.connect(r_out_kind, 0, notes_out, 0)
    c.connect(r_out_kind, 1, beat_out, 0)
    c.connect(trim_info, 0, info_out, 0)
    abstraction_band_outlets(c, r_out_kind, 2)
    c.text(
        640,
        575,
        "notes: pitch velocity | beat: bar beat | status ... / error ... / connected 0|1 | band (serve --band"
        " satb): alto / tenor / bass pitch velocity",
        width=78,
    )
    return c.render() + "\n"


def _synth(c: Canvas, x: int, y: int, name: str, wave: str, gain: float) -> int:
    """A monophonic voice in a subpatch: ``pitch velocity`` in, sound out of [dac~]. A note-off only ends the
    pitch that sounds, so a legato line (the next onset before the last note-off) is not cut short."""
    box, s = c.subpatch(x, y, name, 560, 420)
    s.text(
        200,
        10,
        "velocity arrives first ([unpack] fires right to left) and waits in [f] - then the pitch "
        "decides: velocity >= 1 starts a note, 0 ends it if it is the pitch that sounds",
        width=44,
    )
    inl = s.obj(20, 20, "inlet")
    unpack = s.obj(20, 50, "unpack f f")
    s.connect(inl, 0, unpack, 0)
    vel = s.obj(20, 110, "f")
    s.connect(unpack, 1, vel, 1)
    t_pitch = s.obj(20, 80, "t b f")
    s.connect(unpack, 0, t_pitch, 0)
    pitch_on = s.obj(200, 170, "f")
    pitch_off = s.obj(100, 170, "f")
    s.connect(t_pitch, 1, pitch_on, 1)
    s.connect(t_pitch, 1, pitch_off, 1)
    s.connect(t_pitch, 0, vel, 0)
    moses = s.obj(20, 140, "moses 1")
    s.connect(vel, 0, moses, 0)
    # off: release only if it is the sounding pitch
    s.connect(moses, 0, pitch_off, 0)
    same = s.obj(100, 200, "==")
    s.connect(pitch_off, 0, same, 0)
    sel = s.obj(100, 230, "sel 1")
    s.connect(same, 0, sel, 0)
    release = s.msg(100, 260, "0 80")
    s.connect(sel, 0, release, 0)
    # on: envelope from the velocity, then the pitch
    on = s.obj(200, 140, "t b f")
    s.connect(moses, 1, on, 0)
    s.connect(on, 0, pitch_on, 0)
    amp = s.obj(320, 170, "/ 127")
    s.connect(on, 1, amp, 0)
    attack = s.msg(320, 200, "\\$1 5 \\, 0 2000 5")
    s.connect(amp, 0, attack, 0)
    t_cur = s.obj(200, 200, "t f f")
    s.connect(pitch_on, 0, t_cur, 0)
    s.connect(t_cur, 1, same, 1)
    mtof = s.obj(200, 230, "mtof")
    s.connect(t_cur, 0, mtof, 0)
    osc = s.obj(200, 260, wave)
    s.connect(mtof, 0, osc, 0)
    lop = s.obj(200, 290, "lop~ 3000")
    s.connect(osc, 0, lop, 0)
    env = s.obj(320, 290, "vline~")
    s.connect(release, 0, env, 0)
    s.connect(attack, 0, env, 0)
    vca = s.obj(200, 320, "*~")
    s.connect(lop, 0, vca, 0)
    s.connect(env, 0, vca, 1)
    g = s.obj(200, 350, f"*~ {gain}")
    s.connect(vca, 0, g, 0)
    dac = s.obj(200, 380, "dac~")
    s.connect(g, 0, dac, 0)
    s.connect(g, 0, dac, 1)
    return box


# Ode to Joy, one note a beat; 0 is a rest (the same melody as `liveagent demo --melody ode`).
DEMO_MELODY = one_note_a_beat()


def _demo_melody(c: Canvas, x: int, y: int) -> int:
    """[pd demo-melody]: inlets transport (start/stop), tempo (BPM), on/off; outlet ``pitch velocity``."""
    box, s = c.subpatch(x, y, "demo-melody", 620, 520)
    s.text(
        200,
        10,
        "one note a beat from [list store] (0 = rest), each held 90% of a beat by [makenote]",
        width=44,
    )
    transport = s.obj(20, 20, "inlet")
    tempo = s.obj(200, 80, "inlet")
    onoff = s.obj(420, 80, "inlet")
    route = s.obj(20, 50, "route start stop")
    s.connect(transport, 0, route, 0)
    t_start = s.obj(20, 80, "t b b")
    s.connect(route, 0, t_start, 0)
    run = s.msg(20, 110, "1")
    halt = s.msg(80, 110, "0")
    rewind = s.msg(130, 170, "0")
    s.connect(t_start, 1, rewind, 0)
    s.connect(t_start, 0, run, 0)
    s.connect(route, 1, halt, 0)
    lb = s.obj(300, 20, "loadbang")
    bpm0 = s.msg(300, 50, "100")
    s.connect(lb, 0, bpm0, 0)
    t_tempo = s.obj(200, 110, "t f")
    s.connect(bpm0, 0, t_tempo, 0)
    s.connect(tempo, 0, t_tempo, 0)
    beat_ms = s.obj(200, 140, "swap 60000")
    s.connect(t_tempo, 0, beat_ms, 0)
    div = s.obj(200, 170, "/")
    s.connect(beat_ms, 0, div, 0)
    s.connect(beat_ms, 1, div, 1)
    metro = s.obj(20, 200, "metro 600")
    s.connect(run, 0, metro, 0)
    s.connect(halt, 0, metro, 0)
    s.connect(div, 0, metro, 1)
    gate = s.obj(20, 230, "spigot 1")
    s.connect(metro, 0, gate, 0)
    s.connect(onoff, 0, gate, 1)
    idx = s.obj(20, 260, "f")
    inc = s.obj(60, 260, "+ 1")
    wrap = s.obj(100, 260, f"mod {len(DEMO_MELODY)}")
    s.connect(gate, 0, idx, 0)
    s.connect(idx, 0, inc, 0)
    s.connect(inc, 0, wrap, 0)
    s.connect(wrap, 0, idx, 1)
    s.connect(rewind, 0, idx, 1)
    get = s.msg(20, 290, "get \\$1 1")
    s.connect(idx, 0, get, 0)
    store = s.obj(20, 320, "list store " + " ".join(str(p) for p in DEMO_MELODY))
    s.connect(get, 0, store, 0)
    rest = s.obj(20, 350, "sel 0")
    s.connect(store, 0, rest, 0)
    makenote = s.obj(20, 380, "makenote 90 500")
    s.connect(rest, 1, makenote, 0)
    gate_len = s.obj(200, 350, "* 0.9")
    s.connect(div, 0, gate_len, 0)
    s.connect(gate_len, 0, makenote, 2)
    pack = s.obj(20, 410, "pack f f")
    s.connect(makenote, 0, pack, 0)
    s.connect(makenote, 1, pack, 1)
    out = s.obj(20, 440, "outlet")
    s.connect(pack, 0, out, 0)
    return box


MOODS = ("calm", "busy", "bright", "dark", "neutral")
"""The mood menu: the moods every style policy of the project defines (issue 9)."""
PAD_X, PAD_Y, MOOD_RECEIVE = "liveagent-pad-x", "liveagent-pad-y", "liveagent-mood"
"""Receive names of the pad's sliders and the mood menu: another patch (or a test) plays them with
``; liveagent-pad-x 0.5`` or ``; liveagent-mood busy``."""


def _style_controls(c: Canvas, la: int) -> None:
    """The style of a style policy (``liveagent serve --policy style``): a 2-D pad (two sliders, -1..1 each:
    x along the latent's first main axis, higher; y along the second, busier and off the beat) and a mood
    menu. Each change glides over a bar on the server."""
    c.text(20, 650, "style (liveagent serve --policy style): glides over a bar", width=40)
    c.text(20, 672, "pad x: register (low .. high)", width=30)
    pad_x = c.slider(20, 695, lo=-1.0, hi=1.0, receive=PAD_X)
    pad_y = c.slider(200, 650, vertical=True, length=90, lo=-1.0, hi=1.0, receive=PAD_Y)
    c.text(225, 650, "pad y: calm .. busy", width=10)
    t_y = c.obj(200, 755, "t b f")  # y waits in [pack]'s cold inlet, then the bang sends x y
    c.connect(pad_y, 0, t_y, 0)
    pack = c.obj(20, 785, "pack f f")
    c.connect(pad_x, 0, pack, 0)
    c.connect(t_y, 1, pack, 1)
    c.connect(t_y, 0, pack, 0)
    style_msg = c.msg(20, 815, "style \\$1 \\$2")
    c.connect(pack, 0, style_msg, 0)
    c.connect(style_msg, 0, la, 2)
    c.text(320, 650, "moods", width=8)
    r_mood = c.obj(320, 672, f"r {MOOD_RECEIVE}")
    route = c.obj(320, 700, "route " + " ".join(MOODS))
    c.connect(r_mood, 0, route, 0)
    for i, mood in enumerate(MOODS):
        m = c.msg(320 + 90 * i, 740 + 25 * (i % 2), f"mood {mood}")
        c.connect(route, i, m, 0)
        c.connect(m, 0, la, 2)


def build_help() -> str:
    """The help patch: works out of the box with a demo melody and a built-in synth."""
    c = Canvas(width=1090, height=1090)
    c.obj(20, 14, "declare -path .")
    c.text(
        20, 44, "[liveagent] - play with a liveagent server (a real-time RL accompanist) over OSC", width=90
    )
    c.text(
        20,
        70,
        "It sends what you play to the server and gives back the server's accompaniment, note by note, on"
        " the beat grid. 1) start the server in a terminal: liveagent serve --osc-port 9000 --osc-out"
        " 127.0.0.1:9001 2) click 'pd dsp 1' 3) click 'start': the demo melody plays and the accompaniment"
        " answers. Untick 'demo' to play a MIDI keyboard instead ([notein]).",
        width=104,
    )

    # --- transport (column 1) ---
    c.text(20, 140, "transport", width=12)
    start = c.msg(20, 165, "start")
    stop = c.msg(75, 165, "stop")
    cont = c.msg(120, 165, "continue")
    t_transport = c.obj(20, 200, "t a a")  # the server first, then the demo melody
    for box in (start, stop, cont):
        c.connect(box, 0, t_transport, 0)
    lb = c.obj(20, 235, "loadbang")
    bpm0 = c.msg(20, 260, "100")
    tempo = c.floatatom(20, 285, 5)
    c.text(75, 285, "tempo (BPM)", width=12)
    c.chain(lb, bpm0, tempo)
    t_tempo = c.obj(20, 310, "t f f")
    c.connect(tempo, 0, t_tempo, 0)
    tempo_msg = c.msg(20, 340, "tempo \\$1")
    c.connect(t_tempo, 0, tempo_msg, 0)

    # --- performer (columns 2 and 3) ---
    c.text(330, 140, "performer: a MIDI keyboard", width=28)
    notein = c.obj(330, 165, "notein")
    pack_in = c.obj(330, 200, "pack f f")
    c.connect(notein, 0, pack_in, 0)
    c.connect(notein, 1, pack_in, 1)
    c.text(560, 140, "or the demo melody", width=24)
    demo_tgl = c.toggle(560, 165, init=True)
    c.text(585, 167, "demo (Ode to Joy)", width=20)
    demo = _demo_melody(c, 560, 250)
    c.connect(t_transport, 0, demo, 0)
    c.connect(t_tempo, 1, demo, 1)
    c.connect(demo_tgl, 0, demo, 2)
    lead = _synth(c, 560, 300, "performer-voice", "osc~", 0.15)
    c.connect(pack_in, 0, lead, 0)
    c.connect(demo, 0, lead, 0)

    # --- controls ---
    c.text(20, 385, "controls", width=10)
    temp = c.floatatom(20, 410, 5)
    c.text(75, 410, "temperature (0 = greedy)", width=24)
    temp_msg = c.msg(20, 440, "temperature \\$1")
    c.connect(temp, 0, temp_msg, 0)
    mute = c.toggle(270, 410)
    c.text(295, 412, "mute", width=6)
    mute_msg = c.msg(270, 440, "mute \\$1")
    c.connect(mute, 0, mute_msg, 0)
    panic = c.bang(360, 410)
    c.text(385, 412, "panic", width=6)
    panic_msg = c.msg(360, 440, "panic")
    c.connect(panic, 0, panic_msg, 0)
    policy = c.msg(440, 440, "policy rules")
    c.text(440, 465, "or policy NAME (export/NAME.onnx) or a .onnx path", width=52)
    status = c.msg(560, 440, "status")

    # --- the object ---
    la = c.obj(20, 500, "liveagent 127.0.0.1 9000 9001")
    c.text(260, 500, "<- args: server host, server port, reply port", width=46)
    for box in (pack_in, demo):
        c.connect(box, 0, la, 0)
    for box in (tempo_msg,):
        c.connect(box, 0, la, 1)
    c.connect(t_transport, 1, la, 1)
    for box in (temp_msg, mute_msg, panic_msg, policy, status):
        c.connect(box, 0, la, 2)

    # --- what comes back ---
    accomp = _synth(c, 20, 560, "accompaniment-voice", "phasor~", 0.12)
    solo = help_band_section(c, la, 860, _synth)
    c.connect(la, 0, solo, 0)
    c.connect(solo, 0, accomp, 0)
    c.text(20, 585, "the accompaniment on a built-in saw voice", width=22)
    unpack_out = c.obj(220, 560, "unpack f f")
    c.connect(solo, 0, unpack_out, 0)
    noteout = c.obj(220, 590, "noteout 1")
    c.connect(unpack_out, 0, noteout, 0)
    c.connect(unpack_out, 1, noteout, 1)
    c.text(220, 615, "and to MIDI out, channel 1", width=16)
    beat = c.obj(380, 560, "unpack f f")
    c.connect(la, 1, beat, 0)
    bar_box = c.floatatom(380, 590, 4)
    beat_box = c.floatatom(430, 590, 3)
    c.connect(beat, 0, bar_box, 0)
    c.connect(beat, 1, beat_box, 0)
    c.text(380, 615, "bar beat", width=10)
    printer = c.obj(520, 560, "print liveagent")
    c.connect(la, 2, printer, 0)
    c.text(520, 590, "status, errors, connected 0|1 (in the Pd window)", width=26)
    _style_controls(c, la)

    # --- DSP, reference, see also (right column) ---
    c.msg(800, 140, "\\; pd dsp 1")
    c.msg(890, 140, "\\; pd dsp 0")
    c.text(800, 175, "DSP on / off (the built-in voices)", width=34)
    c.text(
        800,
        215,
        "inlets: 1 notes (pitch velocity, velocity 0 = off / noteoff P) 2 transport (start, stop, continue,"
        " tempo F, beat [I]) 3 controls (temperature F, follow MS, mute 0|1, panic, policy NAME, style X Y,"
        " mood NAME, status, connect HOST PORT, listen PORT)",
        width=36,
    )
    c.text(
        800,
        360,
        "outlets: 1 accompaniment notes (pitch velocity) 2 beat (bar beat) 3 status ... / error ... /"
        " connected 0|1 4 5 6 the band's alto, tenor, bass (pitch velocity)",
        width=36,
    )
    c.text(
        800,
        440,
        "ports: the server listens on 9000 (--osc-port) and sends to 127.0.0.1:9001 (--osc-out). Change both"
        " sides together.",
        width=36,
    )
    c.text(800, 530, "see also: README.md (sync with a DAW, troubleshooting), liveagent.maxpat", width=36)
    c.obj(800, 590, "oscformat")
    c.obj(880, 590, "oscparse")
    c.obj(950, 590, "netsend -u -b")
    c.obj(800, 620, "netreceive -u -b")
    return c.render() + "\n"
