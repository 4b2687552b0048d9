"""Side-by-side peer benchmark: the same SIFT features re-ranked by ilias-rerank and by
the usual Python pipelines, in one process, interleaved, with quality next to speed.

Inputs: ``../shared/data/smvs_dvd_covers`` (each E63 phone photo against all 100
references) when present, else synthetic phone shots of photos shipped in scikit-image
(the quickstart's data). Features: kornia RootSIFT, 1024 per image, extracted once and
cached in ``.cache/bench-features``.

Peers (each ranks a query's shortlist by its inlier count, both cores available):
- ``opencv``: BFMatcher (L2, cross-check) + findHomography(USAC_MAGSAC, 8 px);
- ``numpy+opencv``: numpy GEMM mutual NN + ratio 0.9, then findHomography(USAC_MAGSAC);
- ``kornia``: match_mnn + kornia's RANSAC (homography) on the CPU (a subsample of pairs).

Writes JSON and a Markdown table (``--out``, default ``out/peer_benchmark``).

Run: ``.venv/bin/python benches/peer_benchmark.py [--queries 20]`` with both cores idle.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import platform
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

import ilias_rerank as ir

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".cache" / "bench-features"


def cached(paths_or_arrays, keys):
    CACHE.mkdir(parents=True, exist_ok=True)
    out = []
    for item, key in zip(paths_or_arrays, keys, strict=True):
        f = CACHE / (hashlib.sha1(key.encode()).hexdigest() + ".pkl")
        if f.exists():
            out.append(pickle.loads(f.read_bytes()))
            continue
        feats = ir.extract_local([item], num_features=1024)[0]
        tmp = f.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(pickle.dumps(feats))
        os.replace(tmp, f)
        out.append(feats)
    return out


def load_inputs(n_queries: int):
    root = REPO.parent / "shared" / "data" / "smvs_dvd_covers"
    if root.is_dir():
        refs = [root / f"Reference/{i:03d}.jpg" for i in range(1, 101)]
        queries = [root / f"E63/{i:03d}.jpg" for i in range(1, n_queries + 1)]
        rf = cached(refs, [str(p) for p in refs])
        qf = cached(queries, [str(p) for p in queries])
        return "smvs_dvd_covers", qf, rf, list(range(n_queries))
    from ilias_rerank import demo

    rng = np.random.default_rng(0)
    photos = demo.load_photos()
    names = list(photos)
    shots = [demo.phone_shot(photos[names[i % len(names)]], rng) for i in range(n_queries)]
    rf = cached([photos[n] for n in names], [f"skimage:{n}" for n in names])
    qf = cached(shots, [f"shot:{i}" for i in range(n_queries)])
    return "skimage synthetic views", qf, rf, [i % len(names) for i in range(n_queries)]


def opencv_pair(q, c, cv2):
    matcher = cv2.BFMatcher(cv2.NORM_L2, crossCheck=True)
    m = matcher.match(q.descriptors, c.descriptors)
    if len(m) < 4:
        return 0
    src = q.keypoints[[x.queryIdx for x in m]]
    dst = c.keypoints[[x.trainIdx for x in m]]
    _, mask = cv2.findHomography(src, dst, cv2.USAC_MAGSAC, 8.0)
    return 0 if mask is None else int(mask.sum())


def numpy_opencv_pair(q, c, cv2):
    s = q.descriptors @ c.descriptors.T
    if s.size == 0:
        return 0
    nn12 = s.argmax(1)
    nn21 = s.argmax(0)
    idx = np.arange(len(nn12))
    mutual = nn21[nn12] == idx
    d = 2 - 2 * s
    part = np.partition(d, 1, axis=1)[:, :2] if d.shape[1] > 1 else np.c_[d, d + 1]
    ratio = np.sqrt(np.maximum(part[:, 0], 0)) <= 0.9 * np.sqrt(np.maximum(part[:, 1], 0))
    keep = idx[mutual & ratio]
    if len(keep) < 4:
        return 0
    _, mask = cv2.findHomography(q.keypoints[keep], c.keypoints[nn12[keep]], cv2.USAC_MAGSAC, 8.0)
    return 0 if mask is None else int(mask.sum())


def kornia_pair(q, c, ransac, torch, match_mnn):
    _, idx = match_mnn(torch.from_numpy(q.descriptors), torch.from_numpy(c.descriptors))
    if len(idx) < 4:
        return 0
    src = torch.from_numpy(q.keypoints)[idx[:, 0]]
    dst = torch.from_numpy(c.keypoints)[idx[:, 1]]
    _, mask = ransac(src, dst)
    return int(mask.sum())


def run_peer(name, pair_fn, queries, refs, truth, workers=2, max_pairs=None):
    pairs, correct, t0 = 0, 0, time.perf_counter()
    evaluated = 0
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for q, target in zip(queries, truth, strict=True):
            cands = refs if max_pairs is None else refs[:max_pairs]
            scores = list(pool.map(lambda c, q=q: pair_fn(q, c), cands))
            pairs += len(cands)
            if max_pairs is None:
                evaluated += 1
                correct += int(int(np.argmax(scores)) == target)
    dt = time.perf_counter() - t0
    return {
        "name": name,
        "pairs": pairs,
        "seconds": dt,
        "pairs_per_s": pairs / dt,
        "top1": correct / evaluated if evaluated else None,
    }


def run_ours(queries, refs, truth):
    t0 = time.perf_counter()
    correct = sum(
        int(ir.rerank(q, refs).order[0] == t) for q, t in zip(queries, truth, strict=True)
    )
    dt = time.perf_counter() - t0
    pairs = len(queries) * len(refs)
    return {
        "name": "ilias-rerank",
        "pairs": pairs,
        "seconds": dt,
        "pairs_per_s": pairs / dt,
        "top1": correct / len(queries),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--queries", type=int, default=20)
    ap.add_argument(
        "--kornia-pairs", type=int, default=10, help="pairs per query for kornia (slow)"
    )
    ap.add_argument("--out", type=Path, default=REPO / "out" / "peer_benchmark")
    args = ap.parse_args(argv)

    import cv2
    import torch
    from kornia.feature import match_mnn
    from kornia.geometry.ransac import RANSAC

    cv2.setNumThreads(1)  # parallelism comes from the two worker threads, as for us
    dataset, queries, refs, truth = load_inputs(args.queries)
    print(
        f"inputs: {dataset}, {len(queries)} queries x {len(refs)} candidates, "
        f"kernels {ir.cpu_features()}"
    )
    ransac = RANSAC("homography", inl_th=8.0, max_iter=10, seed=0)

    rows = []
    # Interleave: ours, a peer, ours again... so drift in machine speed hits all alike.
    rows.append(run_ours(queries, refs, truth))
    rows.append(run_peer("opencv", lambda q, c: opencv_pair(q, c, cv2), queries, refs, truth))
    rows.append(run_ours(queries, refs, truth))
    rows.append(
        run_peer("numpy+opencv", lambda q, c: numpy_opencv_pair(q, c, cv2), queries, refs, truth)
    )
    rows.append(run_ours(queries, refs, truth))
    rows.append(
        run_peer(
            "kornia (cpu)",
            lambda q, c: kornia_pair(q, c, ransac, torch, match_mnn),
            queries,
            refs,
            truth,
            workers=1,
            max_pairs=args.kornia_pairs,
        )
    )
    ours = [r for r in rows if r["name"] == "ilias-rerank"]
    best_ours = max(r["pairs_per_s"] for r in ours)
    peers = [r for r in rows if r["name"] != "ilias-rerank"]
    summary = {
        "dataset": dataset,
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {ir.cpu_features()}",
        "date": time.strftime("%Y-%m-%d"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "ours": {"pairs_per_s": best_ours, "top1": ours[0]["top1"], "runs": ours},
        "peers": [{**p, "ratio_ours_over_peer": best_ours / p["pairs_per_s"]} for p in peers],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(summary, indent=2))
    lines = ["| pipeline | pairs/s | ours / peer | top-1 |", "| --- | --- | --- | --- |"]
    lines.append(f"| ilias-rerank | {best_ours:.0f} | 1.0 | {ours[0]['top1']:.2f} |")
    for p in summary["peers"]:
        top1 = "n/a (subsample)" if p["top1"] is None else f"{p['top1']:.2f}"
        lines.append(
            f"| {p['name']} | {p['pairs_per_s']:.0f} | {p['ratio_ours_over_peer']:.1f}x | {top1} |"
        )
    table = "\n".join(lines)
    args.out.with_suffix(".md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
