"""A hostile musician's harness: a real `liveagent serve [--band satb]`, a human performer over real UDP, and
the music measured from what an independent OSC receiver heard (review of issue 10).

The performer is a list of ``(beat, pitch, velocity)`` events (velocity 0 = release) placed on the server's
own grid (``grid_t0_ns``, ``step_ns`` of ``/liveagent/status``), each shifted by a human timing offset.
What the voices played is folded back onto the grid and measured with the band metrics of
``liveagent/env/band_metrics.py`` against what the performer actually played (wrong notes included).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from liveagent.env.band_metrics import band_piece_stats, melody_consonance_counts
from liveagent.music.tokens import HOLD, NO_PITCH, ONSET_BASE, REST, sounding_pitches
from tests.live.receiver_notes import NoteEv, before_first_burst, overlaps
from tests.live.serve_helpers import ServeProcess

log = logging.getLogger(__name__)

VOICES = ("alto", "tenor", "bass")
PerfEv = tuple[float, int, int]
"""(beat from the start, pitch, velocity); velocity 0 releases."""


def voice_events(sp: ServeProcess, address: str) -> list[NoteEv]:
    return [(t, int(p[0]), int(p[1])) for t, a, p in list(sp.rx.messages) if a == address]


@dataclass
class Run:
    """What one session produced: the performer as sent, each line as received, the grid, the status."""

    t0: int
    step_ns: float
    start_step: int
    n_steps: int
    sent: list[tuple[int, int, int]]  # (send ns, pitch, velocity)
    lines: dict[str, list[NoteEv]]
    status: dict[str, Any]
    stderr: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def step_of(self, t_ns: int) -> int:
        return math.floor((t_ns - self.t0) / self.step_ns + 0.5) - self.start_step


def humanize(
    events: Sequence[PerfEv], *, late_ms: float, sd_ms: float, seed: int = 0
) -> list[tuple[float, int, int, float]]:
    """Each event with a timing offset in ms: onsets late_ms late on average, jittered (sd sd_ms); a
    release keeps the offset of its onset (the hand's timing, not the grid's)."""
    rng = np.random.default_rng(seed)
    out = []
    last: dict[int, float] = {}
    for beat, pitch, vel in events:
        if vel > 0:
            off = float(late_ms + rng.normal(0.0, sd_ms)) if sd_ms > 0 else late_ms
            last[pitch] = off
        else:
            off = last.get(pitch, late_ms)
        out.append((beat, pitch, vel, off))
    return out


def play(
    args: Sequence[str],
    events: Sequence[tuple[float, int, int, float]],
    *,
    bpm: float,
    beats: float,
    controls: Sequence[tuple[float, str, tuple[Any, ...]]] = (),
    tail_s: float = 0.6,
) -> Run:
    """Start serve, play ``events`` (beat, pitch, vel, offset ms) from the next bar line at least 0.6 s away,
    send ``controls`` (beat, address, args) on the way, wait, read the status, terminate."""
    rec = () if "--record" in args else ("--no-record",)
    sp = ServeProcess(*args, "--bpm", str(bpm), "--autostart", *rec)
    try:
        time.sleep(0.3)
        st = sp.status()
        t0, step_ns = int(st["grid_t0_ns"]), float(st["step_ns"])
        spb = 16
        now_k = (time.perf_counter_ns() - t0) / step_ns
        start = int(math.ceil((now_k + 0.6e9 / step_ns) / spb) * spb)
        step_per_beat = 4
        sched: list[tuple[int, str, tuple[Any, ...]]] = []
        for beat, pitch, vel, off in events:
            t = t0 + (start + beat * step_per_beat) * step_ns + off * 1e6
            sched.append((int(t), "/liveagent/note", (pitch, vel)))
        # controls are placed on the grid of the time of sending (tempo changes re-anchor it)
        for beat, addr, cargs in controls:
            sched.append((int(t0 + (start + beat * step_per_beat) * step_ns), addr, cargs))
        sched.sort(key=lambda x: x[0])
        sent: list[tuple[int, int, int]] = []
        for t, addr, cargs in sched:
            while True:
                d = t - time.perf_counter_ns()
                if d <= 0:
                    break
                if d > 3_000_000:
                    time.sleep((d - 2_000_000) / 1e9)
            sp.send(addr, *cargs)
            if addr == "/liveagent/note":
                sent.append((time.perf_counter_ns(), cargs[0], cargs[1]))
        end_t = t0 + (start + beats * step_per_beat) * step_ns
        time.sleep(max(0.0, (end_t - time.perf_counter_ns()) / 1e9) + tail_s)
        status = sp.status()
        lines = {v: voice_events(sp, f"/liveagent/out/{v}/note") for v in VOICES}
        lines["solo"] = voice_events(sp, "/liveagent/out/note")
        sp.terminate()
        return Run(
            t0=t0,
            step_ns=step_ns,
            start_step=start,
            n_steps=int(beats * step_per_beat),
            sent=sent,
            lines=lines,
            status=status,
            stderr="".join(sp.stderr)[-3000:],
            extra={"stuck": {k: before_first_burst(v) for k, v in lines.items()}},
        )
    finally:
        sp.close()


def performer_tokens(run: Run) -> np.ndarray:
    """The performer's line on the grid as the engine would hear it: skyline of the held keys, an onset
    where the top note is newly struck (nearest step), HOLD while it sounds, REST when nothing is held."""
    n = run.n_steps
    tok = np.full(n, REST, dtype=np.int64)
    held: set[int] = set()
    by_step: dict[int, list[tuple[int, int]]] = {}
    for t, p, v in run.sent:
        by_step.setdefault(run.step_of(t), []).append((p, v))
    top = NO_PITCH
    for k in range(n):
        struck: list[int] = []
        for p, v in by_step.get(k, []):
            if v > 0:
                held.add(p)
                struck.append(p)
            else:
                held.discard(p)
        new_top = max(held) if held else NO_PITCH
        if new_top == NO_PITCH:
            tok[k] = REST
        elif new_top in struck or new_top != top:
            tok[k] = ONSET_BASE + new_top
        else:
            tok[k] = HOLD
        top = new_top
    return tok


def line_tokens(run: Run, events: Sequence[NoteEv]) -> np.ndarray:
    """A voice's line on the grid from its received note-ons/offs (bursts ignored: after the run)."""
    n = run.n_steps
    tok = np.full(n, REST, dtype=np.int64)
    ons: dict[int, int] = {}
    offs: set[int] = set()
    for t, p, v in events:
        k = run.step_of(t)
        if not 0 <= k < n:
            continue
        if v > 0:
            ons[k] = p
        else:
            offs.add(k)
    sounding = False
    for k in range(n):
        if k in ons:
            tok[k] = ONSET_BASE + ons[k]
            sounding = True
        elif k in offs:
            sounding = False
            tok[k] = REST
        else:
            tok[k] = HOLD if sounding else REST
    return tok


