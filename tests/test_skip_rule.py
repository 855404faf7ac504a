"""The house rule on skips, checked on the test sources: a test that needs a system tool or an optional
package skips locally but FAILS under ``CI=true``, so a green CI means it ran. That only holds if every
skip goes through :mod:`tests.support` (``require_tool``, ``require``); a direct ``pytest.skip``,
``importorskip``, ``skipif``/``skip`` mark or an ``except ImportError: return`` would pass silently on CI
(a mutation run put ``pytest.importorskip`` back into ``tests/live/test_notes.py``: 1 skipped, CI green).
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
ALLOWED = {TESTS / "support.py", Path(__file__).resolve()}
SKIP_CALLS = {"skip", "importorskip"}
SKIP_MARKS = {"skip", "skipif"}


def _attr_chain(node: ast.AST) -> list[str]:
    """``pytest.mark.skipif`` -> ["pytest", "mark", "skipif"] (empty for anything else)."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return parts[::-1]
    return []


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    names = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(n, ast.Name) and n.id in {"ImportError", "ModuleNotFoundError"} for n in names)


def silent_skips(source: str, path: str) -> list[str]:
    """Every way ``source`` could skip a test without going through tests/support.py."""
    found = []
    for node in ast.walk(ast.parse(source, path)):
        chain = _attr_chain(node.func) if isinstance(node, ast.Call) else _attr_chain(node)
        if chain[:1] == ["pytest"] and (
            (len(chain) == 2 and chain[1] in SKIP_CALLS)
            or (len(chain) == 3 and chain[1] == "mark" and chain[2] in SKIP_MARKS)
        ):
            found.append(f"{path}:{node.lineno}: {'.'.join(chain)}")  # type: ignore[attr-defined]
        if (
            isinstance(node, ast.ExceptHandler)
            and node.type is not None
            and _catches_import_error(node)
            and all(isinstance(s, (ast.Return, ast.Pass)) for s in node.body)
        ):
            what = type(node.body[0]).__name__.lower()
            found.append(f"{path}:{node.lineno}: except ImportError: {what}")
    return sorted(set(found))


def test_every_skip_goes_through_tests_support() -> None:
    offenders = []
    for path in sorted(TESTS.rglob("*.py")):
        if path.resolve() in ALLOWED:
            continue
        offenders += silent_skips(path.read_text(), str(path.relative_to(TESTS.parent)))
    why = "skip through tests/support.py (require_tool, require), not:\n"
    assert offenders == [], why + "\n".join(offenders)


def test_the_check_finds_each_kind_of_silent_skip() -> None:
    src = (
        "import pytest\n"
        "np = pytest.importorskip('numpy')\n"
        "@pytest.mark.skipif(True, reason='x')\n"
        "def test_a():\n"
        "    pytest.skip('no')\n"
        "def test_b():\n"
        "    try:\n"
        "        import foo\n"
        "    except ImportError:\n"
        "        return\n"
        "@pytest.mark.skip\n"
        "def test_c(): ...\n"
    )
    got = silent_skips(src, "t.py")
    assert [g.split(": ", 1)[1] for g in got] == [
        "pytest.mark.skip",
        "pytest.importorskip",
        "pytest.mark.skipif",
        "pytest.skip",
        "except ImportError: return",
    ], got
    assert silent_skips("from tests.support import require\nrequire(False, 'x')\n", "ok.py") == []
