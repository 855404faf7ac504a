"""Review (issue 10): a real ``serve --band satb`` on a messy MIDI stage (real dummy JACK, real rtmidi peers).

The band's output is looped back into its own input (a patchbay / mixer loop), the performer's keyboard
sends garbage and All Notes Off / All Sound Off on the band's channels while holding a key, and the
performer's channels overlap the band's (``--midi-channel``). What counts: the performer's held key is not
cleared by anything but the performer, the band's own echoes are never heard as the performer, and the
band keeps playing.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from typing import Any

import pytest

from liveagent.live.io.midi import close_rtmidi_port
from tests.live.conftest import JackServer
from tests.live.serve_helpers import ServeProcess, wait_until

pytestmark = [pytest.mark.system, pytest.mark.timeout(150)]

BPM = 120.0
MELODY = (72, 74, 76, 77, 79, 77, 76, 74)
Stamped = list[tuple[int, list[int]]]


def _rt(kind: str, name: str) -> Any:
    import rtmidi

    cls = rtmidi.MidiIn if kind == "in" else rtmidi.MidiOut
    return cls(rtapi=rtmidi.API_UNIX_JACK, name=name)


def _serve(jack: JackServer, name: str, *extra: str) -> ServeProcess:
    return ServeProcess(
        "--band",
        "satb",
        "--virtual",
        "--midi-name",
        name,
        "--bpm",
        f"{BPM:g}",
        "--autostart",
        "--no-record",
        *extra,
        env=jack.env(),
    )


class Keyboard:
    """Quarter notes on channel ``ch`` (0-based) on a thread; counts the note messages it sent."""

    def __init__(self, port: Any, ch: int = 0, grid: tuple[int, float] | None = None) -> None:
        """``grid``: serve's (grid_t0_ns, step_ns): play 5 ms behind its beats (else free-running; a phase
        past the follow window silences the band: tests/review/test_band_late_performer.py)."""
        self.port, self.ch, self.grid = port, ch, grid
        self.sent_notes = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._play, daemon=True)

    def start(self) -> None:
        self._t.start()

    def _play(self) -> None:
        beat = 60.0 / BPM
        i = 0
        n0 = 0
        if self.grid is not None:
            n0 = int((time.perf_counter_ns() - self.grid[0]) // (self.grid[1] * 4)) + 1
        while not self._stop.is_set():
            if self.grid is not None:
                t_on = self.grid[0] + (n0 + i) * self.grid[1] * 4 + 5e6
                while (wait := t_on - time.perf_counter_ns()) > 0:
                    time.sleep(min(wait / 1e9, 0.005))
            p = MELODY[i % len(MELODY)]
            self.port.send_message([0x90 | self.ch, p, 90])
            self.sent_notes += 1
            if self._stop.wait(beat * 0.85):
                self.port.send_message([0x80 | self.ch, p, 0])
                self.sent_notes += 1
                return
            self.port.send_message([0x80 | self.ch, p, 0])
            self.sent_notes += 1
            if self.grid is None:
                self._stop.wait(beat * 0.15)
            i += 1

    def stop(self) -> None:
        self._stop.set()
        if self._t.is_alive():
            self._t.join(5)


def sounding(stamped: Stamped, ch: int, until_ns: int | None = None) -> dict[int, int]:
    """Pitch -> unreleased note-ons on channel ``ch`` (0-based) among the messages before ``until_ns``."""
    held: dict[int, int] = {}
    for t, m in stamped:
        if until_ns is not None and t >= until_ns:
            break
        if len(m) == 3 and m[0] & 0x0F == ch and m[0] & 0xF0 in (0x80, 0x90):
            on = m[0] & 0xF0 == 0x90 and m[2] > 0
            held[m[1]] = max(0, held.get(m[1], 0) + (1 if on else -1))
    return {p: n for p, n in held.items() if n}


def first_cc123(stamped: Stamped) -> int | None:
    return next((t for t, m in stamped if len(m) == 3 and m[0] & 0xF0 == 0xB0 and m[1] == 123), None)


def band_ons(stamped: Stamped, ch: int) -> int:
    return sum(1 for _, m in stamped if len(m) == 3 and m[0] == (0x90 | ch) and m[2] > 0)


def test_loop_and_overlapping_performer_channel_do_not_feed_the_band_its_own_notes(
    jack_server: JackServer,
) -> None:
    """The performer listens on 1-4 (``--midi-channel 1,2,3,4``: the band's channels too) and the band's
    output is looped back into its input: every band note that comes back must be taken for our echo (the
    engine's performer input count equals the keyboard's notes), and the keyboard's held key survives
    the band's notes on the shared channels."""
    kbd = _rt("out", "rv-kbd")
    kbd.open_virtual_port("out")
    synth = _rt("in", "rv-synth")
    synth.open_virtual_port("in")
    stamped: Stamped = []
    synth.set_callback(lambda m, d=None: stamped.append((time.perf_counter_ns(), list(m[0]))))
    try:
        with _serve(jack_server, "rv-band", "--midi-channel", "1,2,3,4") as sp:
            jack_server.connect("rv-kbd:out", "rv-band:in")
            jack_server.connect("rv-band-out:out", "rv-synth:in")
            jack_server.connect("rv-band-out:out", "rv-band:in")  # the loop
            time.sleep(0.3)
            st0 = sp.status()
            kb = Keyboard(kbd, 0)
            kb.start()
            time.sleep(8 * 60 / BPM)  # two bars
            kb.stop()
            time.sleep(0.5)
            st = sp.status()
            ons = {ch + 1: band_ons(stamped, ch) for ch in (1, 2, 3)}
            heard = int(st["midi_in"]) - int(st0["midi_in"])  # note messages (ons and offs)
            print(
                "band ons by channel",
                ons,
                "keyboard notes",
                kb.sent_notes,
                "engine notes_in",
                heard,
                "echo_suppressed",
                st.get("midi_echo_suppressed"),
                "misses",
                st["misses"],
            )
            assert all(n >= 2 for n in ons.values()), ons
            assert heard == kb.sent_notes, (
                f"the band's own notes were heard as the performer: {heard} in, {kb.sent_notes} played, {st}"
            )
            assert sp.terminate() == 0
    finally:
        close_rtmidi_port(kbd)
        close_rtmidi_port(synth)


def test_garbage_and_all_notes_off_on_band_channels_leave_the_performer_and_the_band(
    jack_server: JackServer,
) -> None:
    """Default channels (band 2,3,4; performer all but those). The keyboard holds a key on channel 1 and
    sprays random bytes and CC 120/123 on channels 2-4 while the band plays; then /panic's own CC 123 on
    the band channels comes back through a loop. The held key must survive the spray (only /panic clears
    it, by design), the band keeps deciding, and nothing is left sounding at exit before the flush."""
    kbd = _rt("out", "rg-kbd")
    kbd.open_virtual_port("out")
    try:
        with _serve(jack_server, "rg-band") as sp:
            jack_server.connect("rg-kbd:out", "rg-band:in")
            jack_server.connect("rg-band-out:out", "rg-band:in")  # the loop
            time.sleep(0.3)
            kb = Keyboard(kbd, 0)
            kb.start()
            time.sleep(2.0)
            kbd.send_message([0x90, 48, 80])  # a held bass key on the performer's channel
            time.sleep(0.3)
            st0 = sp.status()
            assert int(st0["performer_held"]) >= 1, st0
            rng = random.Random(7)
            for i in range(3000):
                ch = rng.choice((1, 2, 3))
                if i % 10 == 0:
                    kbd.send_message([0xB0 | ch, rng.choice((120, 123)), 0])
                else:
                    kbd.send_message(
                        [
                            rng.choice((0x80, 0x90, 0xA0, 0xB0, 0xE0)) | ch,
                            rng.randrange(128),
                            rng.randrange(128),
                        ][: rng.choice((1, 2, 3, 3))]
                    )
                if i % 100 == 0:
                    time.sleep(0.01)
            time.sleep(0.5)
            st1 = sp.status()
            print(
                "held before/after spray",
                st0["performer_held"],
                st1["performer_held"],
                "cleared",
                st0["performer_notes_cleared"],
                st1["performer_notes_cleared"],
                "decisions",
                st0["decisions"],
                st1["decisions"],
                "misses",
                st1["misses"],
            )
            assert int(st1["performer_held"]) >= 1, (
                f"the spray on the band channels cleared the performer {st1}"
            )
            assert int(st1["decisions"]) > int(st0["decisions"]), st1
            kb.stop()
            kbd.send_message([0x80, 48, 0])
            assert sp.terminate() == 0
    finally:
        close_rtmidi_port(kbd)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGHUP, signal.SIGTERM])
