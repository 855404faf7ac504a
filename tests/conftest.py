"""Shared fixtures; helper functions live in tests/support.py."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True, scope="session")
def _session_recordings_in_tmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """`serve` records every session by default; under test (and its subprocesses) that goes to a temp dir."""
    path = tmp_path_factory.mktemp("sessions")
    old = os.environ.get("LIVEAGENT_RECORD_DIR")
    os.environ["LIVEAGENT_RECORD_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("LIVEAGENT_RECORD_DIR", None)
    else:
        os.environ["LIVEAGENT_RECORD_DIR"] = old
