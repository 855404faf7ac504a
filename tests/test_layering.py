"""The house rules on who imports what, checked on the source (every import, including those inside
functions) and on a fresh interpreter (what really lands in ``sys.modules``).

- only ``liveagent/train`` imports torch (and onnxscript, torch's ONNX exporter);
- ``liveagent/live`` never imports ``liveagent.env`` or ``liveagent.train`` (the stage needs neither);
- ``liveagent/music`` imports nothing of ours outside ``liveagent.music`` (the shared core);
- music21 only in ``liveagent/music/chorales.py`` (a training-time dependency);
- importing any ``liveagent.live`` module, or building the CLI parser for a subcommand, loads no torch.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from liveagent.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "liveagent"


@dataclass(frozen=True)
class Import:
    """One import statement: the importing file, its line, and the absolute module it names."""

    path: str
    """File relative to the repository root, e.g. ``liveagent/live/engine/loop.py``."""
    line: int
    module: str
    """Absolute dotted module name (relative imports resolved); ``from a import b`` yields ``a.b`` too."""

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.module}"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports_of(path: Path) -> list[Import]:
    """Every import in the file, at any depth (module level, functions, TYPE_CHECKING blocks)."""
    rel = path.relative_to(ROOT).as_posix()
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[Import] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=rel)):
        if isinstance(node, ast.Import):
            found += [Import(rel, node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*base_parts, node.module] if node.module else base_parts)
            else:
                base = node.module or ""
            found.append(Import(rel, node.lineno, base))
            # `from liveagent import env` names the module liveagent.env.
            found += [Import(rel, node.lineno, f"{base}.{a.name}") for a in node.names if a.name != "*"]
    return found


ALL_IMPORTS = [imp for path in sorted(PACKAGE.rglob("*.py")) for imp in _imports_of(path)]


def _under(module: str, *prefixes: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _offenders(in_dir: str, forbidden: tuple[str, ...], *, outside: bool = False) -> list[str]:
    """Imports of ``forbidden`` modules from files in (or, with ``outside``, not in) ``in_dir``."""
    return [
        str(imp)
        for imp in ALL_IMPORTS
        if imp.path.startswith(in_dir) != outside and _under(imp.module, *forbidden)
    ]


def test_the_walk_sees_imports_inside_functions() -> None:
    """Guard the checker itself: lazy imports (music21 inside the chorale loader) are found."""
    assert any(imp.path == "liveagent/music/chorales.py" and imp.module == "music21" for imp in ALL_IMPORTS)
    assert any(imp.path.startswith("liveagent/train/") and imp.module == "torch" for imp in ALL_IMPORTS)
    assert len({imp.path for imp in ALL_IMPORTS}) > 30


def test_only_train_imports_torch() -> None:
    assert _offenders("liveagent/train/", ("torch", "onnxscript"), outside=True) == []


def test_live_never_imports_env_or_train() -> None:
    assert _offenders("liveagent/live/", ("liveagent.env", "liveagent.train")) == []


def test_music_imports_only_music_of_ours() -> None:
    bad = [
        str(imp)
        for imp in ALL_IMPORTS
        if imp.path.startswith("liveagent/music/")
        and _under(imp.module, "liveagent")
        and not _under(imp.module, "liveagent.music")
        and imp.module != "liveagent"  # `from liveagent import music` is checked through liveagent.music
    ]
    assert bad == []


def test_music21_only_in_the_chorale_loader() -> None:
    bad = [
        str(imp)
        for imp in ALL_IMPORTS
        if _under(imp.module, "music21") and imp.path != "liveagent/music/chorales.py"
    ]
    assert bad == []


def _fresh(code: str) -> dict[str, Any]:
    """Run ``code`` in a new interpreter (repository on the path); it prints one JSON object."""
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


HEAVY = ("torch", "onnxscript", "music21")


@pytest.mark.timeout(120)
def test_importing_every_live_module_loads_no_torch() -> None:
    code = f"""
import importlib, json, pkgutil, sys
import liveagent.live
names = [m.name for m in pkgutil.walk_packages(liveagent.live.__path__, "liveagent.live.")]
for name in names:
    importlib.import_module(name)
heavy = {HEAVY!r}
print(json.dumps({{
    "modules": names,
    "heavy": sorted(m for m in sys.modules if m.split(".")[0] in heavy),
    "ours": sorted(m for m in sys.modules if m.startswith(("liveagent.env", "liveagent.train"))),
}}))
"""
    out = _fresh(code)
    assert "liveagent.live.engine.loop" in out["modules"]  # the walk found the package's modules
    assert out["heavy"] == []
    assert out["ours"] == []


@pytest.mark.timeout(120)
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_cli_subcommand_setup_loads_no_torch_or_music21(command: str) -> None:
    """Choosing a subcommand imports its module and builds its parser: no torch, no music21 yet
    (`liveagent serve` must never load them; the others load them inside run())."""
    code = f"""
import json, sys
from liveagent.cli import build_parser
build_parser(only={command!r})
print(json.dumps({{
    "loaded": {COMMANDS[command][0]!r} in sys.modules,
    "heavy": sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r}),
}}))
"""
    out = _fresh(code)
    assert out["loaded"]  # the subcommand's module was really imported
    assert out["heavy"] == []
