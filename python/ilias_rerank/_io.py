"""Atomic file writes: every file the package writes for people (results, reports,
vectors, manifests, pictures) goes through :func:`atomic_write`, so a reader never sees a
half-written file and a crash leaves the previous version in place."""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

__all__ = ["atomic_write", "atomic_write_json", "atomic_write_npz", "fsync_dir"]

_UMASK = os.umask(0o022)  # read once (setting it is the only way to read it), restored
os.umask(_UMASK)


def fsync_dir(path: Path) -> None:
    """Flush a directory entry (a rename inside it) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, data: bytes | Callable[[BinaryIO], Any]) -> Path:
    """Write ``data`` (bytes, or a function that writes to a binary file) to ``path``:
    into a temporary file beside it, flushed to disk, then renamed over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A unique temporary name: threads and processes writing one path never collide.
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp's 0600 would hide results from others
        with os.fdopen(fd, "wb") as fh:
            if callable(data):
                data(fh)
            else:
                fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_json(path: str | os.PathLike, value: Any, *, indent: int | None = 2) -> Path:
    """``value`` as JSON (numpy scalars written as floats), atomically."""
    return atomic_write(path, json.dumps(value, indent=indent, default=float).encode())


def atomic_write_npz(path: str | os.PathLike, **arrays: Any) -> Path:
    """numpy arrays as an uncompressed ``.npz``, atomically (readable without pickle)."""
    import numpy as np

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return atomic_write(path, buf.getvalue())
