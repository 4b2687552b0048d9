"""The package's modules import each other in one direction: no import loop (lazy imports
inside functions included) other than the ones being rewritten elsewhere (listed below,
to be removed from the list when their rewrite lands). Read from the source, nothing is
imported."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "python" / "ilias_rerank"

#: Loops that other work removes: store/single.py <-> store/sharded.py (the store rewrite),
#: extractors/base.py <-> extractors/pool.py (the extraction backends).
KNOWN = {}


def module_names() -> dict[str, Path]:
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def imports(name: str, path: Path, names: dict[str, Path]) -> set[str]:
    """The package's modules that ``name`` imports, anywhere in its source; a submodule
    importing its own package (``from . import x``, ``from .. import errors``) counts the
    named modules, not the package."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [module] + [f"{module}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            while target not in names and "." in target:
                target = target.rpartition(".")[0]
            if target in names and target != name and not name.startswith(target + "."):
                found.add(target)
    return found


def loops() -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    names = module_names()
    graph = {name: imports(name, path, names) for name, path in names.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[frozenset[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_loops():
    new = [sorted(loop) for loop in loops() if loop not in KNOWN]
    assert not new, f"import loops: {new}"


def test_the_loops_this_test_finds_are_real(tmp_path, monkeypatch):
    """The detector sees a loop through a lazy import."""
    package = tmp_path / "ilias_rerank"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from .b import x\n")
    (package / "b.py").write_text("def x():\n    from . import a\n")
    (package / "c.py").write_text("from . import a\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", package)
    assert loops() == [frozenset({"ilias_rerank.a", "ilias_rerank.b"})]
