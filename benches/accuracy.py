"""One accuracy bench, label-blind, with the peers in the same run (issue 11).

Every row is an extractor x configuration; every set is measured for every row:

- ``roxford_rparis_pixel_subset``: each 20-image shortlist **shuffled** with 5 seeds and
  re-ranked by local features alone (no global scores: nothing but the features orders
  it); mean AP over 17 queries x 5 seeds (chance 0.37);
- ``smvs_dvd_covers``: each of the 100 E63 phone photos against all 100 references, local
  features alone (candidates in reference order, which carries no label): top-1 and mAP;
- ``homogr_evd``: 16 planar pairs, the estimated homography maps the 8 ground-truth points
  within 5 px (median) with the row's own extraction and verification settings;
- consensus (rows marked ``consensus``): the roxford shortlists **without the query's local
  features**: global order = the query's VLAD scores (VLAD-256 over RootSIFT, codebook
  learned on the subset), re-ranked by ``rerank_consensus``; its mAP next to the global
  order's.

Peers in the same run: OpenCV SIFT (1024 / 4096 / 8000 features) + RootSIFT + ratio 0.8 +
USAC_MAGSAC (8 px, 1000 iterations), ranking by inlier count. Each row reports extraction
ms per image (mean over the images it extracted; cached rows keep the time measured when
they were extracted) and re-rank pairs/s on the SMVS set (100 x 100 pairs, both cores).

Features are cached in ``.cache/bench`` (float32; uint8 rows quantise them exactly as the
extractor does). Writes ``out/accuracy.{json,md}``.

Run: ``.venv/bin/python benches/accuracy.py [--rows NAME ...] [--skip-slow]`` with both cores idle.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from featcache import features
from report import write_report

import ilias_rerank as ir
from ilias_rerank.evaluation import average_precision

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
ROX = DATA / "roxford_rparis_pixel_subset"
SMVS = DATA / "smvs_dvd_covers"
HOMOGR = DATA / "homogr_evd"
SEEDS = 5


@dataclass
class Row:
    name: str
    method: str = "sift"
    num_features: int = 1024
    dtype: str = "uint8"
    extract: dict = field(default_factory=dict)  # more make_extractor settings
    config: dict = field(default_factory=dict)
    two_tier: dict | None = None  # rerank_two_tier settings (LightGlue)
    consensus: bool = False
    slow: bool = False
    smvs_queries: int = 100  # the slow LightGlue row: its first 20 photos only

    def params(self) -> dict:
        return {"num_features": self.num_features, "descriptor_dtype": "float32", **self.extract}


ROWS = [
    Row("sift-1024 (default)", consensus=True),
    Row("sift-1024 opencv (768 px, previous default)", extract={"backend": "opencv"}),
    Row("sift-1024 opencv 1024 px", extract={"backend": "opencv", "max_side": 1024}),
    Row(
        "sift-1024 opencv 1024 px contrast 0.04 (OpenCV's)",
        extract={"backend": "opencv", "max_side": 1024, "contrast_threshold": 0.04},
    ),
    Row(
        "sift-2048 opencv 1024 px",
        num_features=2048,
        extract={"backend": "opencv", "max_side": 1024},
    ),
    Row(
        "sift-4096 opencv 1024 px",
        num_features=4096,
        extract={"backend": "opencv", "max_side": 1024},
    ),
    Row("sift-1024 kornia (previous default)", extract={"backend": "kornia"}),
    Row("sift-1024 kornia-rs", extract={"backend": "kornia-rs"}),
    Row("sift-2048 kornia-rs", num_features=2048, extract={"backend": "kornia-rs"}),
    Row("sift-4096 kornia-rs", num_features=4096, extract={"backend": "kornia-rs"}),
    Row("sift-1024 float32", dtype="float32"),
    Row("sift-1024 ratio 0.8", config={"ratio": 0.8}),
    Row("sift-1024 no ratio", config={"ratio": None}),
    Row("sift-1024 16 px", config={"inlier_threshold": 16.0}),
    Row("sift-1024 + expansion 3", config={"expansion": 3, "expansion_min_inliers": 15}),
    Row(
        "sift-4096 upsample 16 px",
        num_features=4096,
        extract={"upsample": True, "backend": "kornia"},
        config={"inlier_threshold": 16.0},
    ),
    Row("aliked-2048", "aliked", 2048, consensus=True),
    Row("aliked-2048 float32", "aliked", 2048, "float32"),
    Row(
        "aliked-2048 + expansion 3",
        "aliked",
        2048,
        config={"expansion": 3, "expansion_min_inliers": 15},
    ),
    Row(
        "aliked-2048 + LightGlue tier (top 20)",
        "aliked",
        2048,
        two_tier={"top": 20, "certain_inliers": 30},
        slow=True,
        smvs_queries=20,
    ),
    Row("disk-2048", "disk", 2048),
    Row("xfeat-2048", "xfeat", 2048),
]


#: The rows of ``--backends``: the default and the OpenCV settings it was chosen among (the
#: kornia rows are slow to extract: the previous default's numbers are the main table's).
BACKEND_ROWS = [
    "sift-1024 (default)",
    "sift-1024 opencv (768 px, previous default)",
    "sift-1024 opencv 1024 px",
    "sift-1024 opencv 1024 px contrast 0.04 (OpenCV's)",
    "sift-2048 opencv 1024 px",
    "sift-4096 opencv 1024 px",
]


def quantise(fs: list[ir.LocalFeatures], row: Row) -> list[ir.LocalFeatures]:
    if row.dtype == "float32":
        return fs
    from ilias_rerank.extractors import _class

    cls = _class(row.method, row.extract.get("backend"))
    out = []
    for f in fs:
        d = np.clip(np.rint(f.descriptors * cls.uint8_scale + cls.uint8_offset), 0, 255)
        out.append(ir.LocalFeatures(f.keypoints, d.astype(np.uint8), f.frames, f.image_size))
    return out


def ranker(row: Row):
    """``(fn(query, candidates) -> order, the LightGlue matcher or None)`` for the row."""
    if row.two_tier is None:
        return (lambda q, c: ir.rerank(q, c, config=row.config).order), None
    from ilias_rerank.matchers import rerank_two_tier

    matcher = MemoMatcher(row.method)

    def rank(q, c):
        return rerank_two_tier(q, c, matcher=matcher, config=row.config, **row.two_tier).order

    return rank, matcher


class MemoMatcher:
    """The LightGlue matcher, each pair matched once for all seeds (the shuffles only
    change which pairs are asked)."""

    def __init__(self, method: str) -> None:
        from ilias_rerank.matchers import LightGlueMatcher

        self.inner = LightGlueMatcher(method)
        self.memo: dict = {}
        self.seconds = []

    def match(self, q, c):
        key = (id(q), id(c))
        if key not in self.memo:
            t0 = time.perf_counter()
            self.memo[key] = self.inner.match(q, c)
            self.seconds.append(time.perf_counter() - t0)
        return self.memo[key]


# --- sets ------------------------------------------------------------------------------------


def roxford_items():
    short = defaultdict(list)
    with open(ROX / "gt.tsv", encoding="utf-8") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            short[row["query_id"]].append((row["image_path"], int(row["positive"])))
    return dict(sorted(short.items()))


def load_roxford(method, params):
    items = roxford_items()
    paths = [ROX / q / "query.jpg" for q in items] + [ROX / p for v in items.values() for p, _ in v]
    feats, secs = features(paths, method, **params)
    by_path = dict(zip(map(str, paths), feats, strict=True))
    out = {}
    for q, v in items.items():
        out[q] = (
            by_path[str(ROX / q / "query.jpg")],
            [by_path[str(ROX / p)] for p, _ in v],
            np.array([lab for _, lab in v]),
        )
    return out, secs


def eval_roxford(data, rank) -> float:
    aps = []
    for seed in range(SEEDS):
        rng = np.random.default_rng(seed)
        for fq, fc, lab in data.values():
            perm = rng.permutation(len(fc))
            order = rank(fq, [fc[i] for i in perm])
            aps.append(average_precision(lab[perm][order]))
    return float(np.mean(aps))


def load_smvs(method, params):
    refs = [SMVS / f"Reference/{i:03d}.jpg" for i in range(1, 101)]
    shots = [SMVS / f"E63/{i:03d}.jpg" for i in range(1, 101)]
    rf, s1 = features(refs, method, **params)
    qf, s2 = features(shots, method, **params)
    return qf, rf, (s1 + s2) / 2


def eval_smvs(qf, rf, rank) -> dict:
    top1, aps = [], []
    t0 = time.perf_counter()
    for i, q in enumerate(qf):
        order = np.asarray(rank(q, rf))
        r = int(np.nonzero(order == i)[0][0]) + 1
        top1.append(r == 1)
        aps.append(1.0 / r)
    dt = time.perf_counter() - t0
    return {
        "top1": float(np.mean(top1)),
        "map": float(np.mean(aps)),
        "pairs_per_s": len(qf) * len(rf) / dt,
    }


def homogr_pairs():
    names = sorted(p.name[: -len("_model.txt")] for p in HOMOGR.glob("*_model.txt"))
    for name in names:
        a, b = (next(HOMOGR.glob(f"{name}{side}.*[gG]")) for side in "AB")
        yield name, a, b, np.loadtxt(HOMOGR / f"{name}_pts.txt")


def _transfer(h, xy):
    p = np.c_[xy, np.ones(len(xy))] @ np.asarray(h).T
    return p[:, :2] / p[:, 2:]


def eval_homogr(method, params, row: Row, verify=None) -> int:
    good = 0
    for _, a, b, pts in homogr_pairs():
        (fa, fb), _ = features([a, b], method, **params)
        fa, fb = quantise([fa, fb], row) if verify is None else (fa, fb)
        h = verify(fa, fb) if verify else ir.verify_pair(fa, fb, config=row.config).transform
        if h is None:
            continue
        gt = pts[pts[:, 6] == 1]
        err = np.median(np.linalg.norm(_transfer(h, gt[:, :2]) - gt[:, 3:5], axis=1))
        good += bool(err <= 5.0)
    return good


#: rerank_consensus settings: two pseudo-queries, weighted fusion with the global score
#: (min-max normalised per shortlist). Lexicographic fusion let clusters of negatives that
#: verify among themselves jump ahead (measured: 0.44 vs 0.53 with ALIKED).
CONSENSUS = {"pseudo_queries": 2, "config": {"fusion": "weighted", "fusion_weight": 0.5}}


def eval_consensus(data_sift, data_row) -> dict:
    """Query features withheld: the global order is the query's VLAD-256 (over RootSIFT)
    scores; consensus re-ranks it with the row's features."""
    from ilias_rerank.global_features import Vlad

    everything = [f for fq, fc, _ in data_sift.values() for f in (fq, *fc)]
    vlad = Vlad(256).fit(everything)
    glob_aps, cons_aps = [], []
    for q in data_sift:
        fq, fc, lab = data_sift[q]
        g = vlad.encode(fc) @ vlad.encode([fq])[0]
        glob_aps.append(average_precision(lab[np.argsort(-g, kind="stable")]))
        _, rc, _ = data_row[q]
        g = ((g - g.min()) / (np.ptp(g) + 1e-9)).astype(np.float32)
        r = ir.rerank_consensus(rc, g, **CONSENSUS)
        cons_aps.append(average_precision(lab[r.order]))
    return {"global": float(np.mean(glob_aps)), "consensus": float(np.mean(cons_aps))}


