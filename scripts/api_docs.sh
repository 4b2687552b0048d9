#!/usr/bin/env bash
# The API reference, from the docstrings (numpy style) and the _core.pyi stub, into site/
# (git-ignored) with pdoc. Fails on any pdoc warning (a module that does not import, a
# stub that does not parse, ...) and on a :func:`...` / :class:`...` / :meth:`...` /
# :data:`...` / :mod:`...` reference in a docstring that names nothing.
# Usage: bash scripts/api_docs.sh   (PYTHON=... to use another interpreter than .venv's)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
rm -rf site
"$PYTHON" - <<'PY'
import importlib
import importlib.util
import inspect
import pkgutil
import re
import sys
import warnings
from pathlib import Path

import pdoc
import pdoc.render

import ilias_rerank

ROLE = re.compile(r":(?:func|class|meth|data|mod|attr|exc|obj):`~?([\w.]+)`")


def public_modules() -> list[str]:
    """The package, its stub-backed extension and every public submodule (once each:
    pdoc adds by itself a submodule that its parent's ``__all__`` names)."""
    names = ["ilias_rerank", "ilias_rerank._core"]
    for info in pkgutil.walk_packages(ilias_rerank.__path__, "ilias_rerank."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        parent, _, leaf = info.name.rpartition(".")
        if leaf in getattr(importlib.import_module(parent), "__all__", ()):
            continue
        names.append(info.name)
    return names


def resolves(target: str, module, owner) -> bool:
    """Whether a docstring reference names something: from the object's class, its
    module's namespace, the package, or as a dotted path (relative to the module's
    package when it starts with a dot)."""
    if target.startswith("."):
        try:
            target = importlib.util.resolve_name(target, module.__package__)
        except (ImportError, ValueError):
            return False
    first, *rest = target.split(".")
    scopes = [vars(owner)] if inspect.isclass(owner) else []
    scopes += [vars(module), vars(ilias_rerank)]
    for scope in scopes:
        if first in scope:
            obj = scope[first]
            try:
                for part in rest:
                    obj = getattr(obj, part)
            except AttributeError:
                continue
            return True
    for cut in range(len(target.split(".")), 0, -1):
        head = ".".join(target.split(".")[:cut])
        try:
            obj = importlib.import_module(head)
        except ImportError:
            continue
        try:
            for part in target.split(".")[cut:]:
                obj = getattr(obj, part)
        except AttributeError:
            return False
        return True
    return False


def broken_references(names: list[str]) -> list[str]:
    found = []
    for name in names:
        module = importlib.import_module(name)
        items = [(name, module, module)]
        for attr, obj in vars(module).items():
            if getattr(obj, "__module__", None) == name and (inspect.isclass(obj) or callable(obj)):
                items.append((f"{name}.{attr}", obj, obj))
                if inspect.isclass(obj):
                    items += [(f"{name}.{attr}.{m}", f, obj) for m, f in vars(obj).items() if callable(f) or isinstance(f, property)]
        for where, obj, owner in items:
            for target in ROLE.findall(inspect.getdoc(obj) or ""):
                if not resolves(target, module, owner):
                    found.append(f"{where}: reference {target!r} names nothing")
    return sorted(set(found))


names = public_modules()
pdoc.render.configure(docformat="numpy", footer_text=f"ilias-rerank {ilias_rerank.__version__}")
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    pdoc.pdoc(*names, output_directory=Path("site"))
problems = [f"pdoc: {w.message}" for w in caught if "pdoc" in w.filename]
problems += broken_references(names)
for line in problems:
    print(line, file=sys.stderr)
print(f"api_docs: {len(names)} modules -> site/ ({len(problems)} problems)", file=sys.stderr)
sys.exit(1 if problems else 0)
PY
