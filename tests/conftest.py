"""Shared fixtures: where the shared data lives, and a feature cache so that the real-photo
tests extract each image once per machine (``.cache/test-features``, keyed by the file's
path, size and mtime and the extraction parameters)."""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import pickle
from pathlib import Path

import pytest

import ilias_rerank as ir
from ilias_rerank.evaluation import average_precision  # noqa: F401  (re-exported for the tests)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ILIAS_RERANK_SHARED_DATA", REPO.parent / "shared" / "data"))
CACHE = REPO / ".cache" / "test-features"


def shared_dataset(name: str) -> Path:
    """The folder of a shared dataset, or skip the test saying where it was looked for."""
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"shared dataset {name!r} not found at {path} (set ILIAS_RERANK_SHARED_DATA)")
    return path


def _extractor_params(params: dict) -> str:
    from ilias_rerank.extractors import make_extractor

    settings = {k: v for k, v in params.items() if k not in ("workers", "progress", "on_error")}
    return json.dumps(make_extractor(**settings).params(), sort_keys=True)


def cached_features(paths, **params) -> list[ir.LocalFeatures]:
    """``extract_local`` with an on-disk cache (atomic writes)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    out = []
    for p in paths:
        st = os.stat(p)
        # The extractor's signature (with its defaults) and its manifest entry (backend and
        # every setting that changes the features, defaults included) are part of the key.
        sig = inspect.signature(ir.extract_local)
        made = _extractor_params(params)
        key = (
            f"{os.path.abspath(p)}|{st.st_size}|{st.st_mtime_ns}|{sorted(params.items())}|{sig}"
            f"|{made}"
        )
        f = CACHE / (hashlib.sha1(key.encode()).hexdigest() + ".pkl")
        if f.exists():
            with open(f, "rb") as fh:
                out.append(pickle.load(fh))
            continue
        feats = ir.extract_local([p], **params)[0]
        tmp = f.with_suffix(f".tmp{os.getpid()}")
        with open(tmp, "wb") as fh:
            pickle.dump(feats, fh)
        os.replace(tmp, f)
        out.append(feats)
    return out


def descendants(pid: int) -> set[int]:
    """The pids of every process below ``pid`` (from ``/proc``; Linux)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def assert_no_survivors(pids: set[int], within: float = 5.0) -> None:
    """Every process in ``pids`` is gone (or a zombie) within ``within`` seconds."""
    import time

    def alive(pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    deadline = time.monotonic() + within
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = [p for p in pids if alive(p)]
    assert not survivors, f"processes outlived their parent: {survivors}"
