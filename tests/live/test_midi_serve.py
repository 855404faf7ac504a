"""`liveagent serve` with MIDI through a real JACK server: virtual ports, independent peers, MIDI clock."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from liveagent.live.io.device_clock import DeviceClockMapper
from liveagent.live.io.midi import close_rtmidi_port
from tests.live.conftest import JackServer
from tests.live.policies import PATTERN, write_pattern_policy
from tests.live.receiver_notes import midi_notes, sounding_at
from tests.live.serve_helpers import ServeProcess, wait_until
from tests.support import require_tool

pytestmark = [pytest.mark.system, pytest.mark.timeout(90)]


@pytest.fixture(scope="module")
def pattern_policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_pattern_policy(tmp_path_factory.mktemp("policy") / "pattern.onnx")


def _rt(kind: str, name: str) -> Any:
    import rtmidi

    cls = rtmidi.MidiIn if kind == "in" else rtmidi.MidiOut
    return cls(rtapi=rtmidi.API_UNIX_JACK, name=name)


_wait = wait_until


def _pattern_notes_skipped(ons: list[int]) -> int:
    """How many notes of the cyclic ``PATTERN`` (from the first of ``ons``) are missing from ``ons``; a pitch
    that is not in the pattern fails the test."""
    cycle = [PATTERN[k] for k in sorted(PATTERN)]
    assert set(ons) <= set(cycle), ons
    skipped, pos = 0, cycle.index(ons[0]) - 1 if ons else -1
    for p in ons:
        gap = (cycle.index(p) - pos - 1) % len(cycle)
        skipped += gap
        pos = cycle.index(p)
    return skipped


def test_serve_midi_in_and_out_through_jack(jack_server: JackServer, pattern_policy: Path) -> None:
    peer_out = _rt("out", "perf-kbd")
    peer_out.open_virtual_port("out")
    peer_in = _rt("in", "perf-synth")
    peer_in.open_virtual_port("in")
    received: list[list[int]] = []
    stamped: list[tuple[int, list[int]]] = []  # (arrival perf_counter_ns, message)

    def _hear(m: Any, d: object = None) -> None:
        received.append(list(m[0]))
        stamped.append((time.perf_counter_ns(), list(m[0])))

    peer_in.set_callback(_hear)
    try:
        with ServeProcess(
            "--policy",
            str(pattern_policy),
            "--virtual",
            "--midi-name",
            "la-srv",
            "--bpm",
            "240",
            "--midi-out-channel",
            "2",
        ) as sp:
            assert sp.fields["midi_backend"] == "jack"
            jack_server.connect("perf-kbd:out", "la-srv:in")
            jack_server.connect("la-srv-out:out", "perf-synth:in")
            time.sleep(0.1)
            sp.send("/liveagent/start")
            for p in (67, 69):
                peer_out.send_message([0x90, p, 100])
                time.sleep(0.1)
                peer_out.send_message([0x80, p, 0])
            # The performer holds a key: the agent (which rests until the performer plays and after a
            # bar of performer silence) keeps answering it.
            peer_out.send_message([0x90, 72, 100])
            assert _wait(lambda: len([m for m in received if m[0] == 0x91 and m[2] > 0]) >= 4)
            # /stop while the agent answers the held key: the engine's own note-off, before any CC 123
            assert sounding_at(midi_notes(stamped)), "no agent note sounding before the stop"
            sp.send("/liveagent/stop")
            time.sleep(0.3)
            assert sounding_at(midi_notes(stamped)) == {}, "a note outlived the transport stop"
            assert not [m for m in received if m[0] & 0xF0 == 0xB0], "a CC on /stop would hide the release"
            peer_out.send_message([0x80, 72, 0])
            ons = [m[1] for m in received if m[0] == 0x91 and m[2] > 0]
            assert _wait(lambda: sp.status()["notes_in"] == 3)
            status = sp.status()
            # The pattern, in order from the beat after the performer's first note (the agent never
            # plays before it); a step the engine missed under load (its DESIGN: the fallback, HOLD, is
            # played, counted in `misses`) drops its note, so only the misses may skip notes.
            assert status["waits_for_performer"] == 1
            assert _pattern_notes_skipped(ons) <= status["misses"], (ons, status["misses"])
            if status["misses"] == 0:
                cycle = [PATTERN[k] for k in sorted(PATTERN)]
                i = cycle.index(ons[0])
                assert ons[:4] == (cycle[i:] + cycle[:i]), ons
            assert sp.terminate(signal.SIGTERM) == 0
        balance: dict[int, int] = {}
        for st, p, v in (m for m in received if len(m) == 3 and m[0] & 0xF0 in (0x80, 0x90)):
            balance[p] = max(0, balance.get(p, 0) + (1 if st & 0xF0 == 0x90 and v > 0 else -1))
        assert not any(balance.values()), f"stuck notes at the receiver: {balance}"
        assert [0xB1, 123, 0] in received  # All Notes Off on the way out
    finally:
        close_rtmidi_port(peer_out)
        close_rtmidi_port(peer_in)


def test_serve_follows_jack_midi_clock(jack_server: JackServer, pattern_policy: Path) -> None:
    require_tool("jack_midi_clock", "jack_transport")
    import numpy as np

    env = jack_server.env()
    clock = subprocess.Popen(
        ["jack_midi_clock", "-b", "150", "-B"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    observer = _rt("in", "clock-observer")
    observer.ignore_types(sysex=False, timing=False, active_sense=False)
    observer.open_virtual_port("in")
    mapper = DeviceClockMapper()  # the observer's stamps: JACK's timeline, not its loaded Python callback
    ticks: list[tuple[int, int]] = []
    observer.set_callback(lambda m, d=None: ticks.append((mapper.map(m[1], time.perf_counter_ns()), m[0][0])))
    try:
        # The agent leads (no performer here): this test is about following the master's clock alone.
        with ServeProcess(
            "--policy",
            str(pattern_policy),
            "--virtual",
            "--midi-name",
            "la-follow",
            "--clock",
            "midi",
            "--no-wait-for-performer",
        ) as sp:
            jack_server.wait_port("jack_midi_clock:mclk_out")
            jack_server.connect("jack_midi_clock:mclk_out", "la-follow:in")
            jack_server.connect("jack_midi_clock:mclk_out", "clock-observer:in")
            subprocess.run(
                ["jack_transport"], input="play\n", env=env, text=True, capture_output=True, timeout=10
            )
            assert _wait(lambda: len(sp.rx.of("/liveagent/out/note")) >= 4, timeout=10)
            time.sleep(1.0)
            st = sp.status()
            t_status = time.perf_counter_ns()
            assert st["clock"] == "MidiClockFollower" and st["running"] == 1
            # The reference is the tempo the master really delivered over the follower's window (the
            # last 48 ticks), as the observer heard them: a loaded dummy JACK server loses wall time at
            # each xrun, and jack_midi_clock (counting frames) with it.
            heard = np.array([t for t, s in ticks if s == 0xF8 and t <= t_status], dtype=np.float64)[-48:]
            delivered = 60e9 / (np.polyfit(np.arange(heard.size), heard, 1)[0] * 24)
            assert delivered == pytest.approx(150.0, rel=0.05)
            assert st["bpm"] == pytest.approx(delivered, rel=0.01)
            ons = [p for p, v in sp.rx.of("/liveagent/out/note") if v > 0]
            assert set(ons) <= set(PATTERN.values())
            subprocess.run(
                ["jack_transport"], input="stop\n", env=env, text=True, capture_output=True, timeout=10
            )
            assert _wait(lambda: sp.status()["running"] == 0, timeout=5)
            assert sp.terminate() == 0
    finally:
        subprocess.run(
            ["jack_transport"], input="stop\n", env=env, text=True, capture_output=True, timeout=10
        )
        clock.terminate()
        clock.wait(timeout=5)
        close_rtmidi_port(observer)


def test_serve_as_midi_clock_master(jack_server: JackServer, pattern_policy: Path) -> None:
    """--midi-clock-out: Start, then 24 PPQN at the server's tempo, as an independent receiver hears it."""
    import numpy as np

    peer_in = _rt("in", "clock-slave")
    peer_in.ignore_types(sysex=False, timing=False, active_sense=False)  # every delta counts
    peer_in.open_virtual_port("in")
    got: list[tuple[float, int]] = []
    # stamped by the receiver's JACK thread (rtmidi's delta times), not by our loaded Python callback
    peer_in.set_callback(lambda m, d=None: got.append((m[1], m[0][0])))
    try:
        with ServeProcess(
            "--policy",
            str(pattern_policy),
            "--virtual",
            "--midi-name",
            "la-master-srv",
            "--bpm",
            "150",
            "--midi-clock-out",
        ) as sp:
            jack_server.connect("la-master-srv-out:out", "clock-slave:in")
            time.sleep(0.1)
            sp.send("/liveagent/start")
            assert _wait(lambda: sum(1 for _, s in got if s == 0xF8) >= 24 * 6, timeout=10)
            sp.send("/liveagent/stop")
            assert _wait(lambda: any(s == 0xFC for _, s in got), timeout=5)
            assert sp.terminate() == 0
        statuses = [s for _, s in got if s != 0x80 and s & 0xF0 not in (0x80, 0x90, 0xB0)]
        assert statuses[0] == 0xFA
        device_ns = np.cumsum([round(d * 1e9) for d, _ in got])
        ticks = np.array([t for t, (_, s) in zip(device_ns, got, strict=True) if s == 0xF8][24 : 24 * 6])
        bpm = 60e9 / (np.polyfit(np.arange(ticks.size), ticks, 1)[0] * 24)
        assert bpm == pytest.approx(150.0, rel=0.02)
    finally:
        close_rtmidi_port(peer_in)


