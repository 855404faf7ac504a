"""Shared test helpers.

System peers (jackd, pd, oscsend, jack_midi_clock) are installed by `.ci/run`. Locally a test that needs
one skips when it is absent; under CI (``CI=true``) it fails instead, so a green CI means it ran.
"""

from __future__ import annotations

import os
import shutil

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_tool(*names: str) -> None:
    """Skip (locally) or fail (under CI) unless every command in ``names`` is on PATH."""
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        msg = f"system tool(s) not installed: {', '.join(missing)}"
        if IN_CI:
            pytest.fail(msg + " (required under CI=true; .ci/run installs them)")
        pytest.skip(msg)


def require(condition: bool, reason: str) -> None:
    """Skip (locally) or fail (under CI) unless ``condition`` holds."""
    if not condition:
        if IN_CI:
            pytest.fail(reason + " (required under CI=true)")
        pytest.skip(reason)
