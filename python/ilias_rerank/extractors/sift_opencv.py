"""SIFT by OpenCV (``cv2.SIFT_create``) with RootSIFT descriptors and ``(scale,
orientation)`` frames: the fast CPU backend (``opencv-python-headless``, in the ``extract``
extra).

OpenCV detects on a doubled first octave, keeps the ``num_features`` keypoints of highest
response (``retainBest``) and returns them in no particular order; here they are sorted by
descending response (ties by position), so that the first ``n`` rows of an image's
features are its ``n`` strongest and one store can serve a cheaper pass over a prefix.
Frames follow the data contract: ``(kp.size, -kp.angle)`` (``tests/test_frames.py`` proves
the sign on a rotated photo). Descriptors are RootSIFT (L1-normalised, square root), uint8 by
default as ``round(d * 512)`` like the kornia backend's. OpenCV releases the GIL while it
detects: ``extract_local(workers=N)`` runs images in N threads, each with its own
detector, OpenCV's own threads shared among them for the call (which scales better than
OpenCV's own threads alone on this detector).
"""

from __future__ import annotations

import threading

import numpy as np

from ..errors import ConfigError
from .base import Extractor

__all__ = ["DEFAULT_CONTRAST", "OpenCvSift", "root_sift", "sift_strongest_first"]

#: Contrast threshold of the detector (OpenCV's default is 0.04). 0.02 was measured better
#: or equal on every shared set at 1,024 features (rOxf/rPar 0.516 vs 0.511, SMVS top-1
#: 1.00 both, homogr 11/16 both; docs/decisions.md): low-contrast candidates only enter
#: when an image has fewer than ``num_features`` strong ones.
DEFAULT_CONTRAST = 0.02


_local = threading.local()  # one detector per thread: the pool runs images in threads


def _detector(num_features: int, contrast_threshold: float):
    """This thread's detector for these settings (OpenCV's thread count is left as the
    caller set it; the pool sets it for the duration of a batch)."""
    import cv2

    cache = _local.__dict__.setdefault("detectors", {})
    key = (num_features, contrast_threshold)
    if key not in cache:
        cache[key] = cv2.SIFT_create(nfeatures=num_features, contrastThreshold=contrast_threshold)
    return cache[key]


def sift_strongest_first(info: np.ndarray, descriptors, budget: int):
    """``(keypoints, RootSIFT descriptors, (size, -angle) frames)`` of SIFT keypoints given as
    rows ``(response, x, y, size, angle)`` (OpenCV's convention), strongest first (ties by
    y then x, so the order is a function of the image alone) and cut to ``budget`` (ties at
    the last place can leave a detector a few over)."""
    order = np.lexsort((info[:, 1], info[:, 2], -info[:, 0]))[:budget]
    info, descriptors = info[order], np.asarray(descriptors)[order]
    frames = np.c_[info[:, 3], -info[:, 4]].astype(np.float32)
    return info[:, 1:3].astype(np.float32), root_sift(descriptors), frames


def root_sift(descriptors: np.ndarray) -> np.ndarray:
    """RootSIFT of SIFT descriptors: L1-normalise, then the element-wise square root."""
    d = np.asarray(descriptors, dtype=np.float32)
    return np.sqrt(d / np.maximum(d.sum(axis=1, keepdims=True), np.float32(1e-12)))


class OpenCvSift(Extractor):
    method = "sift"
    backend = "opencv"
    #: 768 px: measured better or equal on every shared set than 1,024 px (rOxf/rPar 0.520
    #: vs 0.516, SMVS top-1 1.00 both, homogr 11/16 both; docs/decisions.md) at about 0.6x
    #: the time (the doubled first octave is 4x the pixels).
    default_max_side = 768
    manifest_name = "opencv-sift-rootsift"
    image_mode = "L"
    devices = ("cpu",)
    requires = ("cv2", "PIL")
    pixel_dtype = "uint8"
    frame_width = 2

    def __init__(self, *args, contrast_threshold: float = DEFAULT_CONTRAST, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(contrast_threshold, (int, float)) or not (
            0.0 < float(contrast_threshold) <= 1.0
        ):
            raise ConfigError(
                f"contrast_threshold: expected a number in (0, 1], got {contrast_threshold!r}"
            )
        self.contrast_threshold = float(contrast_threshold)

    def extra_params(self) -> dict:
        return {"backend": self.backend, "contrast_threshold": self.contrast_threshold}

    def _detect(self, image: np.ndarray):
        sift = _detector(self.num_features, self.contrast_threshold)
        keypoints, descriptors = sift.detectAndCompute(np.ascontiguousarray(image), None)
        if descriptors is None or not keypoints:
            empty = np.zeros((0, 2), np.float32)
            return empty, np.zeros((0, 128), np.float32), empty
        info = np.array(
            [(k.response, k.pt[0], k.pt[1], k.size, k.angle) for k in keypoints], np.float64
        )
        return sift_strongest_first(info, descriptors, self.num_features)
