"""Image loading: paths, encoded bytes (a tar member, a key-value store), PIL images, numpy
arrays or torch tensors to a grayscale or RGB PIL image, EXIF orientation applied, with
errors that name the file. Images of more than 8 bits (16-bit PNG and TIFF, ``uint16``
arrays) are scaled to 8 bits, not clipped. Needs Pillow (the ``extract`` extra)."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from ._extras import require
from ._pixels import describe_source, scale_16, to_uint8
from .errors import ImageReadError

require("PIL", "reading images")
from PIL import Image, ImageOps, UnidentifiedImageError  # noqa: E402

__all__ = ["describe_source", "load_gray", "load_image", "load_rgb", "load_scaled"]

#: str | os.PathLike | encoded bytes | PIL.Image.Image | np.ndarray | torch.Tensor
ImageSource = Any


#: EXIF orientations (5-8) that swap width and height.
_SWAPPING = (5, 6, 7, 8)


def _open(
    opener: Any, name: str, mode: str, working_size: Any = None
) -> tuple[Image.Image, tuple[int, int]]:
    """Decode a file or an encoded buffer, EXIF orientation applied, errors naming it:
    ``(image, its full displayed size)``. With ``working_size`` (``(w, h) -> (w', h')``,
    the size the image will be shrunk to), a JPEG at least twice that size is decoded
    straight to ``mode`` at the smallest of libjpeg's DCT scales (1/2, 1/4, 1/8) that
    stays at least that large."""
    try:
        with Image.open(opener) as img:
            swapped = img.getexif().get(0x0112, 1) in _SWAPPING
            full = img.size[::-1] if swapped else img.size
            if working_size is not None and img.format == "JPEG":
                want = working_size(*full)
                # Only where libjpeg can decode at 1/2 or less: at full scale the decode is
                # left as it was (RGB, then converted), so features of images near the
                # working size do not change (decoding luma alone moved rOxf/rPar mAP by
                # 0.009 in benches/accuracy.py).
                if full[0] >= 2 * want[0] and full[1] >= 2 * want[1]:
                    img.draft(mode, want[::-1] if swapped else want)
            img = ImageOps.exif_transpose(img)
            img.load()
            return _to_8_bits(img).convert(mode), full
    except FileNotFoundError as exc:
        raise ImageReadError(f"{name}: no such file") from exc
    except UnidentifiedImageError as exc:
        raise ImageReadError(f"{name}: not a readable image") from exc
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ImageReadError(f"{name}: cannot decode ({exc})") from exc


#: PIL modes of more than 8 bits a channel: 16-bit greyscale (PNG, TIFF), 32-bit int / float.
_WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def _to_8_bits(img: Image.Image) -> Image.Image:
    """A greyscale image of more than 8 bits scaled to 8 (Pillow's ``convert("L")`` clips
    it instead, turning a 16-bit photo white): 16-bit values by 257 (65535 -> 255), 32-bit
    integer images holding 16-bit values likewise, float images in [0, 1] by 255."""
    if img.mode not in _WIDE_MODES:
        return img
    arr = np.asarray(img)
    if img.mode == "F":
        top = 1.0 if float(np.nanmax(arr, initial=0.0)) <= 1.0 else 255.0
        return Image.fromarray(np.clip(np.nan_to_num(arr) * (255.0 / top), 0, 255).astype(np.uint8))
    if img.mode == "I" and int(arr.max(initial=0)) <= 255:
        return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    return Image.fromarray(scale_16(arr))


def _from_array(arr: np.ndarray, name: str) -> Image.Image:
    return Image.fromarray(to_uint8(arr, name))


def load_gray(source: ImageSource, index: int = 0) -> Image.Image:
    """A grayscale image in its displayed orientation (EXIF applied)."""
    return load_image(source, index, "L")


def load_rgb(source: ImageSource, index: int = 0, max_side: int | None = None) -> np.ndarray:
    """``(H, W, 3)`` float32 RGB in [0, 1], displayed orientation, longest side shrunk to
    ``max_side`` (never enlarged)."""
    img = load_image(source, index, "RGB")
    if max_side is not None and max(img.size) > max_side:
        scale = max_side / max(img.size)
        img = img.resize(
            (max(1, round(img.width * scale)), max(1, round(img.height * scale))),
            Image.Resampling.BILINEAR,
        )
    return np.asarray(img, dtype=np.float32) / 255.0


def load_image(
    source: ImageSource, index: int = 0, mode: str = "L", name: str | None = None
) -> Image.Image:
    """An image in PIL ``mode`` in its displayed orientation (EXIF applied); errors name
    it ``name`` (default: its path, or its place in the batch)."""
    name = name or describe_source(source, index)
    if isinstance(source, (str, os.PathLike, bytes, bytearray, memoryview)):
        return load_scaled(source, index, mode, name)[0]
    if isinstance(source, Image.Image):
        return _to_8_bits(ImageOps.exif_transpose(source)).convert(mode)
    if type(source).__module__.startswith("torch"):
        source = source.detach().cpu().float().numpy()
    if isinstance(source, np.ndarray):
        return _from_array(source, name).convert(mode)
    raise ImageReadError(
        f"{name}: expected a path, encoded bytes, PIL image, numpy array or torch tensor"
    )


def load_scaled(
    source: ImageSource, index: int = 0, mode: str = "L", name: str | None = None, working_size=None
) -> tuple[Image.Image, tuple[int, int]]:
    """:func:`load_image`, and the image's full displayed size ``(width, height)``. An
    encoded JPEG much larger than ``working_size(width, height)`` is decoded at a reduced
    scale (the returned image is then smaller than the full size, never smaller than the
    working size); other sources are returned whole."""
    name = name or describe_source(source, index)
    if isinstance(source, (str, os.PathLike)):
        return _open(Path(source), name, mode, working_size)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _open(io.BytesIO(bytes(source)), name, mode, working_size)
    img = load_image(source, index, mode, name)
    return img, img.size
