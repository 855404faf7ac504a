"""The band in real, headless Pd: the shipped [liveagent] gives each band voice
(``/liveagent/out/VOICE/note``, VOICE = alto, tenor, bass) on its own outlet (4, 5, 6) and keeps the v1
``/liveagent/out/note`` on outlet 1.

How the test sees what Pd got: a probe patch wires each outlet to an ``[oscformat probe NAME]`` and a
``[netsend -u -b]`` back to a Python collector on a free UDP port, so every message an outlet gives arrives
as ``/probe/NAME pitch velocity`` in order, as it happens (no log file to wait for). A second
``[netreceive]`` in the probe patch takes ``/probe/quit``, so Pd ends cleanly when the test is done.

Two senders: a Python OSC client standing in for the server (any Pd, any time), and a real
``liveagent serve --band satb`` that a performer (the probe patch's melody) plays through the same
abstraction.
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import pytest
from pythonosc.udp_client import SimpleUDPClient

from liveagent.live.io.osc_out import band_note_address
from tests.live.osc_helpers import OscCollector, free_udp_port
from tests.live.serve_helpers import ServeProcess
from tests.patches.harness import PATCHES, Canvas, pd_command
from tests.support import require_tool

log = logging.getLogger(__name__)

VOICES = ("alto", "tenor", "bass")
OUTLETS = {"v1": 0, "alto": 3, "tenor": 4, "bass": 5}
"""Probe name -> outlet of [liveagent]: the v1 note outlet and the band's three (the shared band decision)."""
BAD_WORDS = ("error", "couldn't create", "bad arguments", "no such object", "... couldn't")


def build_probe_patch(
    server_port: int,
    reply_port: int,
    probe_port: int,
    control_port: int,
    *,
    melody: Sequence[int] = (),
    bpm: float = 120.0,
    tail_ms: float = 1000.0,
) -> str:
    """[liveagent 127.0.0.1 SERVER REPLY] with its outlets reported to ``probe_port`` over OSC.

    Sends ``/probe/ready`` 300 ms after load. With a ``melody`` it then plays it into inlet 1, one note a
    beat held 80% of it (``/probe/sent`` for each note), sends ``stop`` into inlet 2 after the last one and,
    ``tail_ms`` later (the stop's note-offs), ``/probe/done``. ``/probe/quit`` on ``control_port`` quits."""
    c = Canvas(width=1200, height=700)
    la = c.obj(20, 400, f"liveagent 127.0.0.1 {server_port} {reply_port}")
    netsend = c.obj(600, 640, "netsend -u -b")
    lb = c.obj(600, 20, "loadbang")
    c.chain(lb, c.msg(600, 50, f"connect 127.0.0.1 {probe_port}"), netsend)

    def probe(src: int, outlet: int, x: int, y: int, name: str, fmt: str = "-f ii ") -> None:
        as_list = c.obj(x, y, "list")  # "connected 1", "ready": [oscformat] takes lists only
        fmt_box = c.obj(x, y + 30, f"oscformat {fmt}probe {name}")
        send = c.obj(x, y + 60, "list prepend send")
        trim = c.obj(x, y + 90, "list trim")
        c.connect(src, outlet, as_list, 0)
        c.chain(as_list, fmt_box, send, trim, netsend)

    for i, (name, outlet) in enumerate(OUTLETS.items()):
        probe(la, outlet, 20 + 180 * i, 460, name)
    probe(la, 2, 740, 460, "info", fmt="")

    ready_delay = c.obj(20, 20, "delay 300")
    c.connect(lb, 0, ready_delay, 0)
    ready = c.msg(20, 50, "ready")
    c.connect(ready_delay, 0, ready, 0)
    probe(ready, 0, 20, 80, "ready", fmt="")

    ctl = c.obj(900, 20, f"netreceive -u -b {control_port}")
    parse = c.obj(900, 50, "oscparse")
    trim_ctl = c.obj(900, 80, "list trim")
    route = c.obj(900, 110, "route probe")
    quit_route = c.obj(900, 140, "route quit")
    c.chain(ctl, parse, trim_ctl, route, quit_route)
    c.connect(quit_route, 0, c.msg(900, 170, "\\; pd quit"), 0)

    if melody:
        beat_ms = 60000.0 / bpm
        go = c.obj(250, 20, "t b b")
        c.connect(ready_delay, 0, go, 0)
        metro = c.obj(250, 170, f"metro {beat_ms}")
        c.connect(go, 0, metro, 0)
        idx = c.obj(250, 200, "f")
        inc = c.obj(290, 200, "+ 1")
        c.connect(metro, 0, idx, 0)
        c.connect(idx, 0, inc, 0)
        c.connect(inc, 0, idx, 1)
        split = c.obj(250, 230, f"moses {len(melody)}")
        c.connect(idx, 0, split, 0)
        get = c.msg(250, 260, "get \\$1 1")
        c.connect(split, 0, get, 0)
        store = c.obj(250, 290, "list store " + " ".join(str(p) for p in melody))
        c.connect(get, 0, store, 0)
        makenote = c.obj(250, 320, f"makenote 96 {beat_ms * 0.8}")
        c.connect(store, 0, makenote, 0)
        pack = c.obj(250, 350, "pack f f")
        c.connect(makenote, 0, pack, 0)
        c.connect(makenote, 1, pack, 1)
        c.connect(pack, 0, la, 0)
        probe(pack, 0, 560, 300, "sent")
        done = c.obj(500, 230, "t b b")  # the melody is over: metro off, then stop the server
        c.connect(split, 1, done, 0)
        metro_off = c.msg(500, 170, "stop")
        c.connect(done, 1, metro_off, 0)
        c.connect(metro_off, 0, metro, 0)
        stop = c.msg(560, 260, "stop")
        c.connect(done, 0, stop, 0)
        c.connect(stop, 0, la, 1)
        tail = c.obj(700, 230, f"delay {tail_ms}")
        c.connect(done, 0, tail, 0)
        done_msg = c.msg(700, 260, "done")
        c.connect(tail, 0, done_msg, 0)
        probe(done_msg, 0, 700, 290, "done", fmt="")
    return c.render() + "\n"


