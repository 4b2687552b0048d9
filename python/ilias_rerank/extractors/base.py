"""What every extractor shares: the settings and their checks, the resize to the working
resolution and back to original-image pixels, uint8 quantisation, and the batch loop
that keeps going past images that fail.

An extractor is a subclass of :class:`Extractor` that implements :meth:`Extractor._detect`
on one resized image (a float32 ``(H, W)`` or ``(H, W, 3)`` array in [0, 1]) and returns
keypoints (pixels of that array), descriptors and optional frames. Everything else —
loading, EXIF, resizing, mapping keypoints and frames back to the original image,
quantisation, the manifest entry — happens here, once.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ..errors import ConfigError
from ..features import LocalFeatures

__all__ = ["DESCRIPTOR_DTYPES", "IMAGE_ERRORS", "Extractor", "check_device"]

DESCRIPTOR_DTYPES = ("uint8", "float32")
#: Largest accepted ``num_features`` and ``max_side``: bounds on the work one image can ask for.
MAX_FEATURES = 1 << 16
MAX_SIDE = 1 << 14


def check_device_name(device: str):
    """``device`` parsed as a torch device (its spelling alone: it need not exist here)."""
    import torch

    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(
            f"device: expected 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}"
        ) from exc


def check_device(device: str, devices: tuple[str, ...] = ("cpu", "cuda", "mps")) -> str:
    """``device`` if it names a device the backend runs on and that exists here, else a
    :class:`ConfigError`. Backends that run on the CPU only are checked without torch."""
    if devices == ("cpu",):
        if device != "cpu":
            raise ConfigError(
                f"device: expected 'cpu' (this backend runs on the CPU only), got {device!r}"
            )
        return device
    import torch

    dev = check_device_name(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"device: expected an available device, got {device!r} (no CUDA device here)"
        )
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ConfigError(
            f"device: expected cuda:0..{torch.cuda.device_count() - 1}, got {device!r}"
        )
    return device


class Extractor:
    """Base class of the local feature extractors (see the module docstring)."""

    #: Short name (``method=`` of :func:`~ilias_rerank.extract_local`).
    method: ClassVar[str]
    #: Name recorded in a store's manifest.
    manifest_name: ClassVar[str]
    #: PIL mode the network reads: ``"L"`` (grayscale) or ``"RGB"``.
    image_mode: ClassVar[str] = "L"
    #: Default descriptor type (``"uint8"`` where the accuracy bench showed no loss).
    default_dtype: ClassVar[str] = "uint8"
    #: uint8 descriptors are ``clip(round(d * uint8_scale + uint8_offset), 0, 255)``: an
    #: offset keeps signed descriptors' L2 distances (it cancels in every difference).
    uint8_scale: ClassVar[float] = 512.0
    uint8_offset: ClassVar[float] = 0.0
    #: Longest side the detector sees when ``max_side`` is not given.
    default_max_side: ClassVar[int] = 1024
    #: Working sizes are rounded down to a multiple of this (networks with strides).
    size_multiple: ClassVar[int] = 1
    #: The implementation (one module each): ``"kornia"`` (torch; CPU and GPU), ``"opencv"``,
    #: ``"kornia-rs"``. Recorded in the manifest by its name (and ``backend`` for all but
    #: kornia, whose stores predate the field).
    backend: ClassVar[str] = "kornia"
    #: Device types the backend runs on.
    devices: ClassVar[tuple[str, ...]] = ("cpu", "cuda", "mps")
    #: Modules the backend imports (each a :class:`MissingExtraError` naming its extra).
    requires: ClassVar[tuple[str, ...]] = ("torch", "kornia", "PIL")
    #: What :meth:`_detect` reads: float32 in [0, 1] or uint8 in [0, 255].
    pixel_dtype: ClassVar[str] = "float32"
    #: Columns of a descriptor, and floats of a frame per keypoint (0: no frames, 2:
    #: ``(scale, orientation)``, 6: ``(2, 3)`` LAFs): with ``descriptor_dtype`` the layout
    #: this extractor declares to a store (:meth:`store_layout`).
    descriptor_dim: ClassVar[int] = 128
    frame_width: ClassVar[int] = 0

    def __init__(
        self,
        num_features: int = 1024,
        max_side: int | None = None,
        device: str = "cpu",
        *,
        upsample: bool = False,
        descriptor_dtype: str | None = None,
        draft: bool = True,
    ) -> None:
        if not isinstance(num_features, int) or not 1 <= num_features <= MAX_FEATURES:
            raise ConfigError(
                f"num_features: expected an int in 1..={MAX_FEATURES}, got {num_features!r}"
            )
        if max_side is None:
            max_side = self.default_max_side
        if not isinstance(max_side, int) or not 16 <= max_side <= MAX_SIDE:
            raise ConfigError(f"max_side: expected an int in 16..={MAX_SIDE}, got {max_side!r}")
        dtype = descriptor_dtype or self.default_dtype
        if dtype not in DESCRIPTOR_DTYPES:
            raise ConfigError(
                f"descriptor_dtype: expected one of {DESCRIPTOR_DTYPES}, got {descriptor_dtype!r}"
            )
        self.num_features = num_features
        self.max_side = max_side
        self.device = check_device(device, self.devices)
        self.upsample = bool(upsample)
        self.descriptor_dtype = dtype
        #: Decode JPEGs straight to the detector's mode and, when much larger than the
        #: working size, at a reduced DCT scale (:func:`~ilias_rerank.images.load_scaled`;
        #: measured by ``benches/extract.py`` and ``benches/accuracy.py``).
        self.draft = bool(draft)

    #: ``(method, backend, args, kwargs)`` that :func:`~ilias_rerank.make_extractor` built
    #: this from: how a worker process builds the same extractor.
    spec: tuple = ()

    def params(self) -> dict[str, Any]:
        """The manifest entry: name and every parameter that changes the features."""
        return {
            "name": self.manifest_name,
            "num_features": self.num_features,
            "max_side": self.max_side,
            "descriptor_dtype": self.descriptor_dtype,
            **({"upsample": True} if self.upsample else {}),
            **({} if self.draft else {"draft": False}),
            **self.extra_params(),
        }

    def extra_params(self) -> dict[str, Any]:
        return {}

    def store_layout(self):
        """The :class:`~ilias_rerank.store.StoreLayout` of every image this extractor
        returns, a featureless one included: what a store of its features declares."""
        from ..store.layout import StoreLayout

        return StoreLayout(self.descriptor_dtype, self.descriptor_dim, self.frame_width)

    def _detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``(keypoints (N, 2), float32 descriptors (N, D), frames or None)`` in the pixels
        of ``image``."""
        raise NotImplementedError

    def working_scale(self, width: int, height: int) -> float:
        """Original pixels per working pixel: shrink to ``max_side``, never enlarge unless
        ``upsample`` (then small images are doubled, as SIFT's first octave does)."""
        longest = max(width, height)
        if longest > self.max_side:
            return longest / self.max_side
        if self.upsample and 2 * longest <= self.max_side:
            return 0.5
        return 1.0

    def working_size(self, width: int, height: int) -> tuple[int, int]:
        """The size the detector sees for an image of ``width x height``."""
        scale = self.working_scale(width, height)
        new_w, new_h = max(1, round(width / scale)), max(1, round(height / scale))
        m = self.size_multiple
        if m > 1:
            new_w, new_h = max(m, new_w // m * m), max(m, new_h // m * m)
        return new_w, new_h

    def prepare(
        self, source: Any, index: int = 0, name: str | None = None
    ) -> tuple[np.ndarray, tuple[int, int]]:
        """Decode and resize one image: ``(working image as the detector reads it,
        (original width, original height))``. JPEGs much larger than the working size are
        decoded at a reduced scale (libjpeg's DCT scaling) instead of in full."""
        from PIL import Image

        from ..images import load_scaled

        img, (width, height) = load_scaled(
            source, index, self.image_mode, name, self.working_size if self.draft else None
        )
        new_w, new_h = self.working_size(width, height)
        if (new_w, new_h) != img.size:
            shrink = new_w < img.width or new_h < img.height
            filt = Image.Resampling.BILINEAR if shrink else Image.Resampling.BICUBIC
            img = img.resize((new_w, new_h), filt)
        arr = np.asarray(img)
        if self.pixel_dtype == "float32":
            arr = arr.astype(np.float32) / np.float32(255.0)
        return arr, (width, height)

    def finish(
        self,
        detected: tuple[np.ndarray, np.ndarray, np.ndarray | None],
        working: tuple[int, int],
        original: tuple[int, int],
    ) -> LocalFeatures:
        """Keypoints and frames from working pixels back to the original image's, and the
        descriptors in the extractor's dtype. A featureless image gets empty arrays of the
        declared layout (``(0, descriptor_dim)`` descriptors, ``(0, 2)`` or ``(0, 2, 3)``
        frames; ``None`` only where the extractor has no frames)."""
        kp, desc, frames = detected
        (new_w, new_h), (width, height) = working, original
        sx, sy = width / new_w, height / new_h
        kp = np.asarray(kp, dtype=np.float32).reshape(-1, 2).copy()
        if not len(kp):
            desc = np.zeros((0, self.descriptor_dim), np.float32)
            frames = {0: None, 2: np.zeros((0, 2), np.float32)}.get(
                self.frame_width, np.zeros((0, 2, 3), np.float32)
            )
        # Working pixel centre (x + 0.5) * s - 0.5 in the original image.
        kp[:, 0] = (kp[:, 0] + 0.5) * sx - 0.5
        kp[:, 1] = (kp[:, 1] + 0.5) * sy - 0.5
        if frames is not None:
            frames = np.array(frames, dtype=np.float32)
            if frames.ndim == 3:  # LAFs: the shape part scales, the centre is kp
                frames[:, 0, :2] *= sx
                frames[:, 1, :2] *= sy
                frames[:, :, 2] = kp
            else:  # (scale, orientation)
                frames[:, 0] *= np.sqrt(sx * sy)
        desc = np.ascontiguousarray(desc, dtype=np.float32)
        if self.descriptor_dtype == "uint8":
            desc = np.rint(desc * self.uint8_scale + self.uint8_offset)
            desc = np.clip(desc, 0, 255).astype(np.uint8)
        return LocalFeatures(kp, desc, frames=frames, image_size=(height, width))

    def _detect_many(
        self, images: list[np.ndarray]
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
        """:meth:`_detect` of several working images of one shape (a GPU backend runs them
        as one batch; the result must equal detecting them one by one)."""
        return [self._detect(image) for image in images]

    def __call__(self, source: Any, index: int = 0, name: str | None = None) -> LocalFeatures:
        """Features of one image (a path, encoded bytes, PIL image, array or tensor);
        errors name it ``name`` (default: its path or its place in the batch)."""
        arr, original = self.prepare(source, index, name)
        return self.finish(self._detect(arr), (arr.shape[1], arr.shape[0]), original)


#: What torch / kornia raise on one odd image (beside our own errors): that image fails,
#: the others are kept.
IMAGE_ERRORS = (RuntimeError, ValueError, MemoryError)


def rgb_tensor(image: np.ndarray, device: str):
    """``(H, W, 3)`` float32 in [0, 1] as a ``(1, 3, H, W)`` tensor on ``device``."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].to(device)


def learned_strongest_first(keypoints, descriptors, scores) -> tuple[np.ndarray, np.ndarray, None]:
    """Keypoints and descriptors (tensors) by descending score, as numpy, and no frames."""
    import torch

    order = torch.argsort(scores, descending=True, stable=True)
    return (
        keypoints[order].to("cpu", torch.float32).numpy(),
        descriptors[order].to("cpu", torch.float32).numpy(),
        None,
    )
