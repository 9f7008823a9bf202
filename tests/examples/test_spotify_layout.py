"""The example service's layout rules, kept true by this test.

* no module of ``dspot_spotify`` over :data:`MAX_LINES` lines;
* no import cycle among its modules, nor among its packages (every import counts, also
  one inside a function or under ``TYPE_CHECKING``: a deferred import is still a cycle);
* no private library import (``dspot.x._y``, ``from dspot.x import _y``) in the example or
  the benchmarks: they use the library as any user would.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "examples" / "spotify" / "src" / "dspot_spotify"
MAX_LINES = 600


def modules(root: Path = PACKAGE) -> dict[str, Path]:
    """Every module of the package under ``root``, by dotted name."""
    out: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imported(path: Path) -> Iterator[tuple[str, tuple[str, ...]]]:
    """``(module, names)`` of every import statement in ``path``, wherever it is."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, ()
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module, tuple(a.name for a in node.names)


def import_graph(known: Mapping[str, Path]) -> dict[str, set[str]]:
    """Which of ``known`` each of them imports (``from pkg import sub`` counts as ``sub``)."""
    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        for module, names in imported(path):
            targets = {f"{module}.{n}" for n in names if f"{module}.{n}" in known}
            if not targets and module in known:
                targets = {module}
            graph[name] |= targets - {name}
    return graph


def package_of(module: str) -> str:
    """``dspot_spotify.api.songs`` → ``dspot_spotify.api``; top-level modules are their own."""
    return ".".join(module.split(".")[:2])


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def package_graph(graph: Mapping[str, set[str]]) -> dict[str, set[str]]:
    """The module graph collapsed to packages (``dspot_spotify.api``, ``dspot_spotify.node``)."""
    out: dict[str, set[str]] = {}
    for source, targets in graph.items():
        out.setdefault(package_of(source), set()).update(
            package_of(t) for t in targets if package_of(t) != package_of(source)
        )
    return out


def private_imports(paths: list[Path]) -> list[str]:
    """``file: module`` for every import of a private module of the ``dspot`` library."""
    bad = []
    for path in paths:
        for module, names in imported(path):
            parts = module.split(".")
            if parts[0] != "dspot":
                continue
            private = [p for p in parts[1:] if p.startswith("_")]
            private += [n for n in names if n.startswith("_")]
            if private:
                bad.append(f"{path}: {module} {list(names)}")
    return bad


def test_no_module_is_over_the_size_limit() -> None:
    sizes = {
        name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in modules().items()
    }
    assert len(sizes) > 40  # the walk found the package
    too_big = {name: n for name, n in sizes.items() if n > MAX_LINES}
    assert too_big == {}


def test_no_import_cycles_among_modules_or_packages() -> None:
    graph = import_graph(modules())
    assert graph["dspot_spotify.node"] >= {"dspot_spotify.router"}  # the graph sees edges
    assert cycles(graph) == []
    assert cycles(package_graph(graph)) == []


def test_cycle_finder_finds_a_cycle_through_a_deferred_import(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg import b\n")
    (pkg / "b.py").write_text("def f():\n    from pkg.a import x\n")
    (pkg / "c.py").write_text("from pkg import a\n")
    graph = import_graph(modules(pkg))
    assert cycles(graph) == [["pkg.a", "pkg.b"]]


def test_no_private_library_imports_in_the_example_or_the_benchmarks() -> None:
    paths = [*PACKAGE.rglob("*.py"), *(REPO / "benchmarks").rglob("*.py")]
    assert private_imports(paths) == []
    probe = REPO / "benchmarks" / "bench_tokenring.py"
    assert any(m.startswith("dspot.tokenring") for m, _ in imported(probe))
