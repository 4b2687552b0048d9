"""Progress bars for long work: tqdm when it is installed (the ``pipeline`` extra), shown
only on a terminal unless asked for; without tqdm the work runs without a bar."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TypeVar

__all__ = ["progress"]

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
