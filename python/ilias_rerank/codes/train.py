"""``ilias-rerank vocabulary train``: a vocabulary from the RootSIFT descriptors of a user's
feature store (single or sharded), its record naming the store, the images and the
settings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import ConfigError, ShapeError
from .vocabulary import DIM, Vocabulary

__all__ = ["train_from_store"]


def _open(path: Path):
    from ..store import SHARDS_FILE, FeatureStore, ShardedStore

    return ShardedStore(path) if (path / SHARDS_FILE).is_file() else FeatureStore(path)


def train_from_store(
    path,
    max_descriptors: int = 200_000,
    per_image: int = 4096,
    seed: int = 0,
    iterations: int = 25,
    progress: bool = True,
) -> Vocabulary:
    """Sample up to ``max_descriptors`` descriptors (the ``per_image`` strongest of each
    image, then a seeded sample) and train a vocabulary on them."""
    for name, value, low in (
        ("max_descriptors", max_descriptors, 256),
        ("per_image", per_image, 1),
        ("iterations", iterations, 1),
    ):
        if type(value) is not int or value < low:
            raise ConfigError(f"{name}: expected an int >= {low}, got {value!r}")
    path = Path(path)
    store = _open(path)
    parts, images = [], 0
    for k, image_id in enumerate(store):
        d = store[image_id].descriptors[:per_image]
        if d.ndim != 2 or d.shape[1] != DIM or d.dtype.kind not in "fu":
            raise ShapeError(
                f"{image_id}: expected ({DIM},)-dimensional RootSIFT descriptors (float32 or "
                f"uint8), got {d.shape} {d.dtype}"
            )
        parts.append(d)
        images += 1
        if progress and k % 500 == 0:
            print(f"vocabulary: read {k + 1} images", flush=True)
    if not parts:
        raise ShapeError(f"{path}: expected a store with images, got none")
    x = np.concatenate(parts)
    if len(x) > max_descriptors:
        x = x[np.sort(np.random.default_rng(seed).permutation(len(x))[:max_descriptors])]
    record = {
        "source": f"feature store {path.resolve()}",
        "images": images,
        "descriptors": len(x),
        "per_image": per_image,
        "seed": seed,
    }
    return Vocabulary.train(x, json.dumps(record, sort_keys=True), seed, iterations)
