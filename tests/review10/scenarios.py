"""The review's scenarios, each one real serve session: held-out chorale sopranos on the grid, a singer's key
changes mid-piece, and melodies the policy never saw. They return plain figures (for the tests' asserts and
for the side-by-side runs against the previous network, where ``policy`` is a path)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from liveagent.music.chorales import chorale_split
from liveagent.music.piece import Piece
from liveagent.music.tokens import ONSET_BASE
from tests.live.receiver_notes import osc_notes, overlaps, sounding_at
from tests.live.serve_helpers import ServeProcess
from tests.review10.harness import BAR, Pooled, Singer, line_of, serve_args, stop_releases, transpose_from

log = logging.getLogger(__name__)

GAP_BARS = 2
"""Silence between two segments: the silence gate closes after a bar, so each segment starts afresh."""


def held_out(names: tuple[str, ...]) -> list[Piece]:
    by = {p.name: p for p in chorale_split("test")}
    return [by[n] for n in names]


def chorales(policy: str, bpm: float, names: tuple[str, ...], bars: int) -> dict[str, Any]:
    """The first ``bars`` bars of each test-split soprano, a gap between pieces, /stop inside the last."""
    pieces = held_out(names)
    pooled, bach = Pooled(), 0
    with ServeProcess(*serve_args(policy, bpm)) as sp:
        singer = Singer(sp)
        for p in pieces[:-1]:
            singer.sing(p.name, p.performer[: bars * BAR], rest_bars=GAP_BARS)
        last = pieces[-1]
        singer.sing(last.name, last.performer[: bars * BAR])
        at_stop, after = stop_releases(sp, singer, last.performer[bars * BAR : (bars + 2) * BAR])
        st = sp.status()
        assert sp.terminate() == 0, "".join(sp.stderr)[-2000:]
    heard = singer.heard()
    late: list[float] = []
    for h, p in zip(heard, pieces, strict=True):
        pooled.add(h)
        bach += int((p.accompaniment[: bars * BAR] >= ONSET_BASE).sum())
        late += h.late_ms
    row: dict[str, Any] = dict(pooled.row())
    row.update(
        density_vs_bach=round(pooled.notes / bach, 2) if bach else 0.0,
        late_p50_ms=round(float(np.median(late)), 2) if late else float("nan"),
        sounding_at_stop=at_stop,
        sounding_after_stop=after,
        overlaps=len(overlaps(osc_notes(sp.rx))),
        misses=int(st["misses"]),
    )
    return row


def key_changes(
    policy: str, bpm: float, name: str, lead_bars: int, shifts: tuple[int, ...]
) -> dict[str, Any]:
    """The same soprano ``lead_bars`` bars then 2 more, once per shift (0 = no change), the change restruck
    on the bar line; per shift the consonance in the bar of the change and the bar after."""
    piece = held_out((name,))[0]
    c = lead_bars * BAR
    with ServeProcess(*serve_args(policy, bpm)) as sp:
        singer = Singer(sp)
        for s in shifts:
            singer.sing(f"{name}{s:+d}", transpose_from(piece.performer[: c + 2 * BAR], c, s), GAP_BARS)
        singer.wait_until_step(singer.k)
        assert sp.terminate() == 0, "".join(sp.stderr)[-2000:]
    out: dict[str, Any] = {}
    for s, h in zip(shifts, singer.heard(), strict=True):
        out[f"{s:+d}"] = {
            "bar_of": h.onset_pct(c, c + BAR),
            "bar_after": h.onset_pct(c + BAR, c + 2 * BAR),
            "changes_bar_of": h.change_pct(c, c + BAR),
            "changes_bar_after": h.change_pct(c + BAR, c + 2 * BAR),
            "lead": h.onset_pct(0, c),
        }
    return out


FOLK: dict[str, Sequence[tuple[int | None, int]]] = {
    # Ode to Joy (D major), quarters, dotted quarter + eighth at the cadence
    "ode_to_joy": [
        *[(p, 4) for p in (78, 78, 79, 81, 81, 79, 78, 76, 74, 74, 76, 78)],
        (78, 6),
        (76, 2),
        (76, 8),
        *[(p, 4) for p in (78, 78, 79, 81, 81, 79, 78, 76, 74, 74, 76, 78)],
        (76, 6),
        (74, 2),
        (74, 8),
    ],
    # Frere Jacques (F major): quarters, halves, eighths
    "frere_jacques": [
        *[(p, 4) for p in (65, 67, 69, 65, 65, 67, 69, 65)],
        *[(69, 4), (70, 4), (72, 8)] * 2,
        *[(72, 2), (74, 2), (72, 2), (70, 2), (69, 4), (65, 4)] * 2,
        *[(65, 4), (60, 4), (65, 8)] * 2,
    ],
    # Scarborough-like dorian tune (D dorian), a folk mode Bach's chorales rarely use
    "dorian_folk": [
        *[(p, 4) for p in (74, 74, 81, 81, 76, 77, 76, 74)],
        *[(p, 4) for p in (72, 74, 76, 72, 74, 74, 74, 74)],
        *[(p, 4) for p in (81, 81, 79, 77, 76, 74, 72, 71)],
        (74, 16),
    ],
}
EXERCISES: dict[str, Sequence[tuple[int | None, int]]] = {
    # C major scale up and down an octave and a half, quarters
    "scale": [(p, 4) for p in (60, 62, 64, 65, 67, 69, 71, 72, 74, 76, 77, 76, 74, 72, 71, 69)]
    + [(p, 4) for p in (67, 65, 64, 62)]
    + [(60, 12)],
    # C, F, G7, C arpeggios in eighths
    "arpeggio": [(p, 2) for p in (60, 64, 67, 72, 67, 64, 60, 64, 65, 69, 72, 77, 72, 69, 65, 69)]
    + [(p, 2) for p in (67, 71, 74, 77, 74, 71, 67, 71, 72, 67, 64, 60, 64, 67, 72, 72)],
    # one pitch repeated: 8 quarters of G, 8 eighths of A, a whole G
    "repeated": [(67, 4)] * 8 + [(69, 2)] * 8 + [(67, 16)],
}


def unseen(policy: str, bpm: float, names: tuple[str, ...], with_rest: bool = True) -> dict[str, Any]:
    """Each melody of ``names`` (FOLK or EXERCISES), a gap after each; then a phrase, a 2-bar rest inside
    the line (the singer breathes) and the phrase again: the bass must fall silent and come back."""
    tunes = {**FOLK, **EXERCISES}
    phrase = [(p, 4) for p in (72, 74, 76, 77, 79, 77, 76, 74)]
    with ServeProcess(*serve_args(policy, bpm)) as sp:
        singer = Singer(sp)
        for n in names:
            singer.sing(n, line_of(tunes[n]), GAP_BARS)
        k_rest = singer.k
        if with_rest:
            singer.sing("rest_and_back", line_of([*phrase, (None, 2 * BAR), *phrase, (72, 16)]))
        singer.wait_until_step(singer.k + BAR)
        st = sp.status()
        assert sp.terminate() == 0, "".join(sp.stderr)[-2000:]
    out: dict[str, Any] = {}
    for h in singer.heard():
        if h.name == "rest_and_back":
            continue
        p = Pooled()
        p.add(h)
        out[h.name] = p.row()
    out["misses"] = int(st["misses"])
    out["overlaps"] = len(overlaps(osc_notes(sp.rx)))
    if not with_rest:
        return out
    h = singer.heard()[-1]
    # rest: steps 32..63 of the segment; the gate needs a bar of silence, then the bass must be silent
    out["rest_and_back"] = {
        "onsets_2nd_rest_bar": h.onsets(3 * BAR, 4 * BAR),
        "sounding_end_of_rest": sounding_at(
            osc_notes(sp.rx), singer.t(k_rest + 4 * BAR) - round(singer.step)
        ),
        "onsets_after_return": h.onsets(4 * BAR, 6 * BAR),
        "onset_pct_after_return": h.onset_pct(4 * BAR, 6 * BAR),
    }
    return out


def run_all(policy: str) -> dict[str, Any]:
    """Everything, for the side-by-side runs (longer than the tests)."""
    t = time.monotonic()
    res = {
        "chorales_100": chorales(policy, 100, ("bwv256", "bwv268", "bwv309"), 6),
        "chorales_180": chorales(
            policy, 180, ("bwv83.5", "bwv415", "bwv115.6", "bwv248.53-5", "bwv248.9-1"), 8
        ),
    }
    for name in ("bwv256", "bwv268", "bwv309", "bwv415"):
        res[f"keys_{name}"] = key_changes(policy, 180, name, 3, (0, 6, 5, -2))
    res["unseen"] = unseen(policy, 180, tuple(FOLK) + tuple(EXERCISES))
    log.info("run_all %s took %.0f s", policy, time.monotonic() - t)
    return res
