"""A source that asks a function for the bytes of an id (``id -> bytes``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from ..errors import ImageReadError
from .base import ImageSource

__all__ = ["CallableSource"]


class CallableSource(ImageSource):
    """``read(id)`` calls ``fn(id)``; any exception it raises, or a non-bytes answer,
    becomes an :class:`ImageReadError` naming the id. Every id is assumed present."""

    def __init__(self, fn: Callable[[str], bytes]) -> None:
        self.fn = fn

    def __contains__(self, image_id: object) -> bool:
        return isinstance(image_id, str)

    def read(self, image_id: str) -> bytes:
        try:
            data = self.fn(image_id)
        except Exception as exc:
            raise ImageReadError(f"image {image_id!r}: the source function failed ({exc})") from exc
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ImageReadError(
                f"image {image_id!r}: expected bytes from the source function, got "
                f"{type(data).__name__}"
            )
        return bytes(data)

    def ids(self) -> Iterator[str]:
        return iter(())

    def describe(self) -> str:
        return f"function {getattr(self.fn, '__name__', repr(self.fn))}"
