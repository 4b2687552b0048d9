"""The extraction pool's failure rule, shared by its threads and its worker processes:
what one image's outcome is (:func:`extract_one`), and the libraries' thread setting."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import IliasRerankError
from ..features import LocalFeatures
from .base import IMAGE_ERRORS, Extractor

__all__ = [
    "DEATHS_PER_IMAGE",
    "Outcome",
    "describe",
    "extract_one",
    "is_image_error",
    "set_threads",
]

#: Process deaths an image may be in flight at before it is that image's failure.
DEATHS_PER_IMAGE = 2

#: ``(index, features or None, (name, reason) or None)`` for each image, in input order.
Outcome = tuple[int, "LocalFeatures | None", "tuple[str, str] | None"]


def set_threads(extractor: Extractor, threads: int) -> None:
    """Give the library ``extractor`` computes with (torch, OpenCV) ``threads`` threads."""
    requires = getattr(extractor, "requires", ())
    if requires[:1] == ("torch",):
        import torch

        torch.set_num_threads(threads)
    if "cv2" in requires:
        import cv2

        cv2.setNumThreads(threads)


# --- the failure rule --------------------------------------------------------------------------


def describe(item: Any, index: int, read: Callable | None) -> str:
    """The name an image's failure carries: its id (``read``: items are ids), path, or
    place in the batch."""
    if read is not None:
        return f"image {item!r}"
    from .._pixels import describe_source  # numpy alone: also in the light install

    return describe_source(item, index)


#: What reading an image from a job's source may raise about that image (anything else
#: from a source is a bug in it, and stops the call).
READ_ERRORS = (IliasRerankError, OSError, ValueError, MemoryError)


def is_image_error(exc: BaseException) -> bool:
    """The failure rule's exceptions: what decoding or detecting one image raises about
    that image (our errors, the decoders' ``OSError`` / ``ValueError``, out of memory,
    torch's and OpenCV's errors on an odd image). A ``TypeError`` or ``AttributeError`` is
    a bug, and stops the call."""
    return isinstance(exc, (*READ_ERRORS, *IMAGE_ERRORS)) or type(exc).__module__.startswith("cv2")


def extract_one(extractor, index: int, item: Any, read: Callable | None = None) -> Outcome:
    """One image through ``extractor`` under the failure rule (module docstring): its
    features, or ``None`` and ``(name, reason)``."""
    name = describe(item, index, read)
    try:
        source = read(item) if read is not None else item
    except READ_ERRORS as exc:
        return index, None, (name, _reason(name, exc))
    try:
        features = extractor(source, name=name)
    except Exception as exc:
        if not is_image_error(exc):
            raise
        return index, None, (name, _reason(name, exc))
    if not isinstance(features, LocalFeatures):
        return index, None, (name, f"{name}: the extractor returned {type(features).__name__}")
    return index, features, None


def _reason(name: str, exc: BaseException) -> str:
    reason = f"{type(exc).__name__}: {exc}"
    return reason if name in reason else f"{name}: {reason}"
