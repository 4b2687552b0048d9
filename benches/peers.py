"""The Python peer pipelines every comparison uses, and the one way they are timed.

Each pipeline re-ranks one shortlist the way ilias-rerank does: the query is converted and
laid out **once per shortlist** (:meth:`Pipeline.prepare`), then every candidate is
matched and verified (:meth:`Pipeline.pair`, returning its inlier count). Candidates get
float32 copies of the same descriptors, made once up front (:func:`as_float`), since the
peers' matchers need floats. Every RANSAC is capped at our 1000 iterations (poselib's
default is 100,000) with the same 8 px threshold; one BLAS thread per worker, two workers
(both cores) per peer, as ilias-rerank uses both.

Timing (:func:`interleaved`): every pipeline runs the same number of rounds, interleaved
(ours, peer A, peer B, ..., ours, peer A, ...) so that drift in machine speed hits all
alike, and each reports the **median** round. Nothing gets a best-of.
"""

from __future__ import annotations

import os

# One BLAS thread per worker (set before numpy is imported by the caller's first import).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import numpy as np  # noqa: E402

import ilias_rerank as ir  # noqa: E402

#: Every RANSAC gets the iteration cap ilias-rerank uses by default.
MAX_ITERATIONS = 1000
THRESHOLD = 8.0
RATIO = 0.9  # our default Lowe ratio (docs/usage.md, "Settings and defaults")


@dataclass(frozen=True)
class FloatFeatures:
    """A float32 copy of one image's features, laid out for GEMM matching."""

    keypoints: np.ndarray  # (N, 2) float64
    descriptors: np.ndarray  # (N, D) float32, C order
    sqnorms: np.ndarray  # (N,) float32


def as_float(f: ir.LocalFeatures) -> FloatFeatures:
    d = np.ascontiguousarray(f.descriptors, dtype=np.float32)
    return FloatFeatures(f.keypoints.astype(np.float64), d, (d * d).sum(1))


def numpy_mnn(q: FloatFeatures, c: FloatFeatures):
    """numpy GEMM mutual nearest neighbours + Lowe ratio (our default matching)."""
    if len(q.descriptors) < 2 or len(c.descriptors) < 2:
        return None, None
    s = q.descriptors @ c.descriptors.T
    nn12 = s.argmax(1)
    nn21 = s.argmax(0)
    idx = np.arange(len(nn12))
    mutual = nn21[nn12] == idx
    d = q.sqnorms[:, None] + c.sqnorms[None] - 2 * s
    part = np.partition(d, 1, axis=1)[:, :2]
    ratio = np.sqrt(np.maximum(part[:, 0], 0)) <= RATIO * np.sqrt(np.maximum(part[:, 1], 0))
    keep = idx[mutual & ratio]
    if len(keep) < 4:
        return None, None
    return q.keypoints[keep], c.keypoints[nn12[keep]]


class Pipeline:
    """A peer: ``prepare(query)`` once per shortlist, then ``pair(prepared, candidate)``."""

    name: str
    workers = 2

    def prepare(self, q: FloatFeatures):
        return q

    def pair(self, q, c: FloatFeatures) -> int:
        raise NotImplementedError


class OpenCV(Pipeline):
    name = "OpenCV BFMatcher (cross-check) + USAC_MAGSAC"

    def __init__(self, cv2):
        self.cv2 = cv2

    def pair(self, q, c):
        cv2 = self.cv2
        m = cv2.BFMatcher(cv2.NORM_L2, crossCheck=True).match(q.descriptors, c.descriptors)
        if len(m) < 4:
            return 0
        src = q.keypoints[[x.queryIdx for x in m]]
        dst = c.keypoints[[x.trainIdx for x in m]]
        _, mask = cv2.findHomography(src, dst, cv2.USAC_MAGSAC, THRESHOLD, maxIters=MAX_ITERATIONS)
        return 0 if mask is None else int(mask.sum())


class NumpyOpenCV(Pipeline):
    name = "numpy GEMM MNN + ratio + OpenCV USAC_MAGSAC"

    def __init__(self, cv2):
        self.cv2 = cv2

    def pair(self, q, c):
        src, dst = numpy_mnn(q, c)
        if src is None:
            return 0
        _, mask = self.cv2.findHomography(
            src, dst, self.cv2.USAC_MAGSAC, THRESHOLD, maxIters=MAX_ITERATIONS
        )
        return 0 if mask is None else int(mask.sum())


