"""The GIL is released during re-ranking (another Python thread makes progress), and many
threads calling ``rerank`` at once get exactly the serial results (on shortlists with
verified candidates, in both verification paths)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import ilias_rerank as ir


def scene(seed, n=1500, d=128):
    g = np.random.default_rng(seed)
    desc = g.normal(size=(n, d)).astype(np.float32)
    desc /= np.linalg.norm(desc, axis=1, keepdims=True)
    kp = g.uniform(0, 1000, (n, 2))
    return ir.LocalFeatures(kp, desc, np.c_[g.uniform(2, 9, n), g.uniform(-180, 180, n)])


def test_gil_is_released_while_reranking():
    q = scene(0)
    cands = [scene(s) for s in range(1, 40)]
    ticks = 0
    stop = threading.Event()

    def count():
        nonlocal ticks
        while not stop.is_set():
            ticks += 1

    t = threading.Thread(target=count)
    t.start()
    before = ticks
    ir.rerank(q, cands, config=ir.RerankConfig(num_threads=1))
    during = ticks - before
    stop.set()
    t.join()
    # With the GIL held for the whole call, the counter thread would barely run.
    assert during > 1000


def shifted(f: ir.LocalFeatures, dx: float) -> ir.LocalFeatures:
    """``f`` moved by ``dx`` pixels: a candidate that verifies against ``f``."""
    return ir.LocalFeatures(f.keypoints + np.float32(dx), f.descriptors, f.frames)


def test_concurrent_calls_equal_serial_calls():
    q = scene(0, n=400)
    # Each shortlist holds two true matches (verified, with transforms) among unrelated
    # scenes, in the RANSAC path and the frame path alike.
    shortlists = [
        [scene(100 * i + j, n=400) for j in range(4)] + [shifted(q, 3 + i), shifted(q, -5 - i)]
        for i in range(8)
    ]
    for config in ({}, {"use_frames": False}):
        serial = [ir.rerank(q, s, config=config) for s in shortlists]
        assert all(r.inliers[4] >= 300 and r.inliers[5] >= 300 for r in serial)
        with ThreadPoolExecutor(max_workers=8) as pool:
            parallel = list(pool.map(lambda s, c=config: ir.rerank(q, s, config=c), shortlists))
        for a, b in zip(serial, parallel, strict=True):
            np.testing.assert_array_equal(a.order, b.order)
            np.testing.assert_array_equal(a.scores, b.scores)
            np.testing.assert_array_equal(a.inliers, b.inliers)
            np.testing.assert_array_equal(a.transforms, b.transforms)
