"""SIFT by kornia-rs (``kornia_rs.imgproc.Sift``, installed with kornia): a Rust port of
OpenCV's detector whose keypoints match OpenCV's; it has a CUDA path of its own, which this
backend does not use (the GPU path is kornia's batched SIFT). RootSIFT descriptors and
``(size, -angle)`` frames as the OpenCV backend's, strongest first. ``upsample`` picks the
doubled first octave (OpenCV's behaviour; off by default here, as measured by
``benches/extract.py``).
"""

from __future__ import annotations

import threading

import numpy as np

from .base import Extractor
from .sift_opencv import sift_strongest_first

__all__ = ["KorniaRsSift"]

_local = threading.local()  # a kornia-rs Sift stays on the thread that built it


def _detector(num_features: int, upsample: bool):
    import kornia_rs.imgproc as kimg

    cache = _local.__dict__.setdefault("detectors", {})
    key = (num_features, upsample)
    if key not in cache:
        cache[key] = kimg.Sift(n_features=num_features, upsample=upsample)
    return cache[key]


class KorniaRsSift(Extractor):
    method = "sift"
    backend = "kornia-rs"
    manifest_name = "kornia-rs-sift-rootsift"
    image_mode = "L"
    devices = ("cpu",)
    requires = ("kornia_rs", "PIL")
    pixel_dtype = "uint8"
    frame_width = 2

    def working_scale(self, width: int, height: int) -> float:
        # ``upsample`` here is the detector's doubled first octave, not a bigger image.
        longest = max(width, height)
        return longest / self.max_side if longest > self.max_side else 1.0

    def extra_params(self) -> dict:
        return {"backend": self.backend}

    def _detect(self, image: np.ndarray):
        sift = _detector(self.num_features, self.upsample)
        plane = np.ascontiguousarray(image, dtype=np.float32)[:, :, None]
        keypoints, descriptors = sift.detect_and_compute(plane)
        if not keypoints:
            empty = np.zeros((0, 2), np.float32)
            return empty, np.zeros((0, 128), np.float32), empty
        info = np.array([(k.response, k.x, k.y, k.size, k.angle) for k in keypoints], np.float64)
        return sift_strongest_first(info, descriptors, self.num_features)
