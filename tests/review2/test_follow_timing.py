"""Review 2, change 2 (follow timing: chord grace from the latest note; no spin before a follow decision),
measured through a real serve subprocess and real UDP, this tree against the commit before
(``LIVEAGENT_OLD_TREE``).

* held/rest steps: decided when the window closes (``--follow-window-ms 10``); the agent's messages of
  those steps should leave at T_k + 10 ms. Lateness past the close, p50/p95/max.
* a burst of note-ons 2 ms apart within one step (an arpeggiator / a Pd patch / a palm cluster on a
  controller with scanning): the grace now runs from the latest note, so the answer waits for the whole
  burst (up to the window's close + half the budget).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.review.band_harness import VOICES, Run, play
from tests.review2.harness import ROOT, tree

MELODY = [72, 74, 76, 77, 79, 77, 76, 74]


def quarter_notes(bars: int) -> list[tuple[float, int, int, float]]:
    ev = []
    for b in range(bars * 4):
        p = MELODY[b % len(MELODY)]
        ev += [(float(b), p, 90, 1.0), (b + 0.9, p, 0, 1.0)]
    return ev


def close_lateness(run: Run, names: tuple[str, ...], window_ms: float) -> list[float]:
    onset_steps = {run.step_of(t) for t, _p, v in run.sent if v > 0}
    out = []
    for nm in names:
        for t, _p, _v in run.lines[nm]:
            k = run.step_of(t)
            if 0 <= k < run.n_steps and k not in onset_steps:
                due = run.t0 + (run.start_step + k) * run.step_ns
                out.append((t - due) / 1e6 - window_ms)
    return out


def stats(x: list[float]) -> dict[str, float]:
    a = np.asarray(x)
    return {
        "n": float(a.size),
        "p50": round(float(np.percentile(a, 50)), 2),
        "p95": round(float(np.percentile(a, 95)), 2),
        "max": round(float(a.max()), 2),
        "over_1ms": round(float((a > 1.0).mean() * 100), 1),
    }


def held_steps(root: str | None, band: bool) -> dict[str, float]:
    """Whole notes (15 of 16 steps held, decided at the window's close): the engine's own lateness
    percentiles (emission - T_k, /liveagent/status) minus the 10 ms window, and the receiver's view of
    the agent's messages on held steps."""
    args = ["--follow-window-ms", "10"]
    if band:
        args += ["--band", "satb", "--policy", str(ROOT / "export" / "band.onnx")]
    ev = []
    for b in range(8):
        p = MELODY[b % len(MELODY)]
        ev += [(4.0 * b, p, 90, 1.0), (4.0 * b + 3.9, p, 0, 1.0)]
    with tree(root):
        run = play(args, ev, bpm=120, beats=32)
    st = run.status
    out = {k: round(float(st[f"lateness_{k}_us"]) / 1000 - 10.0, 2) for k in ("p50", "p99", "max")}
    out |= {f"decision_{k}": round(float(st[f"decision_{k}_us"]) / 1000, 2) for k in ("p50", "p99")}
    # the wake-up's share: lateness past the close minus the decision's own time
    out["wake_p50"] = round(out["p50"] - out["decision_p50"], 2)
    rx = close_lateness(run, VOICES if band else ("solo",), 10.0)
    if rx:
        out |= {f"rx_{k}": v for k, v in stats(rx).items()}
    return out | {"misses": float(st.get("misses", -1))}


def burst_latency(root: str | None, gap_ms: float, n: int) -> dict[str, float]:
    ev: list[tuple[float, int, int, float]] = []
    for b in range(16):
        for i in range(n):
            ev.append((float(b), 60 + i, 90, 1.0 + i * gap_ms))
        for i in range(n):
            ev.append((b + 0.75, 60 + i, 0, 1.0))
    with tree(root):
        run = play([], ev, bpm=120, beats=16)
    firsts: dict[int, int] = {}
    for t, _p, _v in run.lines["solo"]:
        k = run.step_of(t)
        firsts.setdefault(k, t)
    lat = []
    seen: set[int] = set()
    for t, _p, v in run.sent:
        k = run.step_of(t)
        if v > 0 and k not in seen and k in firsts:
            seen.add(k)
            lat.append((firsts[k] - t) / 1e6)
    # the first 8 onsets: the adaptive window is still 50 ms (warm-up), so the cap is T_k + 52.5 ms
    return (
        stats(lat)
        | {f"warm_{k}": v for k, v in stats(lat[8:]).items() if k in ("p50", "max")}
        | {
            "status_misses": float(run.status.get("misses", -1)),
            "late_amended": float(run.status["late_amended"]),
        }
    )


@pytest.mark.parametrize("band", [False, True], ids=["solo", "band"])
def test_held_steps_leave_at_window_close(band: bool) -> None:
    got = held_steps(None, band)
    print("new held-step lateness past close (ms):", got)
    # Reviewed: without the spin a held step leaves ~0.3 ms after the window closes (0.15 ms with it; the
    # spin could not read the queue, and a chord's last note-on was amended as late). Not a speed claim:
    # this only fails if the engine stops waking at the close (a sleep granularity of milliseconds).
    assert got["wake_p50"] < 5.0, got


def test_burst_answer_latency() -> None:
    got = burst_latency(None, 2.0, 12)
    print("new burst (12 note-ons 2 ms apart) answer latency (ms):", got)
    # Before the span cap the grace kept stretching with the burst (p95 26 ms, up to the window's 52.5 ms
    # cap); with it an answer waits at most three graces (9 ms) after the first note plus the decision.
    # Not a speed claim: the bound is wide enough for a loaded machine, and fails only if the grace is
    # unbounded again.
    assert got["max"] < 40.0, got
