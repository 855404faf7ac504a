"""Review 8, hostile stage: what a real `liveagent serve --band satb --policy band_anticipate` puts on the
wire: the bass's v1 mirror, every note-off twice and back to back, nothing left sounding after a control.

Real UDP both ways; the receiver is an independent socket; releases are checked ignoring all-notes-off
bursts (a check after a burst could not fail).
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

import pytest

from tests.live.osc_helpers import OscCollector
from tests.live.receiver_notes import before_first_burst, first_burst_time, overlaps, sounding_at
from tests.live.serve_helpers import ServeProcess, wait_until
from tests.review8.wire import (
    ADDRESSES,
    notes_of,
    per_pitch,
    play_grid,
    repeat_order,
    restrikes_cut,
)

pytestmark = pytest.mark.timeout(180)

BAND_ANTICIPATE = (
    "--band",
    "satb",
    "--policy",
    "band_anticipate",
    "--bpm",
    "100",
    "--autostart",
    "--no-record",
)


class Played:
    """One anticipating-band session of 24 beats then SIGTERM: what the receiver heard and the status."""

    def __init__(self, rx: OscCollector, status: dict[str, Any], rc: int) -> None:
        self.rx, self.status, self.rc = rx, status, rc


@pytest.fixture(scope="module")
def played() -> Played:
    with ServeProcess(*BAND_ANTICIPATE) as sp:
        assert wait_until(lambda: "grid_t0_ns" in sp.status(), 10)
        play_grid(sp, threading.Event(), beats=24)
        time.sleep(0.3)
        st = sp.status()
        rc = sp.terminate(signal.SIGTERM)
        assert rc == 0, "".join(sp.stderr)[-2000:]
        return Played(sp.rx, st, rc)


def test_the_v1_address_mirrors_the_bass_note_for_note(played: Played) -> None:
    bass, v1 = notes_of(played.rx, "bass"), notes_of(played.rx, "v1")
    t_burst = first_burst_time(v1)
    assert t_burst is not None, "no exit burst on the v1 address"
    v1_before = [e for e in v1 if e[0] < t_burst]
    ons = [p for _, p, v in bass if v > 0]
    assert len(ons) >= 4, ons
    assert [p for _, p, v in v1_before if v > 0] == ons, "the v1 note-ons are not the bass's, in order"
    assert per_pitch(v1_before) == per_pitch(bass), "per pitch, v1 is not the bass (on/off order, repeats)"
    for address in ADDRESSES:
        assert before_first_burst(notes_of(played.rx, address)) == {}, f"{address} left sounding on SIGTERM"
        assert overlaps(notes_of(played.rx, address)) == [], f"{address} played two notes at once"


def test_every_noteoff_arrives_twice_on_every_address(played: Played) -> None:
    total_repeats = 0
    for address in ADDRESSES:
        ev = notes_of(played.rx, address)
        if address == "v1":
            t = first_burst_time(ev)
            ev = [e for e in ev if t is None or e[0] < t]
        firsts = repeat_order(ev)[0]
        offs = sum(1 for _, _, v in ev if v == 0)
        assert firsts >= 4, (address, firsts)
        assert offs == 2 * firsts, (address, offs, firsts)  # each note-off twice, nothing lost
        total_repeats += firsts
    # The status, taken before SIGTERM, counts no more repeats than the receiver heard in the end.
    assert 0 < int(played.status["osc_noteoff_repeats"]) <= total_repeats, (played.status, total_repeats)
    assert int(played.status["osc_send_errors"]) == 0, played.status


def test_each_repeat_arrives_back_to_back_before_the_next_note_on(played: Played) -> None:
    """The safety net's contract (``OscSinkConfig.noteoff_twice``, ``serve --help``): each repeat back to
    back with its note-off, before any note-on that follows on that address (a repeat held until the end of
    a band step was tried for the band's emission lateness and withdrawn: it arrived after the voice's next
    note-on and cut a re-struck pitch)."""
    report = {}
    for address in ("alto", "tenor", "bass"):
        ev = notes_of(played.rx, address)
        report[address] = (*repeat_order(ev), restrikes_cut(ev))
    assert all(between == 0 and cut == 0 for _, _, between, cut in report.values()), report
    assert all(firsts == b2b for firsts, b2b, _, _ in report.values()), report


@pytest.mark.parametrize("action", ["stop", "panic", "mute", "swap"])
def test_no_note_left_sounding_after_a_control(action: str) -> None:
    """Mid-play (every voice has played), one control; then nothing may sound on any address that the
    engine did not release itself, and the band keeps its grid (misses stay small)."""
    with ServeProcess(*BAND_ANTICIPATE) as sp:
        stop = threading.Event()
        performer = threading.Thread(target=play_grid, args=(sp, stop, 48), daemon=True)
        performer.start()
        assert wait_until(lambda: all(notes_of(sp.rx, v) for v in ADDRESSES), 20), "not every voice played"
        time.sleep(0.5)
        t_action = time.perf_counter_ns()
        if action == "stop":
            sp.send("/liveagent/stop")
        elif action == "panic":
            sp.send("/liveagent/panic")
        elif action == "mute":
            sp.send("/liveagent/mute", 1)
        else:
            sp.send("/liveagent/policy", "band")
            assert wait_until(lambda: sp.status().get("policy") == "band", 15), "no swap to band"
            time.sleep(1.0)
            sp.send("/liveagent/policy", "band_anticipate")
            assert wait_until(lambda: sp.status().get("policy") == "band_anticipate", 15), "no swap back"
            time.sleep(1.0)
        time.sleep(0.5)
        t_check = time.perf_counter_ns()
        st = sp.status()
        assert int(st["misses"]) <= 3, st
        stop.set()
        performer.join(5)
        assert sp.terminate(signal.SIGTERM) == 0, "".join(sp.stderr)[-2000:]
    for address in ADDRESSES:
        ev = notes_of(sp.rx, address)
        assert overlaps(ev) == [], (action, address)
        assert before_first_burst(ev) == {} if address == "v1" else sounding_at(ev) == {}, (action, address)
        if action in ("stop", "mute"):
            assert sounding_at(ev, t_check) == {}, (action, address, "sounds after the control")
            late_ons = [e for e in ev if t_action + 100_000_000 < e[0] <= t_check and e[2] > 0]
            assert late_ons == [], (action, address, late_ons)
        if action == "panic":
            t_burst = first_burst_time(notes_of(sp.rx, "v1"))
            assert t_burst is not None and t_burst > t_action
            assert sounding_at(ev, t_burst) == {}, (action, address, "released only by the burst")
