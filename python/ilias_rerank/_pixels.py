"""Image sources with numpy alone (no Pillow): the name an image carries in errors, and
decoded pixels as 8-bit arrays — the one normalisation that the
Pillow path (:mod:`~ilias_rerank.images`) and the Rust backend (numpy only) share. Layout
``(H, W)``, ``(H, W, 1|3|4)`` or torch's ``(1|3|4, H, W)``; floats in [0, 1] or [0, 255];
images of more than 8 bits (``uint16``, wider ints over 255) scaled to 8 bits, never
clipped."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .errors import ImageReadError

__all__ = ["describe_source", "scale_16", "to_uint8"]


def describe_source(source: Any, index: int) -> str:
    """An image's name in messages: its path, or its place in the batch and its type."""
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    return f"image #{index} ({type(source).__name__})"


def scale_16(arr: np.ndarray) -> np.ndarray:
    """16-bit values to 8 bits, rounded (``v / 257``: 0 -> 0, 65535 -> 255)."""
    wide = np.clip(arr.astype(np.int64), 0, 65535)
    return ((wide + 128) // 257).astype(np.uint8)


def to_uint8(arr: np.ndarray, name: str) -> np.ndarray:
    """``arr`` as an ``(H, W)`` or ``(H, W, 3|4)`` uint8 array, or an
    :class:`ImageReadError` naming ``name``."""
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        arr = np.moveaxis(arr, 0, -1)  # CHW (torch layout) -> HWC
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        raise ImageReadError(
            f"{name}: expected an (H, W), (H, W, 3|4) or (3, H, W) image, got shape {arr.shape}"
        )
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise ImageReadError(f"{name}: image contains NaN or infinity")
        scale = 255.0 if arr.max(initial=0.0) <= 1.0 else 1.0
        arr = np.clip(arr * scale, 0, 255).astype(np.uint8)
    elif arr.dtype in (np.uint16, np.int16) or (
        arr.dtype.kind in "iu" and arr.dtype.itemsize > 1 and int(arr.max(initial=0)) > 255
    ):
        arr = scale_16(arr)  # a 16-bit image: scaled to 8 bits, never clipped
    elif arr.dtype != np.uint8:
        if arr.dtype.kind not in "iu":
            raise ImageReadError(f"{name}: unsupported image dtype {arr.dtype}")
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageReadError(f"{name}: empty image {arr.shape}")
    return arr