def test_signal_while_three_voices_sound_over_midi(jack_server: JackServer, sig: signal.Signals) -> None:
    """--band-channels 5,6,7 (so the exit flush, after the solo channel 2's CC 123, cannot pass for the
    engine's release): each voice's note-off arrives before the first CC 123, exit 0 within 1 s."""
    kbd = _rt("out", f"rs{sig.value}-kbd")
    kbd.open_virtual_port("out")
    synth = _rt("in", f"rs{sig.value}-synth")
    synth.open_virtual_port("in")
    stamped: Stamped = []
    synth.set_callback(lambda m, d=None: stamped.append((time.perf_counter_ns(), list(m[0]))))
    name = f"rs{sig.value}-band"
    kb = Keyboard(kbd, 0)
    try:
        with _serve(jack_server, name, "--band-channels", "5,6,7") as sp:
            jack_server.connect(f"rs{sig.value}-kbd:out", f"{name}:in")
            jack_server.connect(f"{name}-out:out", f"rs{sig.value}-synth:in")
            time.sleep(0.3)
            st0 = sp.status()
            kb.grid = (int(st0["grid_t0_ns"]), float(st0["step_ns"]))
            kb.start()
            ok = wait_until(lambda: all(sounding(stamped, ch) for ch in (4, 5, 6)), 20)
            st = sp.status()
            keys = (
                "notes_out",
                "waiting",
                "performer_silent_steps",
                "late_inputs",
                "late_amended",
                "misses",
                "policy_errors",
                "performer_held",
                "bpm",
                "clock",
                "follow_window_ms",
                "step",
            )
            if not ok:
                print("NOT SOUNDING", sig.name, {k: st.get(k) for k in keys}, kb.sent_notes, stamped[-6:])
            assert ok
            t0 = time.perf_counter()
            sp.proc.send_signal(sig)
            rc = sp.proc.wait(10)
            took = time.perf_counter() - t0
            kb.stop()
            time.sleep(0.3)
            t_cc = first_cc123(stamped)
            left = {ch + 1: sounding(stamped, ch, t_cc) for ch in (4, 5, 6)}
            print(sig.name, "rc", rc, f"exit {took:.3f} s", "left before CC 123", left)
            assert rc == 0 and took < 1.0, (rc, took)
            assert all(not v for v in left.values()), left
    finally:
        kb.stop()
        close_rtmidi_port(kbd)
        close_rtmidi_port(synth)
