"""HDF5 in the layouts people already have (needs ``h5py``: the ``pipeline`` extra).

- ILIAS global features: datasets ``features`` (N, D) and ``index`` (N ids):
  :func:`write_global_features` / :func:`read_global_features`.
- hloc local features: one group per image name (``/`` in a name nests groups) with
  ``keypoints`` (N, 2), ``descriptors`` (D, N) (hloc stores them transposed), optional
  ``scores`` (N,) and ``image_size`` (width, height): :func:`export_hloc` writes a
  :class:`FeatureStore` that way, :func:`import_hloc` builds a store from such a file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._extras import require
from ._io import atomic_write
from .errors import FormatError
from .features import LocalFeatures
from .store import FeatureStore, StoreWriter

__all__ = ["export_hloc", "import_hloc", "read_global_features", "write_global_features"]


def _h5py():
    return require("h5py", "HDF5 files")


def write_global_features(path: str | os.PathLike, ids: Sequence[str], features) -> Path:
    """ILIAS layout: ``features`` (N, D) float32 and ``index`` (N,) ids; atomic."""
    h5py = _h5py()
    feats = np.asarray(features, dtype=np.float32)
    if feats.ndim != 2 or len(feats) != len(ids):
        raise ValueError(f"expected (N, D) features for {len(ids)} ids, got {feats.shape}")

    def write(fh) -> None:
        with h5py.File(fh, "w") as f:
            f["features"] = feats
            f["index"] = np.array([str(i).encode() for i in ids])

    return atomic_write(path, write)


def read_global_features(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """(ids, (N, D) float32) from an ILIAS-layout file."""
    h5py = _h5py()
    try:
        with h5py.File(path, "r") as f:
            if "features" not in f or "index" not in f:
                raise FormatError(f"{path}: expected HDF5 datasets 'features' and 'index'")
            feats = np.asarray(f["features"], dtype=np.float32)
            ids = [i.decode() if isinstance(i, bytes) else str(i) for i in f["index"][:]]
    except OSError as exc:
        raise FormatError(f"{path}: not a readable HDF5 file ({exc})") from None
    if feats.ndim != 2 or len(ids) != len(feats):
        raise FormatError(f"{path}: {feats.shape} features for {len(ids)} ids")
    return ids, feats


def export_hloc(store: FeatureStore, path: str | os.PathLike) -> Path:
    """Every image of ``store`` into an hloc-layout file (float32 descriptors); atomic."""
    h5py = _h5py()
    if store.descriptor_dtype == "binary64":
        raise FormatError("hloc files hold real descriptors; this store is binary")

    def write(fh) -> None:
        with h5py.File(fh, "w") as f:
            _write_hloc(f, store)

    return atomic_write(path, write)


def _write_hloc(f, store: FeatureStore) -> None:
    from .extractors import uint8_codec

    scale, offset = uint8_codec(store.extractor)
    for image_id in store.ids:
        feats = store[image_id]
        g = f.create_group(image_id)
        g["keypoints"] = np.asarray(feats.keypoints, dtype=np.float32)
        desc = np.asarray(feats.descriptors, dtype=np.float32)
        if feats.descriptors.dtype == np.uint8:
            desc = (desc - offset) / scale  # back to the extractor's float scale
        g["descriptors"] = desc.T
        if feats.image_size is not None:
            h, w = feats.image_size
            g["image_size"] = np.array([w, h], dtype=np.int64)


def _walk(group, prefix: str = ""):
    for name, item in group.items():
        key = f"{prefix}{name}"
        if "keypoints" in item and "descriptors" in item:
            yield key, item
        elif hasattr(item, "items"):
            yield from _walk(item, key + "/")


def import_hloc(
    path: str | os.PathLike, store_path: str | os.PathLike, extractor: Mapping[str, Any]
) -> FeatureStore:
    """Build (or resume) a store from an hloc-layout file; images already in the store
    are skipped. Descriptors are kept as float32."""
    h5py = _h5py()
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise FormatError(f"{path}: not a readable HDF5 file ({exc})") from None
    with f, StoreWriter(store_path, extractor) as writer:
        for image_id, g in _walk(f):
            if image_id in writer:
                continue
            kp = np.asarray(g["keypoints"], dtype=np.float32)
            desc = np.asarray(g["descriptors"], dtype=np.float32)
            if desc.ndim != 2 or desc.shape[1] != len(kp):
                raise FormatError(
                    f"{path}:{image_id}: expected descriptors (D, {len(kp)}), got {desc.shape}"
                )
            size = None
            if "image_size" in g:
                w, h = (int(v) for v in np.asarray(g["image_size"])[:2])
                size = (h, w)
            writer.add(image_id, LocalFeatures(kp, np.ascontiguousarray(desc.T), image_size=size))
    return FeatureStore(store_path)
