"""A real `liveagent serve --policy style` steered over real UDP: /liveagent/mood and /liveagent/style change
the status's style while the agent keeps answering a performer, with no note left sounding; bad requests are
counted errors; `serve --mood` starts in a mood and refuses a bad one."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from liveagent.live.engine.policy import OnnxPolicy
from liveagent.live.style_rules import StyleRequest, resolve
from tests.live.conftest import JackServer
from tests.live.receiver_notes import before_first_burst, osc_notes, overlaps, read_session_log
from tests.live.serve_helpers import ServeProcess, wait_until

BPM = 240.0
"""A bar is a second: a glide is over in one."""
MELODY = (60, 64, 67, 72, 67, 64, 62, 65)


def z_text(mood: str) -> str:
    """The status's ``style`` for a mood of the shipped style policy."""
    return " ".join(f"{v:.2f}" for v in OnnxPolicy.load("style").meta.moods[mood])


def play(serve: ServeProcess, stop: threading.Event) -> None:
    """The performer: a note a beat, each released half a beat later."""
    beat = 60.0 / BPM
    i = 0
    while not stop.is_set():
        p = MELODY[i % len(MELODY)]
        serve.send("/liveagent/note", p, 90)
        time.sleep(beat / 2)
        serve.send("/liveagent/note", p, 0)
        time.sleep(beat / 2)
        i += 1


@pytest.mark.timeout(120)
def test_serve_changes_mood_live_and_keeps_playing() -> None:
    with ServeProcess("--policy", "style", "--bpm", f"{BPM:g}", "--no-record", "--autostart") as serve:
        assert serve.fields["mood"] == "neutral", serve.fields
        st = serve.status()
        assert st["style_mood"] == "neutral" and st["style_dim"] == 4 and st["style"] == z_text("neutral")
        stop = threading.Event()
        performer = threading.Thread(target=play, args=(serve, stop), daemon=True)
        performer.start()
        try:
            assert wait_until(lambda: serve.status()["notes_out"] >= 3, 10), serve.status()
            t_change = time.perf_counter_ns()
            serve.send("/liveagent/mood", "busy")
            seen: list[dict[str, object]] = []

            def settled() -> bool:
                seen.append(serve.status())
                return seen[-1]["style_mood"] == "busy" and seen[-1]["style_gliding"] == 0

            assert wait_until(settled, 10), seen[-3:]
            assert seen[-1]["style"] == z_text("busy"), seen[-1]
            # the glide was seen on its way (a bar: 1 s here, the status is at most ~100 ms old)
            assert any(s["style_mood"] == "busy" and s["style_gliding"] == 1 for s in seen), seen
            on_after = len([e for e in osc_notes(serve.rx) if e[2] > 0 and e[0] > t_change])
            time.sleep(1.0)
            on_later = len([e for e in osc_notes(serve.rx) if e[2] > 0 and e[0] > t_change])
            assert on_later > on_after, "the agent stopped answering after the mood change"

            # bad requests: counted errors with the reason, the style unchanged
            before = serve.status()["input_errors"]
            n_err = len(serve.rx.of("/liveagent/error"))
            serve.send("/liveagent/mood", "nope")
            errs = serve.rx.wait_for("/liveagent/error", n_err + 1, 5)
            assert any("unknown mood 'nope'" in str(e[0]) and "busy" in str(e[0]) for e in errs), errs
            assert wait_until(lambda: serve.status()["input_errors"] == before + 1, 5)
            st = serve.status()
            assert st["style_mood"] == "busy" and st["style"] == z_text("busy")

            # the pad: a point of the main plane, "custom"
            serve.send("/liveagent/style", 0.5, -0.5)
            assert wait_until(lambda: serve.status()["style_mood"] == "custom", 5)
            serve.send("/liveagent/style", 1.5, 0.0)
            assert wait_until(lambda: serve.status()["input_errors"] == before + 2, 5)
            assert serve.status()["osc_errors"] == 0  # the policy-dependent rule is the engine's
            serve.send("/liveagent/style", float("nan"), 0.0)
            assert wait_until(
                lambda: serve.status()["osc_errors"] == 1, 5
            )  # the context-free one: at the door
        finally:
            stop.set()
            performer.join(5)
        time.sleep(0.3)
        serve.send("/liveagent/stop")
        assert wait_until(lambda: serve.status()["running"] in (0, False), 5)
        time.sleep(0.2)
        final = serve.status()
        assert serve.terminate() == 0
    events = osc_notes(serve.rx)
    assert before_first_burst(events) == {}, events[-10:]
    assert overlaps(events) == [], overlaps(events)[:3]
    print(f"style serve: notes_out={final['notes_out']} misses={final['misses']} steps={final['steps']}")