class NumpyPoselib(Pipeline):
    name = "numpy GEMM MNN + ratio + poselib"

    def __init__(self, poselib):
        self.poselib = poselib

    def pair(self, q, c):
        src, dst = numpy_mnn(q, c)
        if src is None:
            return 0
        _, info = self.poselib.estimate_homography(
            src, dst, {"max_reproj_error": THRESHOLD, "max_iterations": MAX_ITERATIONS}, {}
        )
        return int(np.sum(info["inliers"]))


class NumpyPycolmap(Pipeline):
    name = "numpy GEMM MNN + ratio + pycolmap"

    def __init__(self, pycolmap):
        self.pycolmap = pycolmap

    def pair(self, q, c):
        src, dst = numpy_mnn(q, c)
        if src is None:
            return 0
        opts = self.pycolmap.RANSACOptions()
        opts.max_error = THRESHOLD
        opts.max_num_trials = MAX_ITERATIONS
        out = self.pycolmap.estimate_homography_matrix(src, dst, opts)
        if out is None:
            return 0
        return int(np.sum(out["inlier_mask"] if "inlier_mask" in out else out["inliers"]))


class Kornia(Pipeline):
    name = "kornia on the CPU (match_mnn + RANSAC)"
    workers = 1  # torch parallelises inside

    def __init__(self):
        import torch
        from kornia.feature import match_mnn
        from kornia.geometry.ransac import RANSAC

        self.torch, self.match_mnn = torch, match_mnn
        self.ransac = RANSAC("homography", inl_th=THRESHOLD, max_iter=10, seed=0)

    def prepare(self, q):
        t = self.torch
        return t.from_numpy(q.descriptors), t.from_numpy(q.keypoints)

    def pair(self, q, c):
        t = self.torch
        qd, qk = q
        _, idx = self.match_mnn(qd, t.from_numpy(c.descriptors))
        if len(idx) < 4:
            return 0
        _, mask = self.ransac(qk[idx[:, 0]], t.from_numpy(c.keypoints)[idx[:, 1]])
        return int(mask.sum())


def available_peers(include_kornia: bool = True) -> list[Pipeline]:
    """Every peer whose package is installed (``pip install '.[bench]'``)."""
    peers: list[Pipeline] = []
    try:
        import cv2

        cv2.setNumThreads(1)  # parallelism comes from the two workers, as for us
        peers += [OpenCV(cv2), NumpyOpenCV(cv2)]
    except ImportError:
        print("opencv: not installed (pip install '.[bench]'), skipped")
    for cls, module in ((NumpyPoselib, "poselib"), (NumpyPycolmap, "pycolmap")):
        try:
            peers.append(cls(__import__(module)))
        except ImportError:
            print(f"{module}: not installed (pip install '.[bench]'), skipped")
    if include_kornia:
        peers.append(Kornia())
    return peers


def run_peer(peer: Pipeline, queries, candidates, pool=None) -> list[np.ndarray]:
    """Inlier counts of every (query, candidate) pair; queries and candidates are
    :class:`FloatFeatures` (converted once, before timing)."""
    out = []
    own = pool is None
    pool = pool or ThreadPoolExecutor(peer.workers)
    try:
        for q in queries:
            prepared = peer.prepare(q)
            out.append(np.array(list(pool.map(lambda c, p=prepared: peer.pair(p, c), candidates))))
    finally:
        if own:
            pool.shutdown()
    return out


def run_ours(queries, candidates, config=None) -> list[np.ndarray]:
    return [ir.rerank(q, candidates, config=config).inliers for q in queries]


@dataclass
class Timed:
    name: str
    pairs: int
    seconds: list[float]
    inliers: list[np.ndarray]

    @property
    def median_seconds(self) -> float:
        return statistics.median(self.seconds)

    @property
    def pairs_per_s(self) -> float:
        return self.pairs / self.median_seconds


def interleaved(
    runs: Sequence[tuple[str, Callable[[], list[np.ndarray]], int]], rounds: int = 3
) -> list[Timed]:
    """Run each ``(name, fn, pairs)`` ``rounds`` times, interleaved; each keeps all its
    times (the median is reported) and the inlier counts of its first round."""
    timed = [Timed(name, pairs, [], []) for name, _, pairs in runs]
    for _ in range(rounds):
        for t, (_, fn, _) in zip(timed, runs, strict=True):
            t0 = time.perf_counter()
            inliers = fn()
            t.seconds.append(time.perf_counter() - t0)
            if not t.inliers:
                t.inliers = inliers
    return timed
