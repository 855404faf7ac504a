"""Run the hostile review's scenarios on the real ``liveagent serve`` of this tree, or of an older commit
checked out elsewhere (``LIVEAGENT_OLD_TREE=/tmp/old``: a ``git worktree`` of the commit before the changes
under review), to measure before/after through the same real path (UDP, subprocess)."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import tests.live.serve_helpers as sh

ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def tree(path: str | None) -> Iterator[None]:
    """Serve processes started inside run the liveagent of ``path`` (None: this tree). ``-m liveagent``
    puts the cwd first on sys.path, so the old tree is the cwd and on PYTHONPATH."""
    if path is None:
        yield
        return

    def popen(*a: object, **kw: object) -> subprocess.Popen[str]:
        kw["env"] = {**(kw.get("env") or os.environ), "PYTHONPATH": path}  # type: ignore[dict-item]
        return subprocess.Popen(*a, cwd=path, **kw)  # type: ignore[call-overload,no-any-return]

    shim = SimpleNamespace(
        Popen=popen,
        PIPE=subprocess.PIPE,
        TimeoutExpired=subprocess.TimeoutExpired,
    )
    saved = sh.subprocess
    sh.subprocess = shim  # type: ignore[assignment]
    try:
        yield
    finally:
        sh.subprocess = saved


def old_tree() -> str | None:
    return os.environ.get("LIVEAGENT_OLD_TREE") or None
