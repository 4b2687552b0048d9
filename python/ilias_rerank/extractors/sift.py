"""SIFT with RootSIFT descriptors: kornia's ``SIFTFeatureScaleSpace`` with the pyramid
descriptor backend, full local affine frames, no weights: the ``kornia`` backend of
``sift``, and the one that runs on a GPU (several images of one shape per forward).

Descriptors are uint8 by default (RootSIFT x 512, rounded; components never exceed ~0.37,
so nothing clips): 4x smaller, matched exactly on the integer (VNNI) kernels; the
accuracy bench measures them against float32 (README, "Accuracy"). kornia pads its
output to ``num_features`` with all-zero frames and descriptors when an image has fewer
keypoints: those rows are dropped (they would all match each other).
"""

from __future__ import annotations

import functools

import numpy as np

from .base import Extractor

__all__ = ["Sift"]


@functools.lru_cache(maxsize=8)
def _detector(num_features: int, device: str):
    import kornia.feature as KF

    return KF.SIFTFeatureScaleSpace(
        num_features=num_features,
        upright=False,
        rootsift=True,
        device=device,
        descriptor_backend="pyramid",
    )


class Sift(Extractor):
    method = "sift"
    manifest_name = "kornia-sift-rootsift"
    frame_width = 6  # local affine frames
    image_mode = "L"

    def _detect(self, image: np.ndarray):
        return self._detect_many([image])[0]

    def _detect_many(self, images: list[np.ndarray]):
        import torch

        tensor = torch.from_numpy(np.stack(images))[:, None].to(self.device)
        with torch.inference_mode():
            lafs, _responses, descs = _detector(self.num_features, self.device)(tensor)
        out = []
        for laf, desc in zip(
            lafs.to("cpu", torch.float32).numpy(),
            descs.to("cpu", torch.float32).numpy(),
            strict=True,
        ):
            shape_det = laf[:, 0, 0] * laf[:, 1, 1] - laf[:, 0, 1] * laf[:, 1, 0]
            filled = (np.abs(shape_det) > 0) & (np.abs(desc).sum(axis=1) > 0)
            out.append((laf[filled][:, :, 2], desc[filled], laf[filled]))
        return out
