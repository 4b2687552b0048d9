""":func:`open_source`: the source a path, a glob, a callable or a list of them names.

It imports every source, and no source imports it (each needs only :mod:`.base`).
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any

from ..errors import ImageReadError, InvalidInputError
from .base import IMAGE_SUFFIXES, ImageSource
from .callable import CallableSource
from .chain import ChainSource
from .folder import FolderSource
from .tar import TarSource

__all__ = ["open_source"]


def open_source(spec: Any, *, index_dir: str | os.PathLike | None = None) -> ImageSource:
    """A source from ``spec``: an :class:`ImageSource` (returned as is); a callable
    (``id -> bytes``); a folder; a ``.tsv`` file of ``id<TAB>path``; a ``.tar`` file, a
    folder or glob of ``.tar`` files (tar indexes are cached under ``index_dir``, default
    next to each tar); or a list of any of these, looked up in order (the ILIAS queries in
    a folder, the distractors in tars)."""
    if isinstance(spec, ImageSource):
        return spec
    if callable(spec):
        return CallableSource(spec)
    if isinstance(spec, (list, tuple)):
        if len(spec) == 1:
            return open_source(spec[0], index_dir=index_dir)
        # Globs expanded first: a list of tar globs (or tars and globs) is one TarSource.
        tars = [t for s in spec for t in (_expand(s) if _is_glob(s) else [s])]
        if tars and all(
            isinstance(t, (str, os.PathLike)) and str(t).lower().endswith(".tar") for t in tars
        ):
            return TarSource(tars, index_dir=index_dir)
        return ChainSource([open_source(s, index_dir=index_dir) for s in spec])
    text = str(spec)
    path = Path(text)
    if _is_glob(spec):
        return TarSource(_expand(spec), index_dir=index_dir)
    if path.is_file() and path.suffix.lower() == ".tar":
        return TarSource([path], index_dir=index_dir)
    if path.is_file() and path.suffix.lower() in (".tsv", ".txt"):
        return FolderSource(path.parent, tsv=path)
    if path.is_dir():
        tars = sorted(path.glob("*.tar"))
        images = any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.iterdir() if p.is_file())
        if tars and not images:
            return TarSource(tars, index_dir=index_dir)
        return FolderSource(path)
    raise InvalidInputError(
        f"images: expected a folder, a .tsv of id<TAB>path, .tar files or a callable, "
        f"got {text!r} (not found)"
    )


def _is_glob(spec: Any) -> bool:
    return isinstance(spec, (str, os.PathLike)) and any(ch in str(spec) for ch in "*?[")


def _expand(pattern: Any) -> list[str]:
    """The files a glob matches, sorted; none is an error naming the pattern."""
    found = sorted(glob.glob(str(pattern)))
    if not found:
        raise ImageReadError(f"images: no file matches {str(pattern)!r}")
    return found
