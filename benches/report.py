"""Where the Python benchmarks put their results: ``<stem>.json`` (the measurements) and
``<stem>.md`` (the table people read), both written atomically, and the table printed."""

from __future__ import annotations

import json
import os
from pathlib import Path


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(text)
    tmp.replace(path)


def write_report(stem: Path, data, lines: list[str]) -> None:
    """Write ``data`` as ``stem.json`` and ``lines`` as ``stem.md``; print the table."""
    _write(stem.with_name(stem.name + ".json"), json.dumps(data, indent=2, default=float))
    table = "\n".join(lines)
    _write(stem.with_name(stem.name + ".md"), table + "\n")
    print(table)
