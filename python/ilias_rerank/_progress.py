"""Progress bars for long work: tqdm when it is installed (the ``pipeline`` extra), shown
only on a terminal unless asked for; without tqdm the work runs without a bar."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TypeVar

__all__ = ["Counter", "progress"]

T = TypeVar("T")


def progress(iterable: Iterable[T], enabled: bool | None = None, **kw) -> Iterable[T]:
    """``iterable`` with a progress bar (tqdm keywords: ``desc``, ``unit``, ``total``).
    ``enabled=None`` shows it when stderr is a terminal."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, **kw)


class Counter:
    """A progress bar advanced by hand (``update()``) for work that finishes out of
    order; a no-op without tqdm or when disabled. Use it as a context manager."""

    def __init__(self, total: int, enabled: bool | None = None, **kw) -> None:
        if enabled is None:
            enabled = sys.stderr.isatty()
        self._bar = None
        if enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                return
            self._bar = tqdm(total=total, **kw)

    def update(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def __enter__(self) -> Counter:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()