def test_serve_warns_once_about_notes_on_its_output_channel(
    jack_server: JackServer, pattern_policy: Path
) -> None:
    """A keyboard on channel 2 (the agent's output channel by default) is filtered: the ready line names the
    channels and serve warns once on stderr, instead of a silent `midi_filtered` and an agent that never
    plays."""
    kbd = _rt("out", "ch2-kbd")
    kbd.open_virtual_port("out")
    try:
        with ServeProcess("--policy", str(pattern_policy), "--virtual", "--midi-name", "la-ch2") as sp:
            assert sp.fields["midi_in_channels"] == "all-but-2"
            assert sp.fields["midi_out_channel"] == "2"
            jack_server.connect("ch2-kbd:out", "la-ch2:in")
            time.sleep(0.1)
            for p in (60, 62, 64, 65):
                kbd.send_message([0x91, p, 100])
                kbd.send_message([0x81, p, 0])
            assert _wait(lambda: sp.status()["midi_filtered"] >= 8)

            def warned() -> list[str]:
                return [ln for ln in sp.stderr if "channel 2 are ignored" in ln]

            assert _wait(lambda: bool(warned()), timeout=5), "".join(sp.stderr)
            assert "--midi-out-channel" in warned()[0] and "--midi-channel" in warned()[0]
            st = sp.status()
            assert st["midi_filtered_on_out_channel"] == 4 and st["midi_in"] == 0
            for p in (60, 62):
                kbd.send_message([0x91, p, 100])
            assert _wait(lambda: sp.status()["midi_filtered_on_out_channel"] == 6)
            time.sleep(1.2)  # two more turns of serve's main loop
            assert sp.terminate() == 0
        assert len(warned()) == 1, "".join(sp.stderr)
    finally:
        close_rtmidi_port(kbd)


def test_serve_ready_line_names_explicit_midi_channels(jack_server: JackServer, pattern_policy: Path) -> None:
    with ServeProcess(
        "--policy", str(pattern_policy), "--virtual", "--midi-name", "la-ch13", "--midi-channel", "1,3"
    ) as sp:
        assert sp.fields["midi_in_channels"] == "1,3"
        assert sp.fields["midi_out_channel"] == "2"
        assert sp.terminate() == 0