# --- OpenCV peer -----------------------------------------------------------------------------


def opencv_features(paths, n):
    import cv2

    sift = cv2.SIFT_create(nfeatures=n)
    out, secs = [], []
    for p in paths:
        img = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        scale = 1024 / max(img.shape) if max(img.shape) > 1024 and n < 8000 else 1.0
        if scale != 1.0:
            img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        t0 = time.perf_counter()
        kp, d = sift.detectAndCompute(img, None)
        secs.append(time.perf_counter() - t0)
        if d is None:
            d = np.zeros((0, 128), np.float32)
        d = np.sqrt(d / np.maximum(d.sum(1, keepdims=True), 1e-9))  # RootSIFT
        xy = np.array([k.pt for k in kp], np.float64).reshape(-1, 2) / scale
        out.append((xy, d.astype(np.float32)))
    return out, float(np.mean(secs))


def opencv_pair(q, c) -> tuple[int, np.ndarray | None]:
    import cv2

    if len(q[1]) < 2 or len(c[1]) < 2:
        return 0, None
    knn = cv2.BFMatcher(cv2.NORM_L2).knnMatch(q[1], c[1], k=2)
    good = [m for m, *rest in knn if rest and m.distance <= 0.8 * rest[0].distance]
    if len(good) < 4:
        return 0, None
    src = q[0][[m.queryIdx for m in good]]
    dst = c[0][[m.trainIdx for m in good]]
    h, mask = cv2.findHomography(src, dst, cv2.USAC_MAGSAC, 8.0, maxIters=1000)
    return (0, None) if mask is None else (int(mask.sum()), h)