def restrikes(voice: np.ndarray, soprano: np.ndarray) -> tuple[int, int]:
    """(same-pitch re-strikes while the soprano holds, onsets while the soprano holds): a voice that strikes
    again the note it already sounds, with no new note in the melody to answer, stutters."""
    vs = sounding_pitches(voice)
    n_same = n_all = 0
    for k in range(1, voice.size):
        if voice[k] >= ONSET_BASE and soprano[k] == HOLD:
            n_all += 1
            if vs[k - 1] == voice[k] - ONSET_BASE:
                n_same += 1
    return n_same, n_all


def doubling(voice: np.ndarray, soprano: np.ndarray) -> tuple[int, int]:
    """(onsets in unison with the soprano's sounding note, judged onsets)."""
    s = sounding_pitches(soprano)
    on = (voice >= ONSET_BASE) & (s != NO_PITCH)
    return int(((voice - ONSET_BASE == s) & on).sum()), int(on.sum())


def answer_latency_ms(run: Run, names: Sequence[str]) -> list[float]:
    """Per performer note-on: first note message of any of ``names`` for the same step, minus the send."""
    firsts: dict[int, int] = {}
    for nm in names:
        for t, _p, _v in run.lines[nm]:
            k = run.step_of(t)
            if k not in firsts or t < firsts[k]:
                firsts[k] = t
    out = []
    seen: set[int] = set()
    for t, _p, v in run.sent:
        k = run.step_of(t)
        if v > 0 and k not in seen and k in firsts:
            seen.add(k)
            out.append((firsts[k] - t) / 1e6)
    return out


def report(run: Run, names: Sequence[str] = VOICES) -> dict[str, Any]:
    """The numbers a musician listens for, per voice and for the band."""
    sop = performer_tokens(run)
    bars = run.n_steps / 16
    out: dict[str, Any] = {}
    lines = {nm: line_tokens(run, run.lines[nm]) for nm in names}
    for nm in names:
        ln = lines[nm]
        ok, judged = melody_consonance_counts(ln, sop, is_bass=nm in ("bass", "solo"))
        same, all_ = restrikes(ln, sop)
        dbl, dj = doubling(ln, sop)
        out[nm] = {
            "notes_per_bar": round(int((ln >= ONSET_BASE).sum()) / bars, 2),
            "consonance_pct": round(100 * ok / judged, 1) if judged else None,
            "restrikes_under_held_soprano": same,
            "onsets_under_held_soprano": all_,
            "unison_with_soprano": f"{dbl}/{dj}",
            "overlaps": len(overlaps(run.lines[nm])),
            "stuck_before_burst": run.extra["stuck"][nm],
        }
    if set(VOICES) <= set(names):
        st = band_piece_stats(sop, {v: lines[v] for v in VOICES})
        notes = sum(st.notes.values())
        out["band"] = {
            "parallels_per_100": round(100 * sum(st.pair_parallels.values()) / notes, 2) if notes else None,
            "crossing_pct": round(100 * st.crossed / st.crossing_judged, 2) if st.crossing_judged else None,
            "spacing_pct": round(100 * st.spacing_violations / max(1, st.spacing_judged), 1),
            "pair_consonance_pct": {
                k: round(100 * st.pair_consonant[k] / st.pair_judged[k], 1)
                for k in st.pair_judged
                if st.pair_judged[k]
            },
        }
    lat = answer_latency_ms(run, names)
    if lat:
        out["answer_ms"] = {
            "n": len(lat),
            "p50": round(float(np.percentile(lat, 50)), 1),
            "p95": round(float(np.percentile(lat, 95)), 1),
            "max": round(max(lat), 1),
        }
    keys = ("misses", "skipped", "answered_pct", "late_amended", "late_inputs", "policy_errors", "decisions")
    out["status"] = {k: run.status.get(k) for k in keys}
    return out


