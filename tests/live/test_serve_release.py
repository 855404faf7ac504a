"""Every agent note is released by the engine itself (not by the all-notes-off burst on exit or panic) on
/stop, mute, a tempo change, a policy swap at the bar line and every terminating signal: checked at an
independent receiver of a real `serve`, on real UDP, BEFORE any burst (tests/live/receiver_notes.py)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import onnx
import pytest
from onnx import numpy_helper

from liveagent.music.tokens import HOLD, ONSET_BASE
from tests.live.policies import PATTERN, pattern_table, write_pattern_policy
from tests.live.receiver_notes import (
    before_first_burst,
    first_burst_time,
    log_time_ns,
    osc_notes,
    overlaps,
    read_session_log,
    sounding_at,
)
from tests.live.serve_helpers import ServeProcess, wait_until

pytestmark = pytest.mark.timeout(90)

LEADS = "--no-wait-for-performer"
MS = 1_000_000
SHIFTED = {2: 50, 6: 53, 10: 57, 14: 62}
"""A second pattern that HOLDs on the bar line (steps 0, 1): after a swap nothing sounds for two steps
unless the swap failed to release the old policy's note."""


@pytest.fixture(scope="module")
def pattern_policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_pattern_policy(tmp_path_factory.mktemp("policy") / "pattern.onnx")


def write_shifted_policy(path: Path) -> Path:
    """The pattern policy with ``SHIFTED``'s table (same contract, different notes)."""
    write_pattern_policy(path)
    model = onnx.load(str(path))
    table = pattern_table() * 0.0
    for pos in range(table.shape[0]):
        table[pos, ONSET_BASE + SHIFTED[pos] if pos in SHIFTED else HOLD] = 10.0
    for i, init in enumerate(model.graph.initializer):
        if init.name == "table":
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(table, name="table"))
    onnx.save(model, str(path))
    return path


def _sounding_now(sp: ServeProcess) -> dict[int, int]:
    return sounding_at(osc_notes(sp.rx))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT])
def test_every_terminating_signal_releases_every_note_within_a_second(
    pattern_policy: Path, sig: signal.Signals
) -> None:
    """At 60 BPM a note sounds for a whole beat: the signal lands while one sounds. The engine's own
    note-off must reach the receiver before the exit burst, and the process must be gone within 1 s."""
    with ServeProcess("--policy", str(pattern_policy), "--bpm", "60", "--autostart", LEADS) as sp:
        assert wait_until(lambda: bool(_sounding_now(sp)), 10), "no note sounding"
        time.sleep(0.1)
        held = _sounding_now(sp)
        assert held, "no note sounding when the signal is sent"
        t_sig = time.perf_counter_ns()
        sp.proc.send_signal(sig)
        rc = sp.proc.wait(10)
        t_exit = time.perf_counter_ns()
        time.sleep(0.1)  # datagrams in flight
        events = osc_notes(sp.rx)
        exit_ms = (t_exit - t_sig) / MS
        assert before_first_burst(events) == {}, f"{sig.name} (exit status {rc}): {held} not released"
        assert rc == 0, (sig.name, rc, "".join(sp.stderr)[-2000:])
        assert first_burst_time(events) is not None, "no all-notes-off burst on the way out"
        offs = [t for t, p, v in events if v == 0 and p in held and t >= t_sig]
        release_ms = (offs[0] - t_sig) / MS
        assert exit_ms < 1000.0, f"{sig.name}: exit took {exit_ms:.0f} ms"
        print(f"{sig.name}: note-off {release_ms:.1f} ms, exit {exit_ms:.1f} ms after the signal")


def test_stop_mute_and_tempo_release_before_any_burst(pattern_policy: Path) -> None:
    """60 BPM: a note sounds for a second, so a release that waits for the next step is caught."""
    with ServeProcess("--policy", str(pattern_policy), "--bpm", "60", "--autostart", LEADS) as sp:
        assert wait_until(lambda: bool(_sounding_now(sp)), 10)
        # mute: released at once (within 150 ms, the next step is 250 ms away)
        t = time.perf_counter_ns()
        sp.send("/liveagent/mute", 1)
        time.sleep(0.3)
        assert sounding_at(osc_notes(sp.rx), t + 150 * MS) == {}, "a note outlived the mute"
        sp.send("/liveagent/mute", 0)
        assert wait_until(lambda: bool(_sounding_now(sp)), 5)
        # tempo: the note sounding across the change still ends before the next starts
        sp.send("/liveagent/tempo", 150.0)
        n = len(osc_notes(sp.rx))
        assert wait_until(lambda: sum(v > 0 for _, _, v in osc_notes(sp.rx)[n:]) >= 3, 5)
        sp.send("/liveagent/tempo", 70.0)
        n = len(osc_notes(sp.rx))
        assert wait_until(lambda: sum(v > 0 for _, _, v in osc_notes(sp.rx)[n:]) >= 2, 5)
        assert bool(_sounding_now(sp)), "no note sounding before the stop"
        # stop: released at once
        t = time.perf_counter_ns()
        sp.send("/liveagent/stop")
        time.sleep(0.3)
        events = osc_notes(sp.rx)
        assert sounding_at(events, t + 150 * MS) == {}, "a note outlived the transport stop"
        assert overlaps(events) == [], "a note started while another still sounded"
        assert first_burst_time(events) is None  # everything above was the engine's own release
        assert sp.terminate() == 0


def test_policy_swap_lands_on_a_bar_line_and_releases(pattern_policy: Path, tmp_path: Path) -> None:
    """The swap step read from the session log is a bar line; the old policy's note (60, held over the
    bar's last beat) is released there, before the new policy's first note two steps later."""
    shifted = write_shifted_policy(tmp_path / "shifted.onnx")
    rec = tmp_path / "rec"
    with ServeProcess(
        "--policy", str(pattern_policy), "--bpm", "120", "--autostart", LEADS, "--record", str(rec)
    ) as sp:
        assert wait_until(lambda: sum(v > 0 for _, _, v in osc_notes(sp.rx)) >= 2, 10)
        time.sleep(0.3)  # mid-bar
        sp.send("/liveagent/policy", str(shifted))
        assert wait_until(lambda: any(p == SHIFTED[2] for _, p, _ in osc_notes(sp.rx)), 10)
        sp.send("/liveagent/stop")
        time.sleep(0.2)
        assert sp.terminate() == 0
    lines = read_session_log(rec)
    swaps = [x for x in lines if x["kind"] == "policy"]
    assert len(swaps) == 1 and swaps[0]["name"] == "shifted", swaps
    step = swaps[0]["step"]
    assert step % 16 == 0, f"swapped at step {step}, not on a bar line"
    t_swap = log_time_ns(lines, swaps[0]["t"])
    events = osc_notes(sp.rx)
    assert sounding_at(events, t_swap - 5 * MS) == {PATTERN[12]: 1}, "the old policy's last note"
    assert sounding_at(events, t_swap + 100 * MS) == {}, "the swap did not release the old note"
    first_new = next(t for t, p, v in events if p == SHIFTED[2] and v > 0)
    assert first_new > t_swap + 150 * MS  # step 2 of the bar: 250 ms after the bar line at 120 BPM
    assert overlaps(events) == []
