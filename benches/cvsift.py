"""OpenCV SIFT features for the benches, in the package's data contract and stored
strongest first (by descending detector response), so that the first N rows are the N
strongest and one store serves every tier of the cascade.

RootSIFT x 512 as uint8 (the kornia extractor's quantisation), frames ``(kp.size,
-kp.angle)`` (proved by ``tests/test_frames.py``), longest side shrunk to 1024 px (never
enlarged unless ``upsample``), keypoints in the original image's pixels. Cached in
``.cache/bench/cv-sift-<settings hash>/`` like ``featcache`` (the seconds of each extraction
kept with it). Until the OpenCV backend of ``extract_local`` lands, this is the bench's own.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
from featcache import _key

import ilias_rerank as ir
from ilias_rerank._io import atomic_write_npz

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".cache" / "bench"
VERSION = 1  # bump when the extraction below changes


def extract(path, n: int, max_side: int = 1024, upsample: bool = False) -> ir.LocalFeatures:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    h, w = img.shape
    scale = 1.0
    if max(h, w) > max_side:
        scale = max_side / max(h, w)
    elif upsample and 2 * max(h, w) <= max_side:
        scale = 2.0
    if scale != 1.0:
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
        img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=interp)
    kps, d = cv2.SIFT_create(nfeatures=n).detectAndCompute(img, None)
    if d is None or not kps:
        return ir.LocalFeatures(
            np.zeros((0, 2), np.float32),
            np.zeros((0, 128), np.uint8),
            np.zeros((0, 2), np.float32),
            (h, w),
        )
    order = np.argsort([-k.response for k in kps], kind="stable")[:n]
    kps = [kps[i] for i in order]
    d = d[order].astype(np.float32)
    d = np.sqrt(d / np.maximum(d.sum(1, keepdims=True), 1e-9))  # RootSIFT
    desc = np.clip(np.rint(d * 512.0), 0, 255).astype(np.uint8)
    # OpenCV's pixel centres are at integers, as ours: x_orig = (x + 0.5) / s - 0.5.
    xy = (np.array([k.pt for k in kps], np.float32) + 0.5) / scale - 0.5
    frames = np.array([(k.size / scale, -k.angle) for k in kps], np.float32)
    return ir.LocalFeatures(xy, desc, frames, (h, w))


def features(paths, n: int, **params) -> tuple[list[ir.LocalFeatures], float]:
    """(features of every path, mean extraction seconds per image), cached."""
    import cv2

    cv2.setNumThreads(1)
    text = json.dumps({"n": n, **params, "version": VERSION, "cv2": cv2.__version__})
    folder = CACHE / f"cv-sift-{hashlib.sha1(text.encode()).hexdigest()[:12]}"
    folder.mkdir(parents=True, exist_ok=True)
    out, seconds = [], []
    for p in paths:
        f = folder / f"{_key(p).hexdigest()}.npz"
        if f.exists():
            with np.load(f, allow_pickle=False) as z:
                size = tuple(int(v) for v in z["image_size"])
                out.append(ir.LocalFeatures(z["keypoints"], z["descriptors"], z["frames"], size))
                seconds.append(float(z["seconds"]))
            continue
        t0 = time.perf_counter()
        feats = extract(p, n, **params)
        dt = time.perf_counter() - t0
        atomic_write_npz(
            f,
            keypoints=feats.keypoints,
            descriptors=feats.descriptors,
            frames=feats.frames,
            image_size=np.array(feats.image_size),
            seconds=np.array(dt),
        )
        out.append(feats)
        seconds.append(dt)
    return out, float(np.mean(seconds)) if seconds else 0.0
