"""SIFT in the package's own Rust core (``backend="rust"``): decode, resize and detect in
one native call with numpy alone — no Pillow, no OpenCV, no torch — so the light install
(``pip install ilias-rerank``) extracts features from JPEG and PNG photos.

The core reproduces the OpenCV backend's path bit for bit up to the detector: JPEGs decoded
by libjpeg-turbo's decoder (compiled into the core) as Pillow drives it, Pillow's decoding
rules (a JPEG at least twice the working size decoded at a reduced DCT scale straight to
grey, EXIF orientation, grey as Pillow's "L", 16-bit PNG scaled to 8 bits), Pillow's
resize; then SIFT with OpenCV's conventions on a doubled first octave, RootSIFT uint8 as
``round(d * 512)``, frames ``(size, -angle)``, strongest first, keypoints in original-image
pixels.

The extraction pool (:mod:`~ilias_rerank.extractors.pool`) calls the extractor on one
image at a time (``extractor(source)``) in its worker threads, as for every backend; the
native call releases the GIL, so those threads run in parallel.
:meth:`RustSift.extract_many` is the batch entry for direct callers and benches: a whole
batch in one call with the GIL released, the images spread over the core's threads
(``threads``), each image failing on its own.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from .._pixels import to_uint8
from ..errors import ConfigError, ImageReadError
from ..features import LocalFeatures
from .base import Extractor
from .sift_opencv import DEFAULT_CONTRAST

__all__ = ["DECODER", "MAX_RUST_SIDE", "RustSift", "gray_pixels"]

#: What decodes JPEGs in the core (recorded in the manifest): libjpeg-turbo's decoder, as
#: Pillow uses it, so that the working images are the OpenCV backend's bit for bit.
DECODER = "libjpeg-turbo"

#: Most pixels of SIFT's first octave in the core (``rust/core/src/sift/mod.rs``
#: ``MAX_SIFT_OCTAVE_PIXELS``), the working image doubled.
_MAX_OCTAVE_PIXELS = 1 << 24
#: Largest ``max_side`` whose every working image fits that octave: a square working image
#: of ``max_side`` doubled (``upsample`` never makes a working image larger than
#: ``max_side``, so it does not change the bound): 2048.
MAX_RUST_SIDE = math.isqrt(_MAX_OCTAVE_PIXELS // 4)


def gray_pixels(source: Any, name: str) -> np.ndarray:
    """A decoded image (numpy array, tensor, PIL image) as an ``(H, W)`` uint8 grey
    array, converted as :mod:`~ilias_rerank.images` does (Pillow's "L" formula)."""
    if type(source).__module__.startswith("PIL"):
        from PIL import ImageOps

        from ..images import _to_8_bits  # Pillow is present: a PIL image was given

        # 16-bit and wider modes scaled to 8 bits as the Pillow path scales them (a plain
        # convert("L") clips them to white).
        return np.asarray(_to_8_bits(ImageOps.exif_transpose(source)).convert("L"))
    if type(source).__module__.startswith("torch"):
        source = source.detach().cpu().float().numpy()
    if not isinstance(source, np.ndarray):
        raise ImageReadError(
            f"{name}: expected a path, encoded bytes, PIL image, numpy array or torch tensor"
        )
    arr = to_uint8(source, name)
    if arr.ndim == 3:  # Pillow's RGB -> L: (19595 R + 38470 G + 7471 B + 2^15) >> 16
        rgb = arr[..., :3].astype(np.uint32)
        arr = ((rgb @ np.array([19595, 38470, 7471], np.uint32) + 0x8000) >> 16).astype(np.uint8)
    return np.ascontiguousarray(arr)


def _name(source: Any, index: int, name: str | None) -> str:
    if name:
        return name
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    return f"image #{index} ({type(source).__name__})"


#: The first bytes of what the core decodes itself: JPEG, PNG.
_CORE_FORMATS = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")


def _core_reads(head: bytes) -> bool:
    """Whether the core decodes a file that starts with ``head`` itself (JPEG, PNG; an
    empty or short head too: the core names what is wrong with it)."""
    return len(head) < 8 or head.startswith(_CORE_FORMATS)


def _other_format(source: Any, native: Any, name: str) -> Any:
    """A format the core does not decode (TIFF, WebP, BMP, GIF, ...): Pillow's grey pixels
    where Pillow is installed (as the OpenCV backend reads it), else (no Pillow, or bytes
    Pillow does not recognise) ``native``, which the core refuses naming what it got."""
    try:
        from .. import images
    except ImportError:  # the light install: JPEG and PNG only
        return native
    try:
        return np.asarray(images.load_image(source, mode="L", name=name))
    except ImageReadError as exc:
        if type(exc.__cause__).__name__ == "UnidentifiedImageError":
            return native  # no format Pillow knows either: the core says what it got
        raise


def _native(source: Any, name: str) -> Any:
    """What the core reads: encoded ``bytes``, a path ``str`` or grey pixels (other
    formats than JPEG and PNG decoded by Pillow where it is installed)."""
    if isinstance(source, (bytearray, memoryview)):
        source = bytes(source)
    if isinstance(source, bytes):
        return source if _core_reads(source[:8]) else _other_format(source, source, name)
    if isinstance(source, (str, os.PathLike)):
        path = os.fsdecode(os.fspath(source))
        try:
            with open(path, "rb") as f:
                head = f.read(8)
        except OSError:  # missing, a directory, unreadable: the core's error names it
            return path
        return path if _core_reads(head) else _other_format(path, path, name)
    return gray_pixels(source, name)


class RustSift(Extractor):
    method = "sift"
    backend = "rust"
    #: The OpenCV backend's settings (768 px, contrast 0.02, doubled first octave).
    default_max_side = 768
    manifest_name = "rust-sift-rootsift"
    image_mode = "L"
    devices = ("cpu",)
    #: numpy alone (the pool reads the first entry to set library threads).
    requires = ("numpy",)
    pixel_dtype = "uint8"
    frame_width = 2
    #: The native call releases the GIL (the pool's worker threads run it in parallel).
    releases_gil = True

    def __init__(
        self, *args, contrast_threshold: float = DEFAULT_CONTRAST, threads: int = 1, **kwargs
    ) -> None:
        super().__init__(*args, **kwargs)
        if self.max_side > MAX_RUST_SIDE:
            raise ConfigError(
                f"max_side: expected an int in 16..={MAX_RUST_SIDE} for the rust backend (its "
                f"SIFT's doubled first octave holds at most {_MAX_OCTAVE_PIXELS} pixels; "
                f"backend='opencv' takes larger), got {self.max_side}"
            )
        if not isinstance(contrast_threshold, (int, float)) or not (
            0.0 < float(contrast_threshold) <= 1.0
        ):
            raise ConfigError(
                f"contrast_threshold: expected a number in (0, 1], got {contrast_threshold!r}"
            )
        if isinstance(threads, bool) or not isinstance(threads, int) or not 0 <= threads <= 1024:
            raise ConfigError(f"threads: expected an int in 0..=1024, got {threads!r}")
        if not self.draft:
            raise ConfigError(
                "draft: expected True (the rust backend always decodes JPEGs much larger "
                "than the working size at a reduced DCT scale), got False"
            )
        self.contrast_threshold = float(contrast_threshold)
        #: Threads of one call (0: every core; not a feature setting): a batch
        #: (:meth:`extract_many`) spreads its images over them, a single image
        #: (``extractor(source)``: a query) uses them inside itself. The extraction pool's
        #: workers call one image each, so leave it at 1 there.
        self.threads = threads

    def extra_params(self) -> dict:
        # The decoder is recorded: features of the earlier pure-Rust JPEG decoders (before
        # 2026-12-08) differ from these, whose pixels are libjpeg-turbo's, as Pillow's.
        return {
            "backend": self.backend,
            "contrast_threshold": self.contrast_threshold,
            "decoder": DECODER,
        }

    def _run(self, items: list, threads: int, as_is: bool = False) -> list:
        """The core's batch call; ``as_is``: the images are working images already (no
        resize: the longest side is the limit, nothing is doubled)."""
        from .. import _core

        side = max((max(i.shape) for i in items), default=16) if as_is else self.max_side
        return _core.extract_sift(
            items,
            num_features=self.num_features,
            max_side=max(16, side),
            upsample=self.upsample and not as_is,
            contrast_threshold=self.contrast_threshold,
            threads=threads,
        )

    def _features(self, got: tuple) -> LocalFeatures:
        kp, desc, frames, size, _working = got
        if self.descriptor_dtype == "float32":
            desc = desc.astype(np.float32) / np.float32(self.uint8_scale)
        return LocalFeatures(kp, desc, frames=frames, image_size=tuple(size))

    def extract_many(
        self, sources: list, threads: int | None = None, names: list | None = None
    ) -> list[LocalFeatures | ImageReadError]:
        """Features of every source in one native call (GIL released, ``threads`` threads;
        ``None``: this extractor's ``threads``), in input order; an image that fails is
        its :class:`~ilias_rerank.errors.ImageReadError` in its place."""
        names = [_name(s, i, names[i] if names else None) for i, s in enumerate(sources)]
        out: list[Any] = [None] * len(sources)
        items, where = [], []
        for i, (source, name) in enumerate(zip(sources, names, strict=True)):
            try:
                items.append(_native(source, name))
                where.append(i)
            except ImageReadError as exc:
                out[i] = exc
        got = self._run(items, self.threads if threads is None else threads)
        for i, result in zip(where, got, strict=True):
            out[i] = (
                ImageReadError(f"{names[i]}: {result}")
                if isinstance(result, str)
                else self._features(result)
            )
        return out

    def __call__(self, source: Any, index: int = 0, name: str | None = None) -> LocalFeatures:
        name = _name(source, index, name)
        (got,) = self._run([_native(source, name)], self.threads)
        if isinstance(got, str):
            raise ImageReadError(f"{name}: {got}")
        return self._features(got)

    def prepare(
        self, source: Any, index: int = 0, name: str | None = None
    ) -> tuple[np.ndarray, tuple[int, int]]:
        """The grey working image the detector reads and the original ``(width, height)``,
        decoded and resized by the core."""
        from .. import _core

        name = _name(source, index, name)
        native = _native(source, name)  # its errors name the image already
        try:
            image, original = _core.working_image(native, self.max_side, self.upsample)
        except ImageReadError as exc:
            raise ImageReadError(f"{name}: {exc}") from None
        return image, tuple(original)

    def _detect(self, image: np.ndarray):
        (got,) = self._run([np.ascontiguousarray(image, dtype=np.uint8)], 1, as_is=True)
        if isinstance(got, str):
            raise ImageReadError(got)
        kp, desc, frames, _size, _working = got
        return kp, desc.astype(np.float32) / np.float32(self.uint8_scale), frames