def opencv_rank(q, cands):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        inl = np.array(list(pool.map(lambda c: opencv_pair(q, c)[0], cands)))
    return np.argsort(-inl, kind="stable")


def opencv_row(n: int) -> dict:
    import cv2

    cv2.setNumThreads(1)
    items = roxford_items()
    qpaths = [ROX / q / "query.jpg" for q in items]
    cpaths = [[ROX / p for p, _ in v] for v in items.values()]
    qf, s1 = opencv_features(qpaths, n)
    cf = [opencv_features(ps, n)[0] for ps in cpaths]
    data = {
        q: (qf[k], cf[k], np.array([lab for _, lab in v])) for k, (q, v) in enumerate(items.items())
    }
    rox = eval_roxford(data, opencv_rank)
    refs, s2 = opencv_features([SMVS / f"Reference/{i:03d}.jpg" for i in range(1, 101)], n)
    shots, _ = opencv_features([SMVS / f"E63/{i:03d}.jpg" for i in range(1, 101)], n)
    smvs = eval_smvs(shots, refs, opencv_rank)
    good = 0
    for _, a, b, pts in homogr_pairs():
        (fa, fb), _ = opencv_features([a, b], n)
        _, h = opencv_pair(fa, fb)
        if h is not None:
            gt = pts[pts[:, 6] == 1]
            good += bool(
                np.median(np.linalg.norm(_transfer(h, gt[:, :2]) - gt[:, 3:5], axis=1)) <= 5
            )
    return {
        "name": f"OpenCV SIFT-{n} + RootSIFT + ratio 0.8 + USAC_MAGSAC",
        "roxford_map": rox,
        "smvs": smvs,
        "homogr_within_5px": good,
        "extract_ms": 1e3 * (s1 + s2) / 2,
    }


# --- cascade rows (issue 16) ------------------------------------------------------------------


@dataclass
class CascadeRow:
    """A ``RerankConfig`` over one store of OpenCV SIFT features, strongest first
    (``benches/cvsift.py``): ``store`` features per image; the cascade reads prefixes."""

    name: str
    config: dict = field(default_factory=dict)
    store: int = 4096
    upsample: bool = False


def _cascade(first: int, k: int, rich: int = 0, **more) -> dict:
    return {
        "cascade_features": first,
        "cascade_candidates": k,
        "cascade_rich_features": rich,
        **more,
    }


CASCADE_ROWS = [
    CascadeRow("one pass, first 512", _cascade(512, 0)),
    CascadeRow("one pass, first 1024", _cascade(1024, 0)),
    CascadeRow("one pass, first 2048", _cascade(2048, 0)),
    CascadeRow("one pass, all 4096", {}),
    CascadeRow("one pass, all 4096, 16 px", {"inlier_threshold": 16.0}),
    CascadeRow("cascade 1024 -> 4096, 2 a query", _cascade(1024, 2)),
    CascadeRow("cascade 1024 -> 4096, 5 a query", _cascade(1024, 5)),
    CascadeRow("cascade 1024 -> 4096, 10 a query", _cascade(1024, 10)),
    CascadeRow("cascade 512 -> 4096, 5 a query", _cascade(512, 5)),
    CascadeRow("cascade 1024 -> 4096, 5 a query, 16 px", _cascade(1024, 5, inlier_threshold=16.0)),
    CascadeRow(
        "cascade 1024 -> 4096, 10 a query, 16 px", _cascade(1024, 10, inlier_threshold=16.0)
    ),
    CascadeRow(
        "cascade 1024 -> 4096, 5 a query, certain 30",
        _cascade(1024, 5, 0, **{"cascade_certain_inliers": 30}),
    ),
]


class Timed:
    """``rerank(...).order`` with ``config``, timing every call (candidates / second)."""

    def __init__(self, config: dict) -> None:
        self.config = ir.RerankConfig(**config)
        self.seconds = 0.0
        self.candidates = 0
        self.refined = 0

    def result(self, q, cands) -> ir.RerankResult:
        t0 = time.perf_counter()
        r = ir.rerank(q, cands, config=self.config)
        self.seconds += time.perf_counter() - t0
        self.candidates += len(cands)
        self.refined += len(r.refined)
        return r

    def __call__(self, q, cands):
        return self.result(q, cands).order

    def rate(self) -> float:
        return self.candidates / max(self.seconds, 1e-12)


def _prefix(f: ir.LocalFeatures, n: int) -> ir.LocalFeatures:
    return ir.LocalFeatures(f.keypoints[:n], f.descriptors[:n], f.frames[:n], f.image_size)


def cascade_roxford(store: int = 4096, upsample: bool = False) -> dict:
    """The rOxf/rPar shortlists with OpenCV SIFT features, strongest first."""
    import cvsift

    items = roxford_items()
    qpaths = [ROX / q / "query.jpg" for q in items]
    cpaths = [ROX / p for v in items.values() for p, _ in v]
    feats, _ = cvsift.features(qpaths + cpaths, store, upsample=upsample)
    by_path = dict(zip(map(str, qpaths + cpaths), feats, strict=True))
    return {
        q: (
            by_path[str(ROX / q / "query.jpg")],
            [by_path[str(ROX / p)] for p, _ in v],
            np.array([lab for _, lab in v]),
        )
        for q, v in items.items()
    }


def interleaved_rates(rows: list[CascadeRow], rounds: int = 3) -> dict:
    """Candidates/s of each row on the rOxf/rPar shortlists (one shuffle), rows
    interleaved round by round, median of the rounds: the rate comparison of one run."""
    rox = cascade_roxford()
    rng = np.random.default_rng(0)
    lists = [(fq, [fc[i] for i in rng.permutation(len(fc))]) for fq, fc, _ in rox.values()]
    rates: dict[str, list[float]] = {r.name: [] for r in rows}
    for _ in range(rounds):
        for r in rows:
            timed = Timed(r.config)
            for fq, fc in lists:
                timed(fq, fc)
            rates[r.name].append(timed.rate())
    return {k: float(np.median(v)) for k, v in rates.items()}


