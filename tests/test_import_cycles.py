"""No import cycles anywhere in ``liveagent``, read from the source.

Every import counts, at any depth: module level, inside functions, inside ``if TYPE_CHECKING:`` blocks (a
cycle hidden behind TYPE_CHECKING is still two modules that each need the other to be understood). Relative
imports are resolved; ``from a import b`` is an import of the module ``a.b`` when there is one, else of ``a``.
Importing ``a.b`` is not counted as importing the package ``a`` (Python runs ``a/__init__.py`` first, but a
package re-exporting its modules is not a cycle).

tests/test_layering.py reads imports too, but yields both ``a`` and ``a.b`` for ``from a import b`` (right
for its "who may import what" rules, wrong here: every package would be in a cycle with its own modules), so
the graph is built by its own small walk.
"""

from __future__ import annotations

import ast
import itertools
from collections import deque
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "liveagent"

Graph = dict[str, dict[str, int]]
"""module -> {imported module of ours -> line of its first import}."""


def _module_names(package: Path) -> dict[str, Path]:
    """Dotted name of every module of the package (``a/__init__.py`` is ``a``)."""
    names = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def import_graph(package: Path) -> tuple[Graph, dict[str, Path]]:
    """The package's modules and, for each, which of them it imports (anything else is left out)."""
    modules = _module_names(package)
    graph: Graph = {}
    for name, path in modules.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: dict[str, int] = {}

        def add(target: str, line: int, edges: dict[str, int] = edges) -> None:
            if target in modules:
                edges.setdefault(target, line)

        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    add(alias.name, node.lineno)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = here.split(".")
                    base_parts = parts[: len(parts) - (node.level - 1)]
                    base = ".".join([*base_parts, node.module] if node.module else base_parts)
                else:
                    base = node.module or ""
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    add(sub if sub in modules else base, node.lineno)
        graph[name] = edges
    return graph, modules


def _strongly_connected(graph: Graph) -> list[list[str]]:
    """Tarjan's algorithm (iterative): the components, each a list of modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        top = stack.pop()
                        on_stack.discard(top)
                        component.append(top)
                        if top == node:
                            break
                    components.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return components


def _shortest_path(graph: Graph, start: str, goal: str, allowed: set[str]) -> list[str]:
    """Breadth first from ``start`` to ``goal`` through ``allowed`` modules only."""
    previous: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if node == goal:
            path: list[str] = []
            step: str | None = node
            while step is not None:
                path.append(step)
                step = previous[step]
            return path[::-1]
        for child in sorted(graph[node]):
            if child in allowed and child not in previous:
                previous[child] = node
                queue.append(child)
    raise AssertionError(f"no path {start} -> {goal}")  # pragma: no cover: same component


def find_cycles(graph: Graph) -> list[list[str]]:
    """One shortest cycle through every import edge that lies on a cycle, deduplicated; each cycle is a
    chain ``[a, b, ..., a]`` starting from its smallest module."""
    seen: set[tuple[str, ...]] = set()
    cycles: list[list[str]] = []
    for component in _strongly_connected(graph):
        members = set(component)
        for source in component:
            for target in sorted(graph[source]):
                if target not in members or (len(members) == 1 and target != source):
                    continue
                ring = (
                    [source, *_shortest_path(graph, target, source, members)[:-1]]
                    if target != source
                    else [source]
                )
                turn = ring.index(min(ring))
                ring = ring[turn:] + ring[:turn]
                if tuple(ring) not in seen:
                    seen.add(tuple(ring))
                    cycles.append([*ring, ring[0]])
    return sorted(cycles)


def describe(cycle: list[str], graph: Graph, modules: dict[str, Path], root: Path) -> str:
    """``a -> b -> a`` and, under it, the line of each import."""
    where = [
        f"    {modules[a].relative_to(root).as_posix()}:{graph[a][b]}: imports {b}"
        for a, b in itertools.pairwise(cycle)
    ]
    return "\n".join([" -> ".join(cycle), *where])


def test_the_checker_finds_hidden_cycles(tmp_path: Path) -> None:
    """Guard the checker itself on a made-up package: a TYPE_CHECKING import one way, a relative import
    inside a function the other way, ``from pkg import mod``, and a name that is not a module."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from pkg.a import A\n")  # a package re-exporting: no cycle
    (pkg / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.sub.b import B\nclass A: ...\n"
    )
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text("def f():\n    from ..a import A\n    return A\nclass B: ...\n")
    (pkg / "c.py").write_text("from pkg import d\n")
    (pkg / "d.py").write_text("from pkg.c import something\n")  # not a module: counts as pkg.c
    (pkg / "e.py").write_text("import os\nfrom pkg.sub import b\n")  # leads into a cycle, not on one
    graph, modules = import_graph(pkg)
    assert graph["pkg"] == {"pkg.a": 1}
    assert graph["pkg.sub.b"] == {"pkg.a": 2}
    assert graph["pkg.e"] == {"pkg.sub.b": 2}
    cycles = find_cycles(graph)
    assert cycles == [["pkg.a", "pkg.sub.b", "pkg.a"], ["pkg.c", "pkg.d", "pkg.c"]]
    assert describe(cycles[0], graph, modules, tmp_path) == (
        "pkg.a -> pkg.sub.b -> pkg.a\n    pkg/a.py:3: imports pkg.sub.b\n    pkg/sub/b.py:2: imports pkg.a"
    )


def test_the_graph_covers_the_package() -> None:
    graph, _ = import_graph(PACKAGE)
    assert len(graph) > 30
    assert "liveagent.cli" in graph
    assert sum(len(edges) for edges in graph.values()) > 50


def test_no_import_cycles() -> None:
    graph, modules = import_graph(PACKAGE)
    cycles = find_cycles(graph)
    report = "\n".join(describe(cycle, graph, modules, ROOT) for cycle in cycles)
    assert not cycles, f"{len(cycles)} import cycle(s) in liveagent:\n{report}"
