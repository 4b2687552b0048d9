"""Features of the shared images for the benchmarks, extracted once per machine and kept in
``.cache/bench/<method>-<settings hash>/`` (one ``.npz`` per image, written atomically, with
the seconds its extraction took, so that a cached row still reports its extraction speed).
The key holds the image's path and a digest of its bytes (not its modification time: a fresh
copy of the same data keeps its cache) and every extraction setting."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

import ilias_rerank as ir
from ilias_rerank._io import atomic_write_npz

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".cache" / "bench"


def _folder(method: str, params: dict) -> Path:
    """Keyed by the extractor's manifest entry: its backend and every setting that changes
    the features, the defaults it resolved included (a changed default is a new key)."""
    from ilias_rerank.extractors import make_extractor

    manifest = make_extractor(method, **params).params()
    text = json.dumps({"method": method, **manifest, "version": ir.__version__}, sort_keys=True)
    return CACHE / f"{method}-{hashlib.sha1(text.encode()).hexdigest()[:12]}"


def _key(path):
    with open(path, "rb") as fh:
        digest = hashlib.file_digest(fh, "sha1").hexdigest()
    return hashlib.sha1(f"{os.path.abspath(path)}|{digest}".encode())  # a hash object


def features(paths, method: str = "sift", **params) -> tuple[list[ir.LocalFeatures], float]:
    """(features of every path, mean extraction seconds per image)."""
    folder = _folder(method, params)
    folder.mkdir(parents=True, exist_ok=True)
    extractor = None
    out, seconds = [], []
    for p in paths:
        key = _key(p)
        f = folder / f"{key.hexdigest()}.npz"
        if f.exists():
            with np.load(f, allow_pickle=False) as z:
                frames = z["frames"] if z["frames"].size else None
                size = tuple(int(v) for v in z["image_size"])
                out.append(ir.LocalFeatures(z["keypoints"], z["descriptors"], frames, size))
                seconds.append(float(z["seconds"]))
            continue
        if extractor is None:
            from ilias_rerank.extractors import make_extractor

            extractor = make_extractor(method, **params)
        t0 = time.perf_counter()
        feats = extractor(p)
        dt = time.perf_counter() - t0
        frames = np.zeros(0, np.float32) if feats.frames is None else feats.frames
        atomic_write_npz(
            f,
            keypoints=feats.keypoints,
            descriptors=feats.descriptors,
            frames=frames,
            image_size=np.array(feats.image_size),
            seconds=np.array(dt),
        )
        out.append(feats)
        seconds.append(dt)
    return out, float(np.mean(seconds)) if seconds else 0.0
