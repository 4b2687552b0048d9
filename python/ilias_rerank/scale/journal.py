"""The journal of images in flight, so that an image that kills the whole process costs
only itself, across runs.

A job appends ``start`` as an image is handed to a worker and ``end`` when its outcome is
back (stored or failed), one JSON line each, to ``journal.jsonl`` in the store's folder
(the job holds the store's writer lock). An image started and never ended was in flight
when the process died (SIGKILL, a segfault, the out-of-memory killer): the next job counts
that crash against it. An image in flight at one crash is a *suspect*: it is run again,
with nothing else in flight; one in flight at :data:`CRASHES` crashes is failed without
being tried again (named in the job's failures, counted in its failure budget). An image
stored later is cleared. Delete the file to try every image again.

Appends are single ``write`` calls on an ``O_APPEND`` descriptor: a killed process loses
none of them (the kernel holds them), and threads never interleave within a line.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from .._io import atomic_write

__all__ = ["CRASHES", "JOURNAL_FILE", "Journal"]

JOURNAL_FILE = "journal.jsonl"
#: Crashes an image may be in flight at before it is failed untried.
CRASHES = 2


class Journal:
    """The journal at ``path`` (module docstring; a job's is :data:`JOURNAL_FILE` in its
    store's folder); read, compacted and opened for appending by the constructor; a
    context manager."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.crashes: dict[str, int] = {}
        in_flight: set[str] = set()
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            lines = []
        for line in lines:
            try:
                entry = json.loads(line)
                kind, image_id = entry[0], str(entry[1])
            except (ValueError, IndexError, TypeError, KeyError):
                continue  # a line cut by a crash mid-write
            if kind == "start":
                in_flight.add(image_id)
            elif kind == "end":
                in_flight.discard(image_id)
            elif kind == "crashed":
                self.crashes[image_id] = int(entry[2])
            elif kind == "clear":
                self.crashes.pop(image_id, None)
        for image_id in in_flight:
            self.crashes[image_id] = self.crashes.get(image_id, 0) + 1
        body = "".join(
            json.dumps(["crashed", i, n]) + "\n" for i, n in sorted(self.crashes.items())
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, body.encode("utf-8"))
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        self._lock = threading.Lock()

    def failed(self, image_id: str) -> str | None:
        """Why ``image_id`` is failed untried, or ``None``."""
        n = self.crashes.get(image_id, 0)
        if n < CRASHES:
            return None
        return (
            f"image {image_id!r}: in flight at {n} crashes of the extracting process (it "
            f"is taken to kill its process: not tried again; delete {self.path} to retry)"
        )

    def suspect(self, image_id: str) -> bool:
        """In flight at one crash: run alone."""
        return self.crashes.get(image_id, 0) > 0

    def _append(self, *entry) -> None:
        with self._lock:
            if self._fd is not None:
                os.write(self._fd, (json.dumps(list(entry)) + "\n").encode("utf-8"))

    def start(self, image_id: str) -> None:
        self._append("start", image_id)

    def end(self, image_id: str, stored: bool) -> None:
        self._append("end", image_id)
        if stored and image_id in self.crashes:
            self.crashes.pop(image_id)
            self._append("clear", image_id)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
