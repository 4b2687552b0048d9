"""Is the core's SIFT (``backend="rust"``) as good a detector and descriptor as OpenCV's?
(issue 23 item 4) Both backends of the package at the same settings (SIFT-1024, 768 px,
contrast 0.02, doubled first octave), decode included, on the 16 planar ``homogr`` pairs
of ``../shared/data/homogr_evd`` whose homographies are known (``<name>_model.txt`` maps B
to A):

- **repeatability**: keypoints of A and of B inside the part both images see; a keypoint is
  repeated when a keypoint of the other image, carried by the homography, lies within 3
  working pixels (3 px at 768 px, scaled to the original); repeated / the smaller count;
- **matching score**: mutual nearest neighbours of the descriptors (L2 on RootSIFT) whose
  homography error is within the same 3 px, over the smaller count (the Mikolajczyk &
  Schmid measures, one-to-one by mutual NN);
- **same image, both detectors**: on each A image, the share of our keypoints that have an
  OpenCV twin (within 0.5 working px, scale within 10 %, angle within 10 degrees), the L2
  distance between twin descriptors (unit RootSIFT: 0 is identical, 1.41 orthogonal) and
  how often OpenCV's twin is our descriptor's nearest among all OpenCV's.

No labels are read (the homographies are geometry). Writes ``out/sift_parity.{json,md}``:
``.venv/bin/python benches/sift_parity.py``
"""

from __future__ import annotations

import platform
import sys
import time
from pathlib import Path

import numpy as np
from report import write_report

import ilias_rerank as ir

REPO = Path(__file__).resolve().parents[1]
HOMOGR = REPO.parent / "shared" / "data" / "homogr_evd"
BACKENDS = ("opencv", "rust")
SIDE = 768
EPS = 3.0  # working pixels


def pairs():
    names = sorted(p.name[: -len("_model.txt")] for p in HOMOGR.glob("*_model.txt"))
    if not names:
        sys.exit(f"no homogr pairs under {HOMOGR}: this bench needs ../shared/data")
    for name in names:
        a, b = (next(HOMOGR.glob(f"{name}{side}.*[gG]")) for side in "AB")
        yield name, a, b, np.loadtxt(HOMOGR / f"{name}_model.txt")


def transfer(h: np.ndarray, xy: np.ndarray) -> np.ndarray:
    p = np.c_[xy, np.ones(len(xy))] @ np.asarray(h).T
    return p[:, :2] / p[:, 2:]


def inside(xy: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    h, w = size
    return (xy[:, 0] >= 0) & (xy[:, 0] <= w - 1) & (xy[:, 1] >= 0) & (xy[:, 1] <= h - 1)


def px_per_working(size: tuple[int, int]) -> float:
    return max(1.0, max(size) / SIDE)


def unit(desc: np.ndarray) -> np.ndarray:
    d = desc.astype(np.float32)
    return d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)


def pair_scores(fa: ir.LocalFeatures, fb: ir.LocalFeatures, h_ba: np.ndarray) -> dict:
    """Repeatability and matching score of one pair (H maps B to A)."""
    h_ab = np.linalg.inv(h_ba)
    eps = EPS * px_per_working(fa.image_size)
    ka, kb = fa.keypoints.astype(np.float64), fb.keypoints.astype(np.float64)
    a_seen = inside(transfer(h_ab, ka), fb.image_size) if len(ka) else np.zeros(0, bool)
    b_in_a = transfer(h_ba, kb) if len(kb) else np.zeros((0, 2))
    b_seen = inside(b_in_a, fa.image_size) if len(kb) else np.zeros(0, bool)
    na, nb = int(a_seen.sum()), int(b_seen.sum())
    n = min(na, nb)
    if n == 0:
        return {"common": 0, "repeatability": 0.0, "matching_score": 0.0, "correct": 0}
    pa, pb = ka[a_seen], b_in_a[b_seen]
    dist = np.linalg.norm(pa[:, None, :] - pb[None, :, :], axis=2)
    repeated = min(int((dist.min(1) <= eps).sum()), int((dist.min(0) <= eps).sum()))
    da, db = unit(fa.descriptors[a_seen]), unit(fb.descriptors[b_seen])
    sim = da @ db.T
    ab, ba = sim.argmax(1), sim.argmax(0)
    mutual = np.nonzero(ba[ab] == np.arange(len(ab)))[0]
    correct = int((dist[mutual, ab[mutual]] <= eps).sum())
    return {
        "common": n,
        "repeatability": repeated / n,
        "matching_score": correct / n,
        "correct": correct,
    }


