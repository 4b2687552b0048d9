"""``LocalFeatures``: one image's keypoints, descriptors and optional frames.

Data contract (what the Rust core reads, zero-copy):

- ``keypoints``: ``(N, 2)`` float32 pixel ``x, y`` in the *original* image;
- ``descriptors``: ``(N, D)`` float32 (e.g. RootSIFT, L2-normalised) or uint8; or
  ``(N, W)`` uint64: binary descriptors of ``64 W`` bits compared by Hamming distance
  (see :mod:`ilias_rerank.compact`);
- ``frames``: ``None``, ``(N, 2)`` float32 ``(scale, orientation in degrees)`` as kornia's
  ``laf_from_center_scale_ori``, or ``(N, 2, 3)`` float32 local affine frames (kornia LAF);
- ``image_size``: ``None`` or ``(height, width)`` of the original image.

Inputs may be numpy arrays, torch tensors (any device; moved to CPU) or nested lists. A
leading batch dimension of 1 (kornia's ``(1, N, ...)``) is dropped. Real dtypes are
converted (float64/float16 -> float32; integer keypoints -> float32); unsupported dtypes
raise :class:`~ilias_rerank.errors.DTypeError`, wrong shapes
:class:`~ilias_rerank.errors.ShapeError`. Non-contiguous arrays are copied once. NaN and
infinity are refused by the core when the features are used.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from .errors import DTypeError, InvalidInputError, ShapeError

__all__ = ["LocalFeatures", "as_numpy", "check_frames", "real_float32"]


def as_numpy(value: Any, what: str) -> np.ndarray:
    """numpy view of an array-like; torch tensors are detached and moved to the CPU."""
    if type(value).__module__.startswith("torch"):
        value = value.detach()
        if value.device.type != "cpu":
            try:
                value = value.cpu()
            except (NotImplementedError, RuntimeError) as exc:  # meta tensors, lost devices
                raise InvalidInputError(
                    f"{what}: expected a tensor whose data can be read, got one on device "
                    f"{value.device} ({str(exc).splitlines()[0]})"
                ) from None
        torch = sys.modules["torch"]  # it made `value`, so it is imported
        if value.dtype.is_floating_point and value.dtype not in (
            torch.float16,
            torch.float32,
            torch.float64,
        ):
            value = value.float()  # bfloat16 has no numpy equivalent
        try:
            return value.numpy()
        except (TypeError, RuntimeError) as exc:  # e.g. complex32, quantised, sparse
            raise DTypeError(
                f"{what}: cannot read a tensor of dtype {value.dtype} ({exc})"
            ) from None
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged lists, objects numpy cannot read
        raise ShapeError(f"{what}: expected an array, got {type(value).__name__}") from exc
    if arr.dtype == object:
        raise DTypeError(f"{what}: expected a numeric array, got dtype object")
    return arr


def _drop_batch(arr: np.ndarray, rank: int) -> np.ndarray:
    if arr.ndim == rank + 1 and arr.shape[0] == 1:
        return arr[0]
    return arr


def c_array(arr: np.ndarray, dtype: Any = None) -> np.ndarray:
    """``arr`` as a C-contiguous, aligned array (of ``dtype``): a view when it is one, else
    a copy (a misaligned array, e.g. a view into a byte buffer at an odd offset, is copied
    rather than refused by the core)."""
    return np.require(arr, dtype=dtype, requirements=["C_CONTIGUOUS", "ALIGNED"])


def _shape_text(arr: np.ndarray) -> str:
    return f"{tuple(arr.shape)} {arr.dtype}"


def real_float32(arr: np.ndarray, what: str, expected: str) -> np.ndarray:
    """C-contiguous float32 copy (or view) of a real-valued array; other dtypes are refused."""
    if arr.dtype.kind not in "fiu":
        raise DTypeError(f"{what}: expected {expected}, got {_shape_text(arr)}")
    return c_array(arr, np.float32)


def check_frames(value: Any, n: int, what: str = "frames") -> np.ndarray:
    """The one check of keypoint frames: ``(n, 2)`` ``(scale, orientation in degrees)`` or
    ``(n, 2, 3)`` LAFs (a leading batch dimension of 1 is dropped), as C-contiguous
    float32; anything else is a ``ShapeError`` / ``DTypeError`` naming ``what``. NaN and
    infinity are refused by the core when the frames are used."""
    fr = as_numpy(value, what)
    if fr.ndim in (3, 4) and fr.shape[0] == 1 and fr.shape[1:] != (2, 3):
        fr = fr[0]
    expected = "(N, 2) (scale, orientation) or (N, 2, 3) LAFs, float32"
    ok = (fr.ndim == 2 and fr.shape[1] == 2) or (fr.ndim == 3 and fr.shape[1:] == (2, 3))
    if not ok or fr.shape[0] != n:
        raise ShapeError(f"{what}: expected {expected} for {n} keypoints, got {_shape_text(fr)}")
    if fr.dtype.kind != "f":
        raise DTypeError(f"{what}: expected {expected}, got {_shape_text(fr)}")
    return c_array(fr, np.float32)


class LocalFeatures:
    """Local features of one image (the module docstring states the contract).

    Parameters
    ----------
    keypoints : array_like
        ``(N, 2)`` pixel ``x, y`` in the original image (float32; other real dtypes are
        converted).
    descriptors : array_like
        ``(N, D)`` float32 or uint8 (float16 / float64 are converted), or ``(N, W)``
        uint64 binary words compared by Hamming distance.
    frames : array_like or None
        ``(N, 2)`` ``(scale, orientation in degrees)`` as kornia's
        ``laf_from_center_scale_ori``, or ``(N, 2, 3)`` kornia LAFs; ``None``: no frames
        (verification falls back to seeded LO-RANSAC).
    image_size : (int, int) or None
        ``(height, width)`` of the original image; scales the inlier threshold.

    Raises
    ------
    ShapeError
        An array of the wrong shape, or rows that differ in N.
    DTypeError
        An unsupported dtype.
    InvalidInputError
        A tensor whose data cannot be read (the ``meta`` device).
    """

    __slots__ = ("descriptors", "frames", "image_size", "keypoints")

    keypoints: np.ndarray
    descriptors: np.ndarray
    frames: np.ndarray | None
    image_size: tuple[int, int] | None

    def __init__(
        self,
        keypoints: Any,
        descriptors: Any,
        frames: Any = None,
        image_size: tuple[int, int] | None = None,
    ) -> None:
        kp = _drop_batch(as_numpy(keypoints, "keypoints"), 2)
        if kp.ndim != 2 or kp.shape[1] != 2:
            # An empty set may come as shape (0,) from a list.
            if kp.size == 0:
                kp = kp.reshape(0, 2)
            else:
                raise ShapeError(f"keypoints: expected (N, 2) float32, got {_shape_text(kp)}")
        kp = real_float32(kp, "keypoints", "(N, 2) float32")

        desc = _drop_batch(as_numpy(descriptors, "descriptors"), 2)
        if desc.ndim != 2:
            raise ShapeError(
                f"descriptors: expected (N, D) float32 or uint8, got {_shape_text(desc)}"
            )
        if desc.dtype in (np.uint8, np.uint64):
            desc = c_array(desc)
        elif desc.dtype.kind == "f":
            desc = c_array(desc, np.float32)
        else:
            raise DTypeError(
                "descriptors: expected (N, D) float32 or uint8 (float16/float64 are converted), "
                "or (N, W) uint64 binary words, "
                f"got {_shape_text(desc)}"
            )
        if desc.shape[0] != kp.shape[0]:
            raise ShapeError(
                f"descriptors: expected ({kp.shape[0]}, D) to match {kp.shape[0]} keypoints, "
                f"got {_shape_text(desc)}"
            )

        fr = None if frames is None else check_frames(frames, kp.shape[0], "frames")

        size = None
        if image_size is not None:
            try:
                h, w = (int(v) for v in image_size)
            except (TypeError, ValueError) as exc:
                raise ShapeError(
                    f"image_size: expected (height, width), got {image_size!r}"
                ) from exc
            if h <= 0 or w <= 0:
                raise ShapeError(f"image_size: expected (height, width) both > 0, got {(h, w)}")
            size = (h, w)

        self.keypoints = kp
        self.descriptors = desc
        self.frames = fr
        self.image_size = size

    @classmethod
    def from_lafs(
        cls, lafs: Any, descriptors: Any, image_size: tuple[int, int] | None = None
    ) -> LocalFeatures:
        """From kornia local affine frames ``(1, N, 2, 3)`` or ``(N, 2, 3)``: the keypoints are
        the frames' centres."""
        arr = as_numpy(lafs, "lafs")
        if arr.ndim == 4 and arr.shape[0] == 1:
            arr = arr[0]
        if arr.ndim != 3 or arr.shape[1:] != (2, 3):
            raise ShapeError(f"lafs: expected (N, 2, 3), got {_shape_text(arr)}")
        return cls(arr[:, :, 2], descriptors, frames=arr, image_size=image_size)

    def __len__(self) -> int:
        return int(self.keypoints.shape[0])

    @property
    def dim(self) -> int:
        return int(self.descriptors.shape[1])

    @property
    def nbytes(self) -> int:
        frames = 0 if self.frames is None else self.frames.nbytes
        return self.keypoints.nbytes + self.descriptors.nbytes + frames

    def __repr__(self) -> str:
        frames = "none" if self.frames is None else "x".join(map(str, self.frames.shape[1:]))
        return (
            f"LocalFeatures(n={len(self)}, dim={self.dim}, dtype={self.descriptors.dtype}, "
            f"frames={frames}, image_size={self.image_size})"
        )
