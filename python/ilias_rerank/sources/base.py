"""The interface every image source implements, and :func:`open_source`."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ..errors import ImageReadError, InvalidInputError

__all__ = ["IMAGE_SUFFIXES", "ImageSource", "open_source"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")


class ImageSource:
    """Encoded image bytes by id."""

    def __contains__(self, image_id: object) -> bool:
        raise NotImplementedError

    def read(self, image_id: str) -> bytes:
        """The encoded bytes of ``image_id`` (``ImageReadError`` naming it otherwise)."""
        raise NotImplementedError

    def ids(self) -> Iterator[str]:
        """Every id this source can enumerate (a callable source enumerates none)."""
        raise NotImplementedError

    def prepare(self, ids: Iterable[str]) -> None:
        """Get ready to read ``ids`` (a tar source looks them all up at once)."""

    def describe(self) -> str:
        return type(self).__name__

    def missing(self, image_id: str, where: str) -> ImageReadError:
        return ImageReadError(f"image {image_id!r}: not in {where}")


def open_source(spec: Any, *, index_dir: str | os.PathLike | None = None) -> ImageSource:
    """A source from ``spec``: an :class:`ImageSource` (returned as is); a callable
    (``id -> bytes``); a folder; a ``.tsv`` file of ``id<TAB>path``; a ``.tar`` file, a
    folder or glob of ``.tar`` files (tar indexes are cached under ``index_dir``, default
    next to each tar); or a list of any of these, looked up in order (the ILIAS queries in
    a folder, the distractors in tars)."""
    from .callable import CallableSource
    from .chain import ChainSource
    from .folder import FolderSource
    from .tar import TarSource

    if isinstance(spec, ImageSource):
        return spec
    if callable(spec):
        return CallableSource(spec)
    if isinstance(spec, (list, tuple)):
        if len(spec) == 1:
            return open_source(spec[0], index_dir=index_dir)
        if spec and all(str(s).lower().endswith(".tar") for s in spec):
            return TarSource(spec, index_dir=index_dir)
        return ChainSource([open_source(s, index_dir=index_dir) for s in spec])
    text = str(spec)
    path = Path(text)
    if any(ch in text for ch in "*?["):
        tars = sorted(glob.glob(text))
        if not tars:
            raise ImageReadError(f"images: no file matches {text!r}")
        return TarSource(tars, index_dir=index_dir)
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