def _name(tok: int) -> str:
    if tok == REST:
        return "  . "
    if tok == HOLD:
        return "  | "
    p = tok - ONSET_BASE
    return f"{['C', 'C#', 'D', 'Eb', 'E', 'F', 'F#', 'G', 'Ab', 'A', 'Bb', 'B'][p % 12]}{p // 12 - 1}".rjust(
        4
    )


def roll(run: Run, names: Sequence[str] = VOICES) -> str:
    """A text score, one row per part, one column per eighth note (steps 0, 2, 4...)."""
    rows = {"sop": performer_tokens(run), **{nm: line_tokens(run, run.lines[nm]) for nm in names}}
    out = []
    for nm, ln in rows.items():
        out.append(f"{nm[:5]:>5} " + "".join(_name(int(ln[k])) for k in range(0, ln.size, 2)))
    return "\n".join(out)


def beat_time_ns(beat: float, t_start: float, tempo_map: Sequence[tuple[float, float]]) -> float:
    """Absolute ns of ``beat`` under a tempo map ``[(from beat, bpm), ...]`` (sorted, first at beat 0)."""
    t = t_start
    for i, (b0, bpm) in enumerate(tempo_map):
        b1 = tempo_map[i + 1][0] if i + 1 < len(tempo_map) else math.inf
        if beat <= b1:
            return t + (beat - b0) * 60e9 / bpm
        t += (b1 - b0) * 60e9 / bpm
    raise AssertionError("unreachable")


def play_tempo_map(
    args: Sequence[str],
    events: Sequence[tuple[float, int, int, float]],
    tempo_map: Sequence[tuple[float, float]],
    beats: float,
) -> tuple[dict[str, list[NoteEv]], list[tuple[int, int, int]], dict[str, Any], dict[str, Any]]:
    """Like :func:`play` with /liveagent/tempo sent at each tempo change of ``tempo_map`` (performer and
    server change together, as a band leader counts in the new tempo). Returns lines, sent, status, stuck."""
    sp = ServeProcess(*args, "--bpm", str(tempo_map[0][1]), "--autostart", "--no-record")
    try:
        time.sleep(0.3)
        st = sp.status()
        t0, step_ns = int(st["grid_t0_ns"]), float(st["step_ns"])
        now_k = (time.perf_counter_ns() - t0) / step_ns
        start = int(math.ceil((now_k + 0.6e9 / step_ns) / 16) * 16)
        t_start = t0 + start * step_ns
        sched: list[tuple[int, str, tuple[Any, ...]]] = [
            (int(beat_time_ns(b, t_start, tempo_map) + off * 1e6), "/liveagent/note", (p, v))
            for b, p, v, off in events
        ]
        sched += [
            (int(beat_time_ns(b, t_start, tempo_map)) - 1_000_000, "/liveagent/tempo", (float(bpm),))
            for b, bpm in tempo_map[1:]
        ]
        sched.sort(key=lambda x: x[0])
        sent = []
        for t, addr, cargs in sched:
            while (d := t - time.perf_counter_ns()) > 0:
                if d > 3_000_000:
                    time.sleep((d - 2_000_000) / 1e9)
            sp.send(addr, *cargs)
            if addr == "/liveagent/note":
                sent.append((time.perf_counter_ns(), cargs[0], cargs[1]))
        time.sleep(max(0.0, (beat_time_ns(beats, t_start, tempo_map) - time.perf_counter_ns()) / 1e9) + 0.6)
        status = sp.status()
        lines = {v: voice_events(sp, f"/liveagent/out/{v}/note") for v in VOICES}
        lines["solo"] = voice_events(sp, "/liveagent/out/note")
        sp.terminate()
        return lines, sent, status, {k: before_first_burst(v) for k, v in lines.items()}
    finally:
        sp.close()


def answers_within(
    lines: Sequence[list[NoteEv]], sent: Sequence[tuple[int, int, int]], ms: float
) -> list[float]:
    """Per performer note-on, the delay to the first voice note-on within ``ms`` after it (grid-free)."""
    ons = sorted(t for ln in lines for t, _p, v in ln if v > 0)
    out = []
    import bisect

    for t, _p, v in sent:
        if v > 0:
            i = bisect.bisect_left(ons, t)
            if i < len(ons) and ons[i] - t <= ms * 1e6:
                out.append((ons[i] - t) / 1e6)
    return out