def twins(ours: ir.LocalFeatures, cv: ir.LocalFeatures) -> dict:
    """Our keypoints against OpenCV's on the same image."""
    if not len(ours) or not len(cv):
        return {"twins": 0.0, "twin_l2": float("nan"), "twin_is_nn": 0.0}
    s = px_per_working(ours.image_size)
    dist = np.linalg.norm(ours.keypoints[:, None, :] - cv.keypoints[None, :, :], axis=2) / s
    ratio = ours.frames[:, None, 0] / cv.frames[None, :, 0]
    dangle = np.abs((ours.frames[:, None, 1] - cv.frames[None, :, 1] + 180.0) % 360.0 - 180.0)
    # Several keypoints share a place (one per orientation): the twin is the best agreeing.
    fits = (dist <= 0.5) & (np.abs(ratio - 1) <= 0.1) & (dangle <= 10.0)
    j = np.where(fits, dangle + dist, np.inf).argmin(1)
    ok = fits[np.arange(len(j)), j]
    du, dc = unit(ours.descriptors), unit(cv.descriptors)
    l2 = np.linalg.norm(du[ok] - dc[j[ok]], axis=1)
    nn = (du[ok] @ dc.T).argmax(1) == j[ok]
    return {
        "twins": float(ok.mean()),
        "twin_l2": float(np.median(l2)) if len(l2) else float("nan"),
        "twin_is_nn": float(nn.mean()) if len(nn) else 0.0,
    }


def main(argv=None) -> int:
    from ilias_rerank.extractors import make_extractor

    extractors = {b: make_extractor("sift", 1024, SIDE, backend=b) for b in BACKENDS}
    per_pair, same_image, seconds = [], [], {b: 0.0 for b in BACKENDS}
    for name, a, b, h in pairs():
        feats = {}
        for backend, ex in extractors.items():
            t0 = time.perf_counter()
            feats[backend] = (ex(a), ex(b))
            seconds[backend] += time.perf_counter() - t0
        row = {"pair": name}
        for backend, (fa, fb) in feats.items():
            row[backend] = pair_scores(fa, fb, h)
        per_pair.append(row)
        same_image.append({"image": a.name, **twins(feats["rust"][0], feats["opencv"][0])})
        print(row, flush=True)

    def mean(backend: str, key: str) -> float:
        return float(np.mean([r[backend][key] for r in per_pair]))

    summary = {
        "machine": f"{platform.machine()}, kernels {ir.cpu_features()}",
        "date": time.strftime("%Y-%m-%d"),
        "settings": f"SIFT-1024, {SIDE} px, contrast 0.02, eps {EPS} working px",
        "backends": {
            b: {
                "repeatability": mean(b, "repeatability"),
                "matching_score": mean(b, "matching_score"),
                "correct_matches": mean(b, "correct"),
                "ms_per_image": 1e3 * seconds[b] / (2 * len(per_pair)),
            }
            for b in BACKENDS
        },
        "same_image": {
            "twins": float(np.mean([s["twins"] for s in same_image])),
            "twin_l2": float(np.nanmedian([s["twin_l2"] for s in same_image])),
            "twin_is_nn": float(np.mean([s["twin_is_nn"] for s in same_image])),
        },
        "pairs": per_pair,
        "images": same_image,
    }
    lines = [
        f"{len(per_pair)} homogr pairs, {summary['settings']}; {summary['machine']}; "
        f"{summary['date']} (machine shared with other work).",
        "",
        "| backend | repeatability | matching score | correct matches / pair | ms/image |",
        "| --- | --- | --- | --- | --- |",
    ]
    for b, s in summary["backends"].items():
        lines.append(
            f"| {b} | {s['repeatability']:.3f} | {s['matching_score']:.3f} "
            f"| {s['correct_matches']:.0f} | {s['ms_per_image']:.0f} |"
        )
    t = summary["same_image"]
    lines += [
        "",
        f"Same image (the 16 A images): {t['twins']:.1%} of our keypoints have an OpenCV twin; "
        f"twin descriptors differ by L2 {t['twin_l2']:.3f} (median, unit RootSIFT) and the "
        f"twin is our descriptor's nearest OpenCV descriptor for {t['twin_is_nn']:.1%}.",
        "",
        "| pair | opencv rep. | rust rep. | opencv m.s. | rust m.s. |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in per_pair:
        cv, ours = r["opencv"], r["rust"]
        lines.append(
            f"| {r['pair']} | {cv['repeatability']:.3f} | {ours['repeatability']:.3f} "
            f"| {cv['matching_score']:.3f} | {ours['matching_score']:.3f} |"
        )
    write_report(REPO / "out" / "sift_parity", summary, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
