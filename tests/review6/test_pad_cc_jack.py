"""The style pad's CC 16/17 through real JACK MIDI into a real `serve --policy style` while a performer plays
on the same keyboard port: a flood of pad CCs (~10,000/s) and garbage (data bytes above 127, truncated
CCs, CCs on the agent's channel) costs at most a few misses, is counted, never leaves the style outside the
pad, leaves no note sounding at an independent MIDI receiver, and SIGTERM mid-flood is prompt."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest

from liveagent.live.commands.bench import rss_mb
from liveagent.live.engine.policy import OnnxPolicy
from liveagent.live.io.midi import close_rtmidi_port
from tests.live.conftest import JackServer
from tests.live.receiver_notes import midi_notes, sounding_at
from tests.live.serve_helpers import ServeProcess, wait_until
from tests.review6.helpers import assert_clean_exit

log = logging.getLogger(__name__)
BPM = 240.0
MELODY = (60, 64, 67, 72, 67, 64, 62, 65)


def _rt(kind: str, name: str) -> Any:
    import rtmidi

    cls = rtmidi.MidiIn if kind == "in" else rtmidi.MidiOut
    return cls(rtapi=rtmidi.API_UNIX_JACK, name=name)


class Keyboard:
    """One rtmidi output port: a performer's notes on channel 1 and, when asked, a pad CC flood."""

    def __init__(self, port: Any, rate: float, cc: int = 16) -> None:
        self.port, self.rate, self.cc = port, rate, cc
        self.lock = threading.Lock()
        self.cc_sent = 0
        self.flooding = threading.Event()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._play, daemon=True),
            threading.Thread(target=self._flood, daemon=True),
        ]

    def send(self, msg: list[int]) -> None:
        with self.lock:
            self.port.send_message(msg)

    def _play(self) -> None:
        beat, i = 60.0 / BPM, 0
        while not self._stop.is_set():
            p = MELODY[i % len(MELODY)]
            self.send([0x90, p, 90])
            time.sleep(beat / 2)
            self.send([0x80, p, 0])
            time.sleep(beat / 2)
            i += 1

    def _flood(self) -> None:
        t0, v = time.perf_counter(), 0
        while not self._stop.is_set():
            if not self.flooding.is_set():
                time.sleep(0.01)
                t0, v = time.perf_counter(), self.cc_sent
                continue
            for _ in range(max(1, int(self.rate) // 200)):
                self.send([0xB0, self.cc + (self.cc_sent & 1), (self.cc_sent * 7) % 128])
                self.cc_sent += 1
            ahead = (self.cc_sent - v) / self.rate - (time.perf_counter() - t0)
            if ahead > 0:
                time.sleep(ahead)

    def __enter__(self) -> Keyboard:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(5)


@pytest.mark.system
@pytest.mark.timeout(180)
@pytest.mark.parametrize("rate", [1_000.0, 10_000.0], ids=["din-rate", "10k"])  # 10k: coalesced (a review)
def test_pad_cc_flood_and_garbage_through_jack(jack_server: JackServer, rate: float) -> None:
    kbd_port = _rt("out", "rv6-kbd")
    kbd_port.open_virtual_port("out")
    synth = _rt("in", "rv6-synth")
    synth.open_virtual_port("in")
    heard: list[tuple[int, list[int]]] = []
    synth.set_callback(lambda m, d=None: heard.append((time.perf_counter_ns(), list(m[0]))))
    args = ("--policy", "style", "--no-record", "--rt-priority", "0", "--bpm", f"{BPM:g}", "--autostart")
    try:
        with ServeProcess(*args, "--virtual", "--midi-name", "rv6-la") as sp:
            jack_server.connect("rv6-kbd:out", "rv6-la:in")
            jack_server.connect("rv6-la-out:out", "rv6-synth:in")
            time.sleep(0.2)
            with Keyboard(kbd_port, rate) as kbd:
                assert wait_until(lambda: int(sp.status()["notes_out"]) >= 4, 10), sp.status()
                time.sleep(1.0)
                st0 = sp.status()
                rss0 = rss_mb(sp.proc.pid)
                # garbage first: every kind once
                garbage = [
                    [0xB0, 16, 200],  # data byte with the high bit set
                    [0xB0, 17, 0x80],
                    [0xB0, 16],  # truncated
                    [0xB0],
                    [0xB1, 16, 127],  # the agent's output channel: filtered
                    [0xB0, 0xFF, 64],
                ]
                for g in garbage:
                    try:
                        kbd.send(g)
                    except Exception as e:  # rtmidi may refuse a malformed message itself
                        log.info("rtmidi refused %s: %s", g, e)
                time.sleep(0.5)
                st_g = sp.status()
                assert sp.proc.poll() is None
                kbd.flooding.set()
                time.sleep(4.0)
                st_mid = sp.status(timeout=2.0)
                rss_mid = rss_mb(sp.proc.pid)
                kbd.flooding.clear()
                time.sleep(1.5)
                st1 = sp.status()
                figures = (
                    f"CCs sent {kbd.cc_sent} at {rate:.0f}/s; steps {st0['steps']}->{st1['steps']}; "
                    f"midi_style_cc {st0.get('midi_style_cc')}->{st1.get('midi_style_cc')} "
                    f"(coalesced {st1.get('midi_style_cc_coalesced')}); "
                    f"midi_errors {st0.get('midi_errors')}->{st_g.get('midi_errors')}"
                    f"->{st1.get('midi_errors')}; misses {st0['misses']}->{st1['misses']}; skipped "
                    f"{st0['skipped']}->{st1['skipped']}; decision p99 {st0['decision_p99_us']}->"
                    f"{st_mid['decision_p99_us']} max {st1['decision_max_us']} us; lateness p99 "
                    f"{st0['lateness_p99_us']}->{st1['lateness_p99_us']}; RSS {rss0:.1f}->{rss_mid:.1f} MB; "
                    f"style {st1['style']} ({st1['style_mood']}), input_errors {st1['input_errors']}"
                )
                log.info("%s", figures)
                print(figures)
                assert kbd.cc_sent > rate * 2, figures
                # the five malformed messages are counted errors (the channel-2 CC is filtered, not an error)
                assert int(st_g["midi_errors"]) - int(st0["midi_errors"]) == 5, figures
                assert st_g["style_mood"] == st0["style_mood"], "garbage moved the pad"
                assert all(abs(float(v)) <= 10.0 for v in str(st1["style"]).split()), figures
                assert int(st1["midi_style_cc"]) > int(st0["midi_style_cc"]), figures
                assert int(st1["misses"]) - int(st0["misses"]) <= 4, figures
                assert int(st1["skipped"]) - int(st0["skipped"]) <= 4, figures
                assert float(st1["decision_max_us"]) < 250_000, figures
                assert rss_mid - rss0 < 50, figures
                meta = OnnxPolicy.load("style").meta
                assert int(st1["style_dim"]) == meta.style_dim
                # the engine still steers and answers after the flood
                sp.send("/liveagent/mood", "dark")
                assert wait_until(lambda: sp.status()["style_mood"] == "dark", 5), sp.status()
                n_on = len([m for _, m in heard if m[0] == 0x91 and m[2] > 0])
                time.sleep(1.0)
                assert len([m for _, m in heard if m[0] == 0x91 and m[2] > 0]) > n_on, "the agent fell silent"
                kbd.flooding.set()
                time.sleep(1.0)
                assert_clean_exit(sp, "a pad CC flood on JACK")
            t_exit = time.perf_counter_ns()
        time.sleep(0.3)
        notes = midi_notes([(t, m) for t, m in heard])
        assert notes, "the synth heard nothing"
        # the engine's own releases, before its exit's CC 123
        assert sounding_at(notes) == {}, f"notes left sounding at the receiver: {sounding_at(notes)}"
        assert t_exit > 0
    finally:
        close_rtmidi_port(kbd_port)
        close_rtmidi_port(synth)