def cascade_consensus() -> list[dict]:
    """``rerank_consensus`` on the rOxf/rPar shortlists, query features withheld, global
    order = the query's VLAD-256 scores over the same features (as ``eval_consensus``)."""
    from ilias_rerank.global_features import Vlad

    out = []
    rox4096 = cascade_roxford()
    for n in (1024, 4096):
        rox = {
            q: (_prefix(fq, n), [_prefix(f, n) for f in fc], lab)
            for q, (fq, fc, lab) in rox4096.items()
        }
        vlad = Vlad(256).fit([f for fq, fc, _ in rox.values() for f in (fq, *fc)])
        glob = {q: vlad.encode(fc) @ vlad.encode([fq])[0] for q, (fq, fc, _) in rox.items()}
        aps = [average_precision(rox[q][2][np.argsort(-g, kind="stable")]) for q, g in glob.items()]
        row = {"features": n, "global": float(np.mean(aps))}
        settings = {
            "bench default (2 pseudo-queries)": CONSENSUS,
            "5 pseudo-queries, min_inliers 8": {
                "pseudo_queries": 5,
                "config": {"fusion": "weighted", "fusion_weight": 0.5, "min_inliers": 8},
            },
        }
        for name, kw in settings.items():
            aps = []
            for q, (_fq, fc, lab) in rox.items():
                g = glob[q]
                g = ((g - g.min()) / (np.ptp(g) + 1e-9)).astype(np.float32)
                aps.append(average_precision(lab[ir.rerank_consensus(fc, g, **kw).order]))
            row[name] = float(np.mean(aps))
        print(json.dumps(row), flush=True)
        out.append(row)
    return out


def cascade_row(row: CascadeRow) -> dict:
    import cvsift

    rox = cascade_roxford(row.store, row.upsample)
    feats = [f for fq, fc, _ in rox.values() for f in (fq, *fc)]
    secs = cvsift.features([ROX / q / "query.jpg" for q in rox], row.store, upsample=row.upsample)[
        1
    ]
    timed = Timed(row.config)
    aps, pos_refined, pos_verified, pos_total = [], 0, 0, 0
    for seed in range(SEEDS):
        rng = np.random.default_rng(seed)
        for fq, fc, lab in rox.values():
            perm = rng.permutation(len(fc))
            r = timed.result(fq, [fc[i] for i in perm])
            y = lab[perm]
            aps.append(average_precision(y[r.order]))
            pos_total += int(y.sum())
            pos_refined += int(y[r.refined].sum())
            pos_verified += int(y[r.inliers >= timed.config.min_inliers].sum())
    out = {"name": row.name, "config": row.config, "roxford_map": float(np.mean(aps))}
    out["roxford_candidates_per_s"] = timed.rate()
    out["roxford_refined_share"] = timed.refined / max(timed.candidates, 1)
    out["roxford_positives_refined"] = pos_refined / pos_total
    out["roxford_positives_verified"] = pos_verified / pos_total
    refs, _ = cvsift.features(
        [SMVS / f"Reference/{i:03d}.jpg" for i in range(1, 101)], row.store, upsample=row.upsample
    )
    shots, _ = cvsift.features(
        [SMVS / f"E63/{i:03d}.jpg" for i in range(1, 101)], row.store, upsample=row.upsample
    )
    timed = Timed(row.config)
    out["smvs"] = eval_smvs(shots, refs, timed)
    out["smvs"]["candidates_per_s"] = timed.rate()
    out["smvs"]["refined_share"] = timed.refined / max(timed.candidates, 1)
    # homogr: one pair, no shortlist: verify_pair with the features the row's last pass
    # uses (the prefix for a one-pass prefix row, every feature otherwise).
    cfg = row.config
    last = cfg.get("cascade_features", 0) if cfg.get("cascade_candidates", 0) == 0 else 0
    last = cfg.get("cascade_rich_features", 0) or last
    plain = {k: v for k, v in cfg.items() if not k.startswith("cascade_")}
    good = 0
    for _, a, b, pts in homogr_pairs():
        (fa, fb), _ = cvsift.features([a, b], row.store, upsample=row.upsample)
        if last:
            fa, fb = _prefix(fa, last), _prefix(fb, last)
        h = ir.verify_pair(fa, fb, config=plain).transform
        if h is not None:
            gt = pts[pts[:, 6] == 1]
            err = np.median(np.linalg.norm(_transfer(h, gt[:, :2]) - gt[:, 3:5], axis=1))
            good += bool(err <= 5.0)
    out["homogr_within_5px"] = good
    out["extract_ms"] = 1e3 * secs
    n = [len(f.keypoints) for f in feats]
    # Stored per image: keypoints (8 B) + frames (8 B) + descriptors (128 B) a feature.
    out["store_bytes_per_image"] = 144 * float(np.mean(n))
    print(json.dumps(out), flush=True)
    return out


def rate_lines(rates: dict, tail: str) -> list[str]:
    """The interleaved rate table of the cascade rows (``tail`` ends its title)."""
    return [
        "rOxf/rPar candidates/s, rows interleaved, median of 3 rounds (one shuffle, 340 "
        f"candidates a round){tail}",
        "",
        "| configuration | candidates/s |",
        "| --- | --- |",
        *(f"| {k} | {v:.0f} |" for k, v in rates.items()),
    ]


