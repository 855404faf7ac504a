"""Performer scripts for the band review: melodies as a singer/keyboard player would play them."""

from __future__ import annotations

from collections.abc import Sequence

from tests.review.band_harness import PerfEv

# A hymn tune in C major (beats): (pitch, duration in beats); 8 bars of 4/4.
HYMN = [
    (72, 1),
    (72, 1),
    (74, 1),
    (76, 1),
    (77, 2),
    (76, 1),
    (74, 1),
    (72, 1),
    (74, 1),
    (76, 1),
    (79, 1),
    (77, 2),
    (76, 2),
    (76, 1),
    (77, 1),
    (79, 1),
    (81, 1),
    (79, 1),
    (77, 1),
    (76, 1),
    (74, 1),
    (72, 1),
    (71, 1),
    (72, 1),
    (74, 1),
    (72, 4),
]


def melody(
    notes: Sequence[tuple[int, float]],
    *,
    start: float = 0.0,
    legato: float = 0.0,
    gap: float = 0.1,
    wrong: dict[int, int] | None = None,
) -> list[PerfEv]:
    """Note-on at each note's beat; release ``gap`` beats before the next (detached) or, with ``legato`` > 0,
    that many beats AFTER the next note-on (overlapping keys). ``wrong``: note index -> pitch offset."""
    ev: list[PerfEv] = []
    b = start
    for i, (p, d) in enumerate(notes):
        p = p + (wrong or {}).get(i, 0)
        ev.append((b, p, 90))
        ev.append((b + d + legato if legato > 0 else b + d - gap, p, 0))
        b += d
    return sorted(ev, key=lambda e: (e[0], e[2]))


def length(notes: Sequence[tuple[int, float]]) -> float:
    return float(sum(d for _, d in notes))


C_MAJOR = {0, 2, 4, 5, 7, 9, 11}
E_MAJOR = {4, 6, 8, 9, 11, 1, 3}

# A descending line (legato is how a keyboard player plays it: the next key down before the last one up).
DESCENT = [(81, 1), (79, 1), (77, 1), (76, 1), (74, 1), (72, 1), (71, 1), (72, 1)] * 2 + [
    (79, 1),
    (77, 1),
    (76, 1),
    (74, 1),
    (72, 4),
]

# Bars 1-4 in C major, bars 5-8 in E major (a key change mid-phrase, up a major third).
MODULATION = [
    (72, 1),
    (76, 1),
    (79, 1),
    (77, 1),
    (76, 1),
    (74, 1),
    (72, 2),
    (74, 1),
    (76, 1),
    (77, 1),
    (79, 1),
    (76, 2),
    (74, 1),
    (71, 1),
    (76, 1),
    (80, 1),
    (83, 1),
    (81, 1),
    (80, 1),
    (78, 1),
    (76, 2),
    (78, 1),
    (80, 1),
    (81, 1),
    (83, 1),
    (80, 2),
    (78, 2),
    (76, 4),
]

# Long notes: two bars each.
LONG = [(72, 8), (74, 8), (76, 8), (72, 8)]
