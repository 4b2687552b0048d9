"""The interface every image source implements (the sources are in modules of their own;
:func:`~ilias_rerank.sources.factory.open_source` picks one)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from ..errors import ImageReadError

__all__ = ["IMAGE_SUFFIXES", "ImageSource"]

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