def render_cascade(summary: dict) -> list[str]:
    lines = [
        "| configuration (OpenCV SIFT, strongest first) | rOxf/rPar mAP (5 shuffles) "
        "| rOxf cand/s | rOxf share re-verified | rOxf positives re-verified / verified "
        "| SMVS top-1 | SMVS mAP | SMVS cand/s | homogr <= 5 px |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in summary["cascade"]:
        s = r["smvs"]
        lines.append(
            f"| {r['name']} | {r['roxford_map']:.3f} | {r['roxford_candidates_per_s']:.0f} "
            f"| {r['roxford_refined_share']:.2f} | {r['roxford_positives_refined']:.2f} / "
            f"{r['roxford_positives_verified']:.2f} | {s['top1']:.2f} | {s['map']:.3f} "
            f"| {s['candidates_per_s']:.0f} | {r['homogr_within_5px']}/16 |"
        )
    for p in summary.get("peers", []):
        s = p["smvs"]
        lines.append(
            f"| peer: {p['name']} | {p['roxford_map']:.3f} | | | | {s['top1']:.2f} "
            f"| {s['map']:.3f} | {s['pairs_per_s']:.0f} | {p['homogr_within_5px']}/16 |"
        )
    lines += [
        "",
        *rate_lines(summary["rates"], ":"),
        "",
        "Consensus, query features withheld (global order = VLAD-256 over the same features):",
        "",
        "| features | global order mAP | bench default (2 pseudo-queries) "
        "| 5 pseudo-queries, min_inliers 8 |",
        "| --- | --- | --- | --- |",
        *(
            f"| OpenCV SIFT first {c['features']} | {c['global']:.3f} "
            f"| {c['bench default (2 pseudo-queries)']:.3f} "
            f"| {c['5 pseudo-queries, min_inliers 8']:.3f} |"
            for c in summary["consensus"]
        ),
    ]
    return lines


# --- quantised matching rows (issue 22) -------------------------------------------------------

#: Feature counts of the codes table: prefixes (or cap rules) of one OpenCV SIFT store of
#: 8,192 features an image, strongest first (``benches/cvsift.py``).
CODES_FEATURES = (1024, 2048, 4096, 8192)
CODES_STORE = 8192
#: The quantised configurations: (name, words read per query feature, RerankConfig).
CODES_CONFIGS = [
    ("codes, 1 word", 1, {"codes_hamming": 24}),
    ("codes, 5 words", 5, {"codes_hamming": 24}),
    ("codes, 8 words", 8, {"codes_hamming": 24}),
]
#: Cap rules: which ``n`` of the 8,192 strongest an image keeps.
CAP_RULES = ("strongest", "largest scale", "spread")
#: SMVS photos used by the exact rows at >= 4,096 features (the O(N^2) rows; the full 100
#: photos elsewhere).
SMVS_EXACT_SLOW = 25


def cap(f: ir.LocalFeatures, n: int, rule: str) -> ir.LocalFeatures:
    """The ``n`` features ``rule`` keeps, in strongest-first order: ``strongest`` (the
    extractor's rule), ``largest scale`` (COLMAP's), ``spread`` (a grid round-robin, an
    ANMS-like rule: cells of the image in turn give their next strongest feature)."""
    if len(f.keypoints) <= n or rule == "strongest":
        return _prefix(f, n)
    if rule == "largest scale":
        keep = np.sort(np.argsort(-f.frames[:, 0], kind="stable")[:n])
    elif rule == "spread":
        h, w = f.image_size
        side = np.sqrt(h * w / n)  # about one cell a feature kept
        cell = (f.keypoints[:, 1] // side) * (w // side + 1) + f.keypoints[:, 0] // side
        _, inverse = np.unique(cell, return_inverse=True)
        rank = np.zeros(len(cell), np.int64)
        seen: dict[int, int] = {}
        for i, c in enumerate(inverse.tolist()):  # strongest first: the rank within its cell
            rank[i] = seen.get(c, 0)
            seen[c] = rank[i] + 1
        keep = np.sort(np.lexsort((np.arange(len(cell)), rank))[:n])
    else:
        raise ValueError(rule)
    return ir.LocalFeatures(f.keypoints[keep], f.descriptors[keep], f.frames[keep], f.image_size)


def codes_sets() -> dict:
    """The three sets' features (OpenCV SIFT, 8,192 strongest a image, cached)."""
    import cvsift

    rox = cascade_roxford(CODES_STORE)
    refs, _ = cvsift.features([SMVS / f"Reference/{i:03d}.jpg" for i in range(1, 101)], CODES_STORE)
    shots, _ = cvsift.features([SMVS / f"E63/{i:03d}.jpg" for i in range(1, 101)], CODES_STORE)
    hom = [(*cvsift.features([a, b], CODES_STORE)[0], pts) for _, a, b, pts in homogr_pairs()]
    return {"roxford": rox, "smvs": (shots, refs), "homogr": hom}


def _set_features(sets: dict, name: str) -> list[ir.LocalFeatures]:
    if name == "roxford":
        return [f for fq, fc, _ in sets["roxford"].values() for f in (fq, *fc)]
    if name == "smvs":
        return [*sets["smvs"][0], *sets["smvs"][1]]
    return [f for a, b, _ in sets["homogr"] for f in (a, b)]


def codes_vocabularies(sets: dict) -> dict:
    """Per measured set, a vocabulary trained on the two other shared sets (4,096 strongest
    features an image, 150,000 descriptors sampled, seed 0), cached."""
    from ilias_rerank.codes import Vocabulary

    out = {}
    names = ("roxford", "smvs", "homogr")
    for held in names:
        others = [s for s in names if s != held]
        path = CACHE_VOCAB / f"vocabulary-{'+'.join(others)}-v1.npz"
        if path.is_file():
            out[held] = Vocabulary.load(path)
            continue
        x = np.concatenate(
            [_prefix(f, 4096).descriptors for s in others for f in _set_features(sets, s)]
        )
        x = x[np.random.default_rng(0).permutation(len(x))[:150000]]
        voc = Vocabulary.train(
            x, json.dumps({"sets": others, "descriptors": len(x)}), iterations=15
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        voc.save(path)
        out[held] = voc
    return out


CACHE_VOCAB = REPO / ".cache" / "bench" / "vocabularies"


class Coder:
    """Codes of each image under one vocabulary, encoded once at 8 words (a prefix of
    words and of features is what a smaller setting would have encoded)."""

    def __init__(self, voc) -> None:
        self.voc, self.memo = voc, {}

    def __call__(self, f: ir.LocalFeatures, n: int, words: int):
        from ilias_rerank.codes import QuantisedFeatures

        key = id(f)
        if key not in self.memo:
            self.memo[key] = (f, *self.voc.encode(f.descriptors, 8))
        f0, w, s = self.memo[key]
        return QuantisedFeatures(
            f0.keypoints[:n], w[:n, :words], s[:n], self.voc.id, f0.frames[:n], f0.image_size
        )


def _codes_bytes(q) -> int:
    from ilias_rerank.codes import record

    return len(record.encode(q))


def codes_row(sets, make, config: dict, smvs_queries: int = 100) -> dict:
    """One row: ``make(features, set name) -> what rerank takes`` on the three sets."""
    timed = Timed(config)
    rox = {
        q: (make(fq, "roxford"), [make(f, "roxford") for f in fc], lab)
        for q, (fq, fc, lab) in sets["roxford"].items()
    }
    out = {"roxford_map": eval_roxford(rox, timed), "roxford_candidates_per_s": timed.rate()}
    shots, refs = sets["smvs"]
    timed = Timed(config)
    out["smvs"] = eval_smvs(
        [make(f, "smvs") for f in shots[:smvs_queries]], [make(f, "smvs") for f in refs], timed
    )
    out["smvs"]["queries"] = smvs_queries
    out["smvs"]["candidates_per_s"] = timed.rate()
    good = 0
    plain = {k: v for k, v in config.items() if not k.startswith("cascade_")}
    for a, b, pts in sets["homogr"]:
        h = ir.verify_pair(make(a, "homogr"), make(b, "homogr"), config=plain).transform
        if h is not None:
            gt = pts[pts[:, 6] == 1]
            good += bool(
                np.median(np.linalg.norm(_transfer(h, gt[:, :2]) - gt[:, 3:5], axis=1)) <= 5
            )
    out["homogr_within_5px"] = good
    return out


def codes_table(rules: bool = True) -> dict:
    """Exact MNN vs quantised at each feature count (the same features), the cap rules,
    and the shipped vocabulary, on the three sets."""
    sets = codes_sets()
    vocs = codes_vocabularies(sets)
    coders = {k: Coder(v) for k, v in vocs.items()}
    rows = []
    for n in CODES_FEATURES:
        slow = SMVS_EXACT_SLOW if n >= 4096 else 100
        exact = codes_row(sets, lambda f, s, n=n: _prefix(f, n), {}, slow)
        per = 144  # keypoints (8 B), frames (8 B), uint8 RootSIFT (128 B)
        sizes = [min(len(f.keypoints), n) * per for f in _set_features(sets, "roxford")]
        rows.append(
            {
                "name": f"exact MNN, {n}",
                "features": n,
                "vocabulary": "none",
                "bytes_per_image": float(np.mean(sizes)),
                **exact,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
        for name, words, cfg in CODES_CONFIGS:
            r = codes_row(sets, lambda f, s, n=n, k=words: coders[s](f, n, k), cfg)
            sizes = [
                _codes_bytes(coders["roxford"](f, n, words))
                for f in _set_features(sets, "roxford")[:60]
            ]
            rows.append(
                {
                    "name": f"{name}, {n}",
                    "features": n,
                    "words": words,
                    "config": cfg,
                    "vocabulary": "the two other shared sets (leave-one-set-out)",
                    "bytes_per_image": float(np.mean(sizes)),
                    **r,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    from ilias_rerank.codes import default_vocabulary

    vocs["shipped"] = default_vocabulary()
    coders["shipped"] = Coder(vocs["shipped"])
    best_name, best_words, best_cfg = CODES_CONFIGS[-2]
    for n in CODES_FEATURES:
        r = codes_row(sets, lambda f, s, n=n, k=best_words: coders["shipped"](f, n, k), best_cfg)
        rows.append(
            {
                "name": f"{best_name}, {n}, shipped vocabulary",
                "features": n,
                "words": best_words,
                "config": best_cfg,
                "vocabulary": f"shipped ({vocs['shipped'].name})",
                **r,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    caps = []
    if rules:
        for n in CODES_FEATURES[:-1]:
            for rule in CAP_RULES:
                slow = SMVS_EXACT_SLOW if n >= 4096 else 100
                r = codes_row(sets, lambda f, s, n=n, rule=rule: cap(f, n, rule), {}, slow)
                caps.append({"rule": rule, "features": n, "matching": "exact MNN", **r})
                print(json.dumps(caps[-1]), flush=True)
    return {"rows": rows, "caps": caps, "vocabularies": {k: v.name for k, v in vocs.items()}}


#: The weighted rows (``--codes-weights``): Hamming-weighted scores (``codes_sigma``), a
#: wider threshold and more hypotheses, at 2,048-8,192 features, 5 words.
CODES_WEIGHTED = [
    ("codes, 5 words, 24 bits (issue 22's first)", 4096, {"codes_hamming": 24}),
    ("codes, 5 words, 24 bits, sigma 16", 4096, {"codes_hamming": 24, "codes_sigma": 16.0}),
    ("codes, 5 words, 28 bits, sigma 16", 4096, {"codes_hamming": 28, "codes_sigma": 16.0}),
    (
        "codes, 5 words, 28 bits, sigma 16, 1,024 hypotheses",
        4096,
        {"codes_hamming": 28, "codes_sigma": 16.0, "max_hypotheses": 1024},
    ),
    (
        "codes, 5 words, 28 bits, sigma 16, 1,024 hypotheses, expansion 3",
        4096,
        {
            "codes_hamming": 28,
            "codes_sigma": 16.0,
            "max_hypotheses": 1024,
            "expansion": 3,
            "expansion_min_inliers": 15,
        },
    ),
    ("codes, 5 words, 28 bits, sigma 16", 2048, {"codes_hamming": 28, "codes_sigma": 16.0}),
    ("codes, 5 words, 28 bits, sigma 16", 8192, {"codes_hamming": 28, "codes_sigma": 16.0}),
    (
        "codes, 5 words, 28 bits, sigma 16, 1,024 hypotheses",
        8192,
        {"codes_hamming": 28, "codes_sigma": 16.0, "max_hypotheses": 1024},
    ),
]
#: The best quantised configuration of those rows (rOxf/rPar; SMVS and homogr unchanged).
CODES_BEST = {"codes_hamming": 28, "codes_sigma": 16.0, "max_hypotheses": 1024}


def codes_weighted() -> dict:
    """Exact 1,024 (the default, the rate peer), then each weighted row on the three sets
    with the leave-one-set-out vocabularies, and the best with the shipped one."""
    from ilias_rerank.codes import default_vocabulary

    sets = codes_sets()
    coders = {k: Coder(v) for k, v in codes_vocabularies(sets).items()}
    shipped = Coder(default_vocabulary())
    rows = []
    exact = codes_row(sets, lambda f, s: _prefix(f, 1024), {})
    rows.append({"name": "exact MNN (the default)", "features": 1024, "config": {}, **exact})
    rows[-1]["vocabulary"] = "none"
    print(json.dumps(rows[-1]), flush=True)
    plan = [(name, n, cfg, coders, "the two other shared sets") for name, n, cfg in CODES_WEIGHTED]
    plan.append(
        (
            "codes, 5 words, 28 bits, sigma 16, 1,024 hypotheses",
            4096,
            CODES_BEST,
            {k: shipped for k in coders},
            f"shipped ({default_vocabulary().name})",
        )
    )
    for name, n, cfg, by_set, voc in plan:
        r = codes_row(sets, lambda f, s, n=n, c=by_set: c[s](f, n, 5), cfg)
        rows.append({"name": name, "features": n, "config": cfg, "vocabulary": voc, **r})
        print(json.dumps(rows[-1]), flush=True)
    return {"rows": rows}


def render_codes_weighted(summary: dict) -> list[str]:
    lines = _codes_head(["matching", "features", "vocabulary"], [])
    for r in summary["rows"]:
        lines.append(f"| {r['name']} | {r['features']} | {r['vocabulary']} " + _codes_cells(r))
    return lines


def codes_report(path: Path, table: dict, render) -> int:
    """Write one codes table's report (the machine and date with its rows)."""
    summary = {
        "machine": f"{platform.machine()}, kernels {ir.cpu_features()}",
        "date": time.strftime("%Y-%m-%d"),
        **table,
    }
    write_report(path, summary, render(summary))
    return 0


def _codes_head(lead: list[str], tail: list[str]) -> list[str]:
    """The header of a codes table: ``lead`` columns, the measured ones, ``tail``."""
    cols = [
        *lead,
        "rOxf/rPar mAP (5 shuffles)",
        "rOxf cand/s",
        "SMVS top-1",
        "SMVS mAP",
        "SMVS cand/s",
        "homogr <= 5 px",
        *tail,
    ]
    return ["| " + " | ".join(cols) + " |", "|" + " --- |" * len(cols)]


def _codes_cells(r: dict) -> str:
    """A codes table row's cells from rOxf/rPar's mAP to homogr (one format for both)."""
    s = r["smvs"]
    note = f" ({s['queries']} photos)" if s.get("queries", 100) != 100 else ""
    return (
        f"| {r['roxford_map']:.3f} | {r['roxford_candidates_per_s']:.0f} | {s['top1']:.2f}{note} "
        f"| {s['map']:.3f} | {s['candidates_per_s']:.0f} | {r['homogr_within_5px']}/16 |"
    )


def codes_tiers(n: int = 4096, words: int = 5, base: dict | None = None) -> dict:
    """The other tiers on quantised features at ``n`` with ``base`` (default
    :data:`CODES_BEST`; rOxf/rPar, leave-one-set-out vocabulary): expansion, the cascade
    (first pass on the 1,024 strongest), and consensus with the query's features withheld
    (global order = VLAD-256 over the exact features, as ``cascade_consensus``)."""
    from ilias_rerank.global_features import Vlad

    base = dict(CODES_BEST if base is None else base)
    sets = codes_sets()
    coder = Coder(codes_vocabularies(sets)["roxford"])
    rox = {
        q: (coder(fq, n, words), [coder(f, n, words) for f in fc], lab)
        for q, (fq, fc, lab) in sets["roxford"].items()
    }
    out = {"features": n, "words": words, "config": base}
    for name, cfg in (
        ("one pass", {}),
        ("expansion 3", {"expansion": 3, "expansion_min_inliers": 15}),
        ("cascade 1024 -> 4096, 5 a query", _cascade(1024, 5)),
    ):
        timed = Timed({**base, **cfg})
        out[name] = {"roxford_map": eval_roxford(rox, timed), "candidates_per_s": timed.rate()}
        print(json.dumps({name: out[name]}), flush=True)
    exact = {
        q: (_prefix(fq, n), [_prefix(f, n) for f in fc], lab)
        for q, (fq, fc, lab) in sets["roxford"].items()
    }
    vlad = Vlad(256).fit([f for fq, fc, _ in exact.values() for f in (fq, *fc)])
    glob, cons = [], []
    for q, (fq, fc, lab) in exact.items():
        g = vlad.encode(fc) @ vlad.encode([fq])[0]
        glob.append(average_precision(lab[np.argsort(-g, kind="stable")]))
        g = ((g - g.min()) / (np.ptp(g) + 1e-9)).astype(np.float32)
        consensus = {**CONSENSUS, "config": {**base, **CONSENSUS["config"]}}
        cons.append(average_precision(lab[ir.rerank_consensus(rox[q][1], g, **consensus).order]))
    out["consensus"] = {"global": float(np.mean(glob)), "consensus": float(np.mean(cons))}
    print(json.dumps({"consensus": out["consensus"]}), flush=True)
    return out


def render_codes(summary: dict) -> list[str]:
    lines = _codes_head(["matching, features", "vocabulary"], ["bytes/image"])
    for r in summary["rows"]:
        size = f"{r['bytes_per_image'] / 1000:.1f} KB" if "bytes_per_image" in r else ""
        lines.append(f"| {r['name']} | {r['vocabulary']} " + _codes_cells(r) + f" {size} |")
    if summary.get("caps"):
        lines += [
            "",
            "Cap rules (exact MNN, the n features each rule keeps of the 8,192 strongest):",
            "",
            "| rule | features | rOxf/rPar mAP | SMVS top-1 | SMVS mAP | homogr <= 5 px |",
            "| --- | --- | --- | --- | --- | --- |",
            *(
                f"| {c['rule']} | {c['features']} | {c['roxford_map']:.3f} "
                f"| {c['smvs']['top1']:.2f}"
                + (f" ({c['smvs']['queries']} photos)" if c["smvs"]["queries"] != 100 else "")
                + f" | {c['smvs']['map']:.3f} | {c['homogr_within_5px']}/16 |"
                for c in summary["caps"]
            ),
        ]
    return lines


# --- main -------------------------------------------------------------------------------------


def run_row(row: Row, data_sift) -> dict:
    params = row.params()
    rank, matcher = ranker(row)
    rox, secs_r = load_roxford(row.method, params)
    rox = {
        q: (*quantise([fq, *fc], row)[:1], quantise(fc, row), lab)
        for q, (fq, fc, lab) in rox.items()
    }
    out = {"name": row.name, "roxford_map": eval_roxford(rox, rank)}
    qf, rf, secs_s = load_smvs(row.method, params)
    out["smvs"] = eval_smvs(quantise(qf[: row.smvs_queries], row), quantise(rf, row), rank)
    out["smvs"]["queries"] = min(row.smvs_queries, len(qf))
    out["homogr_within_5px"] = eval_homogr(row.method, params, row)
    out["extract_ms"] = 1e3 * (secs_r + secs_s) / 2
    if row.consensus:
        out["consensus"] = eval_consensus(data_sift, rox)
    if matcher is not None and matcher.seconds:
        out["lightglue_s_per_pair"] = float(np.mean(matcher.seconds))
        out["lightglue_pairs"] = len(matcher.seconds)
    print(json.dumps(out), flush=True)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", nargs="*", help="row names to run (default: all)")
    ap.add_argument("--skip-slow", action="store_true", help="skip the LightGlue row")
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument(
        "--backends",
        action="store_true",
        help="the SIFT backend rows only (issue 14) -> out/accuracy_backends.{json,md}",
    )
    ap.add_argument("--out", type=Path, default=REPO / "out" / "accuracy")
    ap.add_argument(
        "--keep",
        action="store_true",
        help="keep the rows and peers of an earlier run in --out that this run does not redo",
    )
    ap.add_argument(
        "--cascade",
        nargs="*",
        metavar="NAME",
        help="run the cascade rows (issue 16; all when no name is given) -> out/cascade.*",
    )
    ap.add_argument(
        "--cascade-rates",
        action="store_true",
        help="only the interleaved rate table of the cascade rows (their accuracy does not "
        "depend on the kernel) -> out/cascade_rates.* (compare kernels: ILIAS_RERANK_NO_AMX=1 "
        "with --out out/vnni)",
    )
    ap.add_argument(
        "--codes",
        action="store_true",
        help="exact MNN vs quantised matching at 1,024-8,192 features, cap rules, shipped "
        "vocabulary (issue 22) -> out/codes.*",
    )
    ap.add_argument("--no-cap-rules", action="store_true", help="with --codes: skip the cap rules")
    ap.add_argument(
        "--codes-tiers",
        action="store_true",
        help="expansion, cascade and consensus on quantised features (CODES_BEST) -> "
        "out/codes_tiers.json",
    )
    ap.add_argument(
        "--codes-weights",
        action="store_true",
        help="Hamming-weighted scores, wider thresholds, more hypotheses on the three sets "
        "(issue 22) -> out/codes_weights.*",
    )
    args = ap.parse_args(argv)
    if args.codes_weights:
        return codes_report(
            args.out.with_name("codes_weights"), codes_weighted(), render_codes_weighted
        )
    if args.codes_tiers:
        summary = {"date": time.strftime("%Y-%m-%d"), **codes_tiers()}
        cfg = ", ".join(f"{k} {v:g}" for k, v in summary["config"].items())
        lines = [
            f"| rOxf/rPar, quantised 4,096 features, 5 words, {cfg} | mAP | candidates/s |",
            "| --- | --- | --- |",
            *(
                f"| {k} | {summary[k]['roxford_map']:.3f} | {summary[k]['candidates_per_s']:.0f} |"
                for k in ("one pass", "expansion 3", "cascade 1024 -> 4096, 5 a query")
            ),
            f"| consensus, query withheld (global VLAD order {summary['consensus']['global']:.3f})"
            f" | {summary['consensus']['consensus']:.3f} | |",
        ]
        write_report(args.out.with_name("codes_tiers"), summary, lines)
        return 0
    if args.codes:
        table = codes_table(rules=not args.no_cap_rules)
        return codes_report(args.out.with_name("codes"), table, render_codes)
    if args.cascade_rates:
        rates = interleaved_rates(CASCADE_ROWS)
        name = "cascade_rates" if args.out == REPO / "out" / "accuracy" else args.out.name
        lines = rate_lines(
            rates, f", both cores, kernels {ir.cpu_features()}, {time.strftime('%Y-%m-%d')}:"
        )
        summary = {"kernels": ir.cpu_features(), "rates": rates}
        write_report(args.out.with_name(name), summary, lines)
        return 0
    if args.backends:
        args.rows = args.rows or BACKEND_ROWS
        if args.out == REPO / "out" / "accuracy":
            args.out = REPO / "out" / "accuracy_backends"
    if args.cascade is not None:
        chosen = [r for r in CASCADE_ROWS if not args.cascade or r.name in args.cascade]
        summary = {
            "machine": f"{platform.machine()}, kernels {ir.cpu_features()}",
            "date": time.strftime("%Y-%m-%d"),
            "cascade": [cascade_row(r) for r in chosen],
            "rates": interleaved_rates(chosen),
            "consensus": cascade_consensus(),
            "peers": [] if args.no_peers else [opencv_row(n) for n in (1024, 4096)],
        }
        write_report(args.out.with_name("cascade"), summary, render_cascade(summary))
        return 0
    rows = [
        r
        for r in ROWS
        if (not args.rows or r.name in args.rows) and not (args.skip_slow and r.slow)
    ]
    sift_params = ROWS[0].params()
    data_sift, _ = load_roxford("sift", sift_params)
    data_sift = {
        q: (*quantise([fq], ROWS[0]), quantise(fc, ROWS[0]), lab)
        for q, (fq, fc, lab) in data_sift.items()
    }
    results = [run_row(r, data_sift) for r in rows]
    peer_rows = [] if args.no_peers else [opencv_row(n) for n in (1024, 4096, 8000)]
    earlier = args.out.with_name(args.out.name + ".json")
    if args.keep and earlier.is_file():
        old = json.loads(earlier.read_text())
        done = {r["name"] for r in results}
        order = [r.name for r in ROWS]
        known = {r.name for r in ROWS}  # rows since renamed or removed are dropped
        results = sorted(
            [*(r for r in old["rows"] if r["name"] not in done and r["name"] in known), *results],
            key=lambda r: order.index(r["name"]) if r["name"] in order else len(order),
        )
        peer_rows = peer_rows or old.get("peers", [])
    for p in peer_rows:
        print(json.dumps(p), flush=True)
    summary = {
        "machine": f"{platform.machine()}, kernels {ir.cpu_features()}",
        "date": time.strftime("%Y-%m-%d"),
        "protocols": {
            "roxford": f"shortlists shuffled with {SEEDS} seeds, local features only, mean AP",
            "smvs": "100 E63 photos x 100 references, local features only",
            "homogr": "16 pairs, median error of the 8 GT points <= 5 px",
        },
        "rows": results,
        "peers": peer_rows,
    }
    write_report(args.out, summary, render(summary))
    return 0


def render(summary: dict) -> list[str]:
    results, peer_rows = summary["rows"], summary["peers"]
    lines = [
        "| extractor x configuration | rOxf/rPar mAP (5 shuffles) | SMVS top-1 | SMVS mAP "
        "| homogr <= 5 px | extract ms/img | re-rank pairs/s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in [*results, *peer_rows]:
        s = r["smvs"]
        note = f" ({s['queries']} photos)" if s.get("queries", 100) != 100 else ""
        lines.append(
            f"| {r['name']} | {r['roxford_map']:.3f} | {s['top1']:.2f}{note} | {s['map']:.3f} "
            f"| {r['homogr_within_5px']}/16 | {r['extract_ms']:.0f} | {s['pairs_per_s']:.0f} |"
        )
    cons = [r for r in results if "consensus" in r]
    if cons:
        lines += [
            "",
            "Consensus, query features withheld (global order = the query's VLAD-256 scores):",
            "",
            "| features | global order mAP | rerank_consensus mAP |",
            "| --- | --- | --- |",
            *(
                f"| {r['name']} | {r['consensus']['global']:.3f} "
                f"| {r['consensus']['consensus']:.3f} |"
                for r in cons
            ),
        ]
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