class PdProbe:
    """Headless Pd running a probe patch, its stderr in a file (an unread pipe could fill and block Pd)."""

    def __init__(self, tmp_path: Path, patch_text: str, control_port: int) -> None:
        self.patch = tmp_path / "band_probe.pd"
        self.patch.write_text(patch_text)
        self.control_port = control_port
        self.err_file: TextIO = (tmp_path / "pd.err").open("w+")
        self.proc = subprocess.Popen(pd_command(self.patch), stderr=self.err_file, text=True)

    def quit(self, timeout: float = 10.0) -> tuple[int, str]:
        """Ask the patch to quit (``/probe/quit``); kill it if it does not. Returns (returncode, stderr)."""
        SimpleUDPClient("127.0.0.1", self.control_port).send_message("/probe/quit", [])
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
            rc = -9
        self.err_file.seek(0)
        err = self.err_file.read()
        self.err_file.close()
        return rc, err


def problems(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if any(w in ln.lower() for w in BAD_WORDS)]


def wait_for(pred: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return bool(pred())


def ints(messages: list[list[Any]]) -> list[tuple[int, int]]:
    return [(int(p), int(v)) for p, v in messages]


def statuses(infos: list[list[Any]]) -> list[dict[str, Any]]:
    """The ``status KEY VALUE ...`` lists of [liveagent]'s third outlet as dicts."""
    return [dict(zip(i[1::2], i[2::2], strict=False)) for i in infos if i and i[0] == "status"]


def still_sounding(notes: list[tuple[int, int]]) -> set[int]:
    """Pitches left on after playing ``notes`` in order (velocity 0 = off)."""
    on: set[int] = set()
    for pitch, vel in notes:
        if vel > 0:
            on.add(pitch)
        else:
            on.discard(pitch)
    return on


# What the stand-in server sends: a little SATB cadence under a soprano C5 (each voice: on, then off),
# the bass mirrored on the v1 address as the server does.
CADENCE: dict[str, list[tuple[int, int]]] = {
    "alto": [(64, 80), (64, 0), (65, 80), (65, 0), (64, 80), (64, 0)],
    "tenor": [(55, 70), (55, 0), (57, 70), (57, 0), (55, 70), (55, 0)],
    "bass": [(48, 90), (48, 0), (53, 90), (53, 0), (43, 90), (43, 0), (48, 90), (48, 0)],
}


@pytest.mark.timeout(60)
def test_each_band_voice_comes_out_of_its_own_outlet(tmp_path: Path) -> None:
    """A Python OSC sender in the server's place: every ``/liveagent/out/VOICE/note`` comes out of that
    voice's outlet only, in order, with ints intact; ``/liveagent/out/note`` out of outlet 1 only."""
    require_tool("pd")
    rx = OscCollector()
    reply_port, control_port = free_udp_port(), free_udp_port()
    patch = build_probe_patch(free_udp_port(), reply_port, rx.port, control_port)
    pd = PdProbe(tmp_path, patch, control_port)
    try:
        assert wait_for(lambda: rx.of("/probe/ready"), 20), "the probe patch never reported ready"
        server = SimpleUDPClient("127.0.0.1", reply_port)
        longest = max(len(n) for n in CADENCE.values())
        for k in range(longest):  # interleaved, as a band plays: bass first within a step
            for voice in reversed(VOICES):
                if k < len(CADENCE[voice]):
                    pitch, vel = CADENCE[voice][k]
                    server.send_message(band_note_address(voice), [pitch, vel])
                    if voice == "bass":
                        server.send_message("/liveagent/out/note", [pitch, vel])
            server.send_message("/liveagent/out/beat", [0, k % 4])
            time.sleep(0.005)
        server.send_message("/liveagent/status", ["bpm", 120.0])
        total = sum(len(n) for n in CADENCE.values()) + len(CADENCE["bass"])
        assert wait_for(lambda: sum(len(rx.of(f"/probe/{n}")) for n in OUTLETS) >= total, 10), rx.messages
        assert wait_for(lambda: rx.of("/probe/info"), 5), rx.messages
        time.sleep(0.2)  # anything extra (a voice leaking to another outlet) would arrive by now
    finally:
        rc, err = pd.quit()
        rx.sock.close()
    assert rc == 0, err
    assert problems(err) == [], err
    got = {name: ints(rx.of(f"/probe/{name}")) for name in OUTLETS}
    log.info("outlets got: %s", got)
    for voice in VOICES:
        assert got[voice] == CADENCE[voice], voice
    assert got["v1"] == CADENCE["bass"]
    # the third outlet gave the status and nothing else (the abstraction's own "connected 1" came at load,
    # before the probe's [netsend] was connected)
    assert rx.of("/probe/info") == [["status", "bpm", 120.0]], rx.of("/probe/info")


PERFORMER = (72, 74, 76, 77, 79, 77, 76, 74, 72, 76, 79, 84)
"""The soprano the performer plays through Pd, one note a beat (a C major line in the soprano's range)."""


@pytest.mark.timeout(120)
def test_real_serve_band_plays_through_the_pd_abstraction(tmp_path: Path) -> None:
    """A performer plays a melody through [liveagent] into a real ``liveagent serve --band satb``: each of
    the three voice outlets gets notes, every note-on gets its note-off by the end (the melody ends with
    ``stop``), and outlet 1 (v1) carries the bass's notes."""
    require_tool("pd")
    bpm = 120.0
    rx = OscCollector()
    reply_port, control_port = free_udp_port(), free_udp_port()
    serve_args = ("--band", "satb", "--clock", "internal", "--autostart", "--bpm", str(bpm), "--no-record")
    with ServeProcess(*serve_args, "--osc-out", f"127.0.0.1:{reply_port}") as serve:
        log.info("serve: %s", " ".join(serve.stdout[:3]))
        patch = build_probe_patch(
            serve.osc_port, reply_port, rx.port, control_port, melody=PERFORMER, bpm=bpm, tail_ms=1000.0
        )
        pd = PdProbe(tmp_path, patch, control_port)
        try:
            beats = len(PERFORMER) * 60.0 / bpm
            assert wait_for(lambda: rx.of("/probe/done"), beats + 30), (rx.messages[-10:], serve.stderr[-20:])
            # the status reply goes to --osc-out too (--osc-reply both): Pd's third outlet shows it
            serve.send("/liveagent/status")
            assert wait_for(lambda: statuses(rx.of("/probe/info")), 5), rx.of("/probe/info")
            st = statuses(rx.of("/probe/info"))[-1]
        finally:
            rc, err = pd.quit()
            rx.sock.close()
        assert serve.proc.poll() is None, "".join(serve.stderr)[-2000:]
    assert rc == 0, err
    assert problems(err) == [], err
    sent = ints(rx.of("/probe/sent"))
    assert [p for p, v in sent if v > 0] == list(PERFORMER)
    got = {name: ints(rx.of(f"/probe/{name}")) for name in OUTLETS}
    ons = {name: [p for p, v in notes if v > 0] for name, notes in got.items()}
    summary = {name: len(o) for name, o in ons.items()}
    print(f"band through Pd: note-ons per outlet {summary}; status misses={st.get('misses')}")
    for voice in VOICES:
        assert len(ons[voice]) >= 2, (voice, got[voice], st)
        assert all(0 <= p <= 127 for p in ons[voice]) and all(1 <= v <= 127 for p, v in got[voice] if v)
        assert still_sounding(got[voice]) == set(), (voice, got[voice][-8:])
    assert still_sounding(got["v1"]) == set(), got["v1"][-8:]
    assert ons["v1"] == ons["bass"], (ons["v1"], ons["bass"])
    # the voices sit in their order on average (alto above tenor above bass): they are the band, not copies
    mean = {v: sum(ons[v]) / len(ons[v]) for v in VOICES}
    print(f"mean pitch per voice: {mean}")
    assert mean["alto"] > mean["tenor"] > mean["bass"], mean


# --- static checks of the shipped files (no Pd or Max needed) ---

BAND_ROUTE = (
    "route /liveagent/out/alto/note /liveagent/out/tenor/note /liveagent/out/bass/note /liveagent/out/note"
)


def test_maxpat_routes_each_band_voice_to_its_channel() -> None:
    """In the .maxpat: [udpreceive 9001] -> the band's [route]; outlets 0-2 (alto, tenor, bass) ->
    [unpack 0 0] -> [noteout 2|3|4] (pitch and velocity, no [makenote]); outlet 3 (v1) -> a [gate] the band
    toggle closes -> [unpack] -> [noteout]; the reject outlet -> the [route] of beat, status and error."""
    patcher = json.loads((PATCHES / "liveagent.maxpat").read_text())["patcher"]
    boxes = {b["box"]["id"]: b["box"] for b in patcher["boxes"]}
    wires: dict[tuple[str, int], list[tuple[str, int]]] = {}
    for line in patcher["lines"]:
        (src, outlet), (dst, inlet) = line["patchline"]["source"], line["patchline"]["destination"]
        wires.setdefault((src, outlet), []).append((dst, inlet))

    def text(box_id: str) -> str:
        return str(boxes[box_id].get("text", ""))

    def targets(src: str, outlet: int, prefix: str) -> list[tuple[str, int]]:
        return [(d, i) for d, i in wires.get((src, outlet), []) if text(d).startswith(prefix)]

    # the server's own addresses, in the voices' order, then v1's
    assert BAND_ROUTE.split()[1:] == [*(band_note_address(v) for v in VOICES), "/liveagent/out/note"]
    routes = [k for k, b in boxes.items() if b.get("text") == BAND_ROUTE]
    assert len(routes) == 1, [b.get("text") for b in boxes.values() if "route" in str(b.get("text"))]
    route = routes[0]
    assert boxes[route]["numoutlets"] == 5
    recv = [k for k, b in boxes.items() if b.get("text") == "udpreceive 9001"]
    assert (route, 0) in wires[(recv[0], 0)]
    for i, channel in enumerate((2, 3, 4)):
        (unpack, _), *rest = targets(route, i, "unpack 0 0")
        assert rest == []
        outs = {(text(d), inlet) for d, inlet in wires[(unpack, 0)] + wires[(unpack, 1)]}
        assert (f"noteout {channel}", 0) in outs and (f"noteout {channel}", 1) in outs, outs
        assert not any(text(d).startswith("makenote") for d, _ in wires[(route, i)])
    (gate, gate_inlet), *_ = targets(route, 3, "gate")
    assert gate_inlet == 1  # the data inlet; the left one is the band toggle's (through [== 0])
    control = [s for (s, o), ds in wires.items() if (gate, 0) in ds]
    assert [text(s) for s in control] == ["== 0"]
    assert [boxes[s]["maxclass"] for (s, o), ds in wires.items() if (control[0], 0) in ds] == ["toggle"]
    (unpack_v1, _), *_ = targets(gate, 0, "unpack")
    assert {text(d) for d, _ in wires[(unpack_v1, 0)]} == {"noteout"}
    (rest_route, _), *_ = targets(route, 4, "route")
    assert text(rest_route) == "route /liveagent/out/beat /liveagent/status /liveagent/error"


def test_pd_abstraction_has_a_band_outlet_per_voice() -> None:
    """liveagent.pd: six outlets, the v1 three first (Pd orders outlets by x), then one per voice, fed by
    [route alto tenor bass] on the reject outlet of [route note beat] and one [route note] each."""
    lines = [ln.rstrip(";") for ln in (PATCHES / "liveagent.pd").read_text().splitlines()]
    # box indices of the top canvas: skip the lines of subpatches (from #N canvas to #X restore)
    boxes: list[str] = []
    depth = 0
    for ln in lines[1:]:
        if ln.startswith("#N canvas"):
            depth += 1
        elif ln.startswith("#X restore"):
            depth -= 1
            if depth == 0:
                boxes.append(ln)
        elif depth == 0 and not ln.startswith("#X connect"):
            boxes.append(ln)
    wires = {tuple(int(w) for w in ln.split()[2:6]) for ln in lines if ln.startswith("#X connect")}
    outlets = sorted((int(b.split()[2]), i) for i, b in enumerate(boxes) if b.endswith(" outlet"))
    assert len(outlets) == 6, outlets
    index = {b.split(" ", 4)[4]: i for i, b in enumerate(boxes) if b.startswith("#X obj")}
    note_beat, by_voice = index["route note beat"], index["route alto tenor bass"]
    assert (note_beat, 2, by_voice, 0) in wires
    for i, (_, out) in enumerate(outlets[3:]):
        route_note = [s for s, o, d, _ in wires if d == out]
        assert len(route_note) == 1 and boxes[route_note[0]].endswith(" route note")
        assert (by_voice, i, route_note[0], 0) in wires
    assert (note_beat, 0, outlets[0][1], 0) in wires  # v1 notes stay on outlet 1
