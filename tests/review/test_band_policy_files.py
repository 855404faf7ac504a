"""Review (issue 10): band policy files whose metadata ``band`` lies or is malformed, loaded at start and
sent to a playing ``serve --band satb`` with ``/liveagent/policy``. Each must be a clear error, never a crash.

Real ``serve`` subprocess, real UDP. Files are export/band.onnx with its metadata edited (band_files.py).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.live.receiver_notes import before_first_burst
from tests.live.serve_helpers import ServeProcess, wait_until
from tests.live.test_serve_band import VOICES, play_melody, voice_notes
from tests.review.band_files import VARIANTS, variant

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("name", ["ranges_inf", "deep"])
def test_malformed_band_metadata_at_start_is_an_error_not_a_traceback(tmp_path: Path, name: str) -> None:
    """FAILS now: ``BandSpec.from_json`` catches ValueError/KeyError/TypeError/IndexError only, so
    ``[Infinity, 74]`` (OverflowError) and a deeply nested array (RecursionError) escape ``_band_prop`` as
    non-PolicyError and serve dies with a traceback, exit 1 (a file that breaks the contract should be exit 2
    with a one-line reason, as every other malformed metadata is)."""
    f = variant(tmp_path, name, **VARIANTS[name])
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "liveagent",
            "serve",
            "--osc-port",
            "0",
            "--no-record",
            "--band",
            "satb",
            "--policy",
            str(f),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-600:])
    assert "Traceback" not in proc.stderr, proc.stderr[-600:]


@pytest.mark.parametrize(
    ("name", "serve_args", "stopped"),
    [
        ("range_outside_policy", (), False),  # the file lies: alto 100..120 outside its pitch range 36..74
        ("range_outside_policy", (), True),  # the same, loaded while stopped (swapped at once)
        ("alto_high", ("--pitch-max", "60"), False),  # an honest band file, the server's range excludes alto
    ],
)
def test_band_file_whose_voice_range_the_engine_cannot_play_does_not_kill_a_playing_band(
    tmp_path: Path, name: str, serve_args: tuple[str, ...], stopped: bool
) -> None:
    """FAILS now: a band file whose voice range (alto 100..120) lies outside its own pitch_min..pitch_max
    (36..74) passes every check of ``on_loaded`` (``mask_for`` checks only the global range), is made
    pending, and at the next bar line ``swap_pending`` -> ``PolicyView._install`` raises PolicyError on the
    ENGINE thread: the engine thread dies and serve exits 1 ("the engine stopped unexpectedly") mid-song.
    At start the same file is refused cleanly (exit 2), so only the live path is broken. An honest band
    file (alto 62..74, inside its own 36..74) does the same to a server started with ``--pitch-max 60``.
    Also: ``_install`` assigns ``self.policy``/``self.mask`` before the check, so catching the error alone
    would leave a half-installed view; the check belongs in ``on_loaded`` (beside ``mask_for``)."""
    f = variant(tmp_path, name, **VARIANTS[name])
    with ServeProcess("--band", "satb", "--bpm", "100", "--autostart", "--no-record", *serve_args) as sp:
        stop = threading.Event()
        performer = threading.Thread(target=play_melody, args=(sp, stop, 48), daemon=True)
        performer.start()
        assert wait_until(lambda: all(voice_notes(sp.rx, v) for v in VOICES), 15)
        if stopped:
            sp.send("/liveagent/stop")
            time.sleep(0.3)
        sp.send("/liveagent/policy", str(f))
        time.sleep(3.0)  # > one bar at 100 BPM: the swap point has passed
        alive = sp.proc.poll() is None
        stop.set()
        performer.join(5)
        assert alive, f"serve died after /liveagent/policy: {''.join(sp.stderr)[-800:]}"
        st = sp.status()
        assert st["policy"] == "band" and st["running"] == (0 if stopped else 1), st
        errors = [m[0] for _, a, m in list(sp.rx.messages) if a == "/liveagent/error"]
        assert any("not swapped in" in e for e in errors), errors
        n_before = sum(1 for _, _, v in voice_notes(sp.rx, "bass") if v)
        assert sp.terminate() == 0
        assert n_before > 0
        for v in VOICES:
            assert before_first_burst(voice_notes(sp.rx, v)) == {}, v


def test_refused_swaps_are_counted_in_the_status() -> None:
    """FAILS now: ``/liveagent/policy default`` (a solo policy) and a band file of other voices sent to a
    band server are refused cleanly (an /error reply, the band keeps playing), but nothing in the status
    counts them: ``swaps`` and ``policy_errors`` stay 0 and no key counts refused or failed loads, so a
    monitor (or a test) cannot tell a refused swap from one never asked for."""
    with ServeProcess("--band", "satb", "--bpm", "100", "--autostart", "--no-record") as sp:
        time.sleep(0.3)
        st0 = sp.status()
        for name in ("default", "rules", "/nonexistent/band.onnx"):
            sp.send("/liveagent/policy", name)
            time.sleep(0.7)  # under the 2 loads/s limit
        assert wait_until(lambda: len(sp.rx.of("/liveagent/error")) >= 3, 5), sp.rx.of("/liveagent/error")
        st = sp.status()
        assert sp.terminate() == 0
        moved = {
            k: (st0.get(k), v)
            for k, v in st.items()
            if any(w in k for w in ("refus", "reject", "load", "swap", "policy_err")) and v != st0.get(k)
        }
        assert moved, {k: v for k, v in st.items() if "policy" in k or "swap" in k}