@pytest.mark.timeout(120)
def test_serve_mood_flag() -> None:
    with ServeProcess("--policy", "style", "--mood", "dark", "--no-record") as serve:
        assert serve.fields["mood"] == "dark"
        assert wait_until(lambda: serve.status()["style_mood"] == "dark", 5)
        assert serve.status()["style"] == z_text("dark")
    for args, words in (
        (("--policy", "style", "--mood", "nope"), "unknown mood 'nope'"),
        (("--policy", "rules", "--mood", "calm"), "has no style input"),
    ):
        r = subprocess.run(
            [sys.executable, "-m", "liveagent", "serve", "--osc-port", "0", "--no-record", *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 2 and words in r.stderr, r.stderr


@pytest.mark.system
@pytest.mark.timeout(90)
def test_serve_midi_pad_ccs_through_jack(jack_server: JackServer) -> None:
    """A controller's CC 16/17 on the performer's channel, through real JACK MIDI, move the pad; other
    channels and --style-cc pick and limit them."""
    import rtmidi

    kbd = rtmidi.MidiOut(rtapi=rtmidi.API_UNIX_JACK, name="pad-ctl")
    kbd.open_virtual_port("out")
    try:
        with ServeProcess(
            "--policy", "style", "--no-record", "--virtual", "--midi-name", "la-style", "--style-cc", "20,21"
        ) as serve:
            jack_server.connect("pad-ctl:out", "la-style:in")
            time.sleep(0.1)
            kbd.send_message([0xB0, 16, 127])  # the default CC: not the pad with --style-cc 20,21
            kbd.send_message([0xB0, 20, 127])  # x = 1
            kbd.send_message([0xB0, 21, 0])  # y = -1
            assert wait_until(lambda: serve.status()["midi_style_cc"] == 2, 5), serve.status()
            # The pad point reaches the engine coalesced (at most one per 10 ms): a status read right after
            # the CC count moved may still show the old mood (the full suite saw 'neutral' once).
            assert wait_until(lambda: serve.status()["style_mood"] == "custom", 5), serve.status()
            st = serve.status()
            meta = OnnxPolicy.load("style").meta
            want = resolve(meta, StyleRequest(values=(1.0, -1.0)))
            assert st["style_mood"] == "custom"
            assert [float(v) for v in st["style"].split()] == pytest.approx(want, abs=0.006)
            assert st["input_errors"] == 0
    finally:
        kbd.close_port()


@pytest.mark.timeout(150)
def test_demo_mood_reaches_the_server(tmp_path: Path) -> None:
    out = tmp_path / "out"
    demo = [sys.executable, "-m", "liveagent", "demo", "--no-monitor", "--policy", "style"]
    r = subprocess.run(
        [*demo, "--melody", "ode", "--bars", "2", "--bpm", "150", "--mood", "busy", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    events = read_session_log(out / "server-recording")
    styles = [e for e in events if "busy" in json.dumps(e)]
    assert styles, events[:5]
    r = subprocess.run(
        [*demo, "--mood", "nope", "--out", str(tmp_path / "bad")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and "unknown mood 'nope'" in r.stderr, r.stderr
