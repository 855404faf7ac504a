"""A performer for the hostile review of ``serve --start-on-note``: plays a timed script of note-ons and
note-offs to a real ``liveagent serve`` over real UDP, on the performer's own clock (never serve's), and
reads what a listener hears at the independent receiver: onsets per voice, their consonance with the
melody sounding at that moment, and their offset from the performer's nearest onset."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

import numpy as np

from liveagent.music.theory import is_consonant
from tests.live.serve_helpers import ServeProcess
from tests.live.test_serve_band import BPM, MELODY, VOICES, voice_notes

__all__ = ["BEAT_NS", "BPM", "MELODY", "VOICES", "Heard", "Script", "heard", "play", "quarters"]

BEAT_NS = 60e9 / BPM
"""600 ms at 100 BPM; a sixteenth (one step) is 150 ms."""


@dataclass
class Script:
    """(time from the script's start in ns, pitch, velocity) events, sorted by time."""

    events: list[tuple[float, int, int]] = field(default_factory=list)

    def note(self, t_ns: float, pitch: int, dur_ns: float, vel: int = 90) -> Script:
        self.events.append((t_ns, pitch, vel))
        self.events.append((t_ns + dur_ns, pitch, 0))
        self.events.sort(key=lambda e: (e[0], e[2] > 0))
        return self


def quarters(
    t0_ns: float = 0.0,
    beats: int = len(MELODY),
    *,
    beat_ns: float = BEAT_NS,
    jitter_ms: float = 0.0,
    seed: int = 1,
    script: Script | None = None,
) -> Script:
    """The melody as quarter notes from ``t0_ns``, each held 90 % of a beat (human jitter: Gaussian, sd)."""
    rng = random.Random(seed)
    s = script or Script()
    for i in range(beats):
        t = t0_ns + i * beat_ns + (rng.gauss(0.0, jitter_ms * 1e6) if jitter_ms else 0.0)
        s.note(t, MELODY[i % len(MELODY)], beat_ns * 0.9)
    return s


def play(sp: ServeProcess, script: Script, lead_ns: float = 200e6) -> list[tuple[int, int, int]]:
    """Send the script from ``lead_ns`` from now; returns (send time, pitch, velocity) as sent."""
    start = time.perf_counter_ns() + lead_ns
    sent = []
    for t, pitch, vel in script.events:
        t_on = start + t
        while (wait := t_on - time.perf_counter_ns()) > 0:
            time.sleep(min(wait / 1e9, 0.01) if wait > 2e6 else 0)
        sent.append((time.perf_counter_ns(), pitch, vel))
        sp.send("/liveagent/note", pitch, vel)
    return sent


@dataclass
class Heard:
    """What a listener hears of each voice while the performer plays."""

    onsets: dict[str, int]
    consonant_pct: dict[str, float]
    offset_p50_ms: dict[str, float]

    def __str__(self) -> str:
        return " ".join(
            f"{v}:{self.onsets[v]}n/{self.consonant_pct[v]:.0f}%cons/{self.offset_p50_ms[v]:+.0f}ms"
            for v in self.onsets
        )


def _melody_at(sent: list[tuple[int, int, int]], t: int) -> int:
    """The performer's pitch sounding at ``t`` (latest note-on not yet released), or -1."""
    sounding: dict[int, int] = {}
    for ts, p, v in sent:
        if ts > t:
            break
        if v > 0:
            sounding[p] = ts
        else:
            sounding.pop(p, None)
    return max(sounding, key=lambda p: sounding[p]) if sounding else -1


def heard(sp: ServeProcess, sent: list[tuple[int, int, int]], voices: tuple[str, ...] = VOICES) -> Heard:
    """Onsets of each voice between the performer's first note-on and last note-off (+ a beat)."""
    ons_perf = [t for t, _, v in sent if v > 0]
    t_first, t_last = ons_perf[0], sent[-1][0] + int(BEAT_NS)
    onsets, cons, offs = {}, {}, {}
    for voice in voices:
        ev = [(t, p) for t, p, v in voice_notes(sp.rx, voice) if v > 0 and t_first - 50e6 <= t <= t_last]
        onsets[voice] = len(ev)
        judged = [(p, m) for t, p in ev if (m := _melody_at(sent, t)) >= 0]
        if judged:
            up = np.array([max(p, m) for p, m in judged])
            lo = np.array([min(p, m) for p, m in judged])
            cons[voice] = 100.0 * float(is_consonant(up, lo, lower_is_bass=voice == "bass").mean())
        else:
            cons[voice] = 0.0
        d = [min((t - s for s in ons_perf), key=abs) / 1e6 for t, _ in ev]
        offs[voice] = float(np.median(d)) if d else float("nan")
    return Heard(onsets, cons, offs)


def band_hears(script: Script, *args: str) -> tuple[Heard, dict[str, object]]:
    """A real ``serve --band satb --autostart --start-on-note`` (armed, never started by hand) hears the
    script; returns what the listener hears of each voice and the final status."""
    import signal

    with ServeProcess(
        "--band", "satb", "--bpm", str(BPM), "--autostart", "--start-on-note", "--no-record", *args
    ) as sp:
        time.sleep(0.4)
        assert sp.status()["armed"] == 1
        sent = play(sp, script)
        time.sleep(0.4)
        st = sp.status()
        assert sp.terminate(signal.SIGTERM) == 0
        keys = ("answered_pct", "late_amended", "follow_offset_p50_ms", "follow_window_ms", "misses")
        return heard(sp, sent), {k: st[k] for k in keys}
