"""A singer's key changes mid-hymn (up a tritone, up a fourth, down a whole tone; restruck on the bar line),
against the same bars sung without the change, through a real ``serve --policy anticipate``. The README
claims 83.1 % onset consonance in the bar after a tritone jump (88.0 % in that bar without it)."""

from __future__ import annotations

import logging

import pytest

from tests.review10.scenarios import key_changes

pytestmark = pytest.mark.timeout(150)
log = logging.getLogger(__name__)

SHIFTS = (0, 6, 5, -2)


def test_key_changes_bar_of_and_bar_after() -> None:
    r = key_changes("anticipate", 180, "bwv268", 3, SHIFTS)
    log.info("key changes: %s", r)
    base = r["+0"]
    assert base["bar_after"][1] >= 2, ("no bass onsets to judge in the bar after", r)
    for s in SHIFTS[1:]:
        k = f"{s:+d}"
        assert r[k]["bar_of"][1] >= 1 and r[k]["bar_after"][1] >= 1, ("the bass stopped at the change", k, r)
    ok = sum(r[f"{s:+d}"]["bar_after"][0] * r[f"{s:+d}"]["bar_after"][1] / 100 for s in SHIFTS[1:])
    n = sum(r[f"{s:+d}"]["bar_after"][1] for s in SHIFTS[1:])
    assert 100.0 * ok / n >= 50.0, ("bar after the change, pooled over the three shifts", r)
