"""Regenerate the shipped patches: ``python patches/build_patches.py`` (``--check`` only compares).

liveagent.pd and liveagent-help.pd come from build_pd.py, liveagent.maxpat from build_max.py. Edit those,
never the generated files: a test fails when a shipped file differs from what this script writes.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import build_max  # noqa: E402
import build_pd  # noqa: E402


def outputs() -> dict[str, str]:
    """File name (in patches/) -> its text."""
    return {
        "liveagent.pd": build_pd.build_abstraction(),
        "liveagent-help.pd": build_pd.build_help(),
        "liveagent.maxpat": build_max.build_maxpat(),
    }


def main(argv: list[str]) -> int:
    stale = []
    for name, text in outputs().items():
        path = HERE / name
        if "--check" in argv:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        sys.stderr.write(f"out of date: {', '.join(stale)} (run python patches/build_patches.py)\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
