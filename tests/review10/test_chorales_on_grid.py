"""Held-out chorale sopranos (test split) sung exactly on the grid of a real ``serve --policy anticipate``:
what the receiver heard against the README's claims (consonant at melody changes 73.4 %, onset 83.2 %,
density 0.97 of Bach's bass, 1.2 % between the eighths), at a hymn tempo and a fast one, and nothing left
sounding after /liveagent/stop."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tests.review10.scenarios import chorales

pytestmark = pytest.mark.timeout(150)
log = logging.getLogger(__name__)


def _check_common(r: dict[str, Any]) -> None:
    assert r["changes"] >= 20, ("too few melody changes judged for the check to mean anything", r)
    assert r["sounding_at_stop"], ("nothing sounded at /stop: the release check could not fail", r)
    assert r["sounding_after_stop"] == {}, ("bass note left sounding after /liveagent/stop", r)
    assert r["overlaps"] == 0, ("a bass note-on while the previous note sounded", r)
    assert r["late_p50_ms"] < 3.0, ("the bass is not on the grid", r)
    assert r["misses"] <= 2, r
    assert 1.5 <= r["notes_per_bar"] <= 8.0, r
    assert 0.6 <= r["density_vs_bach"] <= 1.5, r
    assert r["between_eighths_pct"] <= 10.0, r


def test_hymn_tempo_100_bpm() -> None:
    r = chorales("anticipate", 100, ("bwv256", "bwv309"), 5)
    log.info("100 BPM: %s", r)
    _check_common(r)
    assert r["onset_pct"] >= 70.0, r
    assert r["change_pct"] >= 60.0, r


def test_fast_180_bpm() -> None:
    r = chorales("anticipate", 180, ("bwv83.5", "bwv415", "bwv268"), 6)
    log.info("180 BPM: %s", r)
    _check_common(r)
    assert r["onset_pct"] >= 70.0, r
    assert r["change_pct"] >= 60.0, r
