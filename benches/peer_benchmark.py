"""Side-by-side peer benchmark: the same SIFT features re-ranked by ilias-rerank and by
the usual Python pipelines, in one process, interleaved, with quality next to speed.

Peers receive float32 copies of the same descriptors (their matchers need floats).

Inputs, each set reported on its own: ``../shared/data/smvs_dvd_covers`` (each E63 phone
photo against all 100 references) when present, and synthetic warps: phone shots of the
photos shipped in scikit-image (the quickstart's data) against those photos plus, when
present, the 100 SMVS references as distractors. Features: kornia RootSIFT, 1024 per
image, extracted once and cached in ``.cache/bench-features``.

Peers (each ranks a query's shortlist by its inlier count, both cores available):
- ``opencv``: BFMatcher (L2, cross-check) + findHomography(USAC_MAGSAC, 8 px);
- ``numpy+opencv``: numpy GEMM mutual NN + ratio 0.9, then findHomography(USAC_MAGSAC);
- ``numpy+poselib`` / ``numpy+pycolmap``: the same matching, then their homography
  LO-RANSAC (8 px), when installed (``pip install '.[bench]'``);
- ``kornia``: match_mnn + kornia's RANSAC (homography) on the CPU (a subsample of pairs).

Roofline, in the same run: numpy float32 GEMM and (where available) torch int8
``_int_mm`` on the same N x N x 128 shapes, next to our nearest-neighbour kernels alone
(``_core.kernel_throughput``), each on one core, in multiply-adds per second.

Fairness: every RANSAC is capped at our 1000 iterations (poselib's default is 100,000),
one BLAS thread per worker, two workers (both cores) per peer, as ilias-rerank uses both.

Quality next to speed: top-1, mAP and the median inliers on the true pair vs on the best
negative. Writes JSON, a Markdown table (``--out``, default ``out/peer_benchmark``) and a
PNG plot of throughput vs number of features (ours vs numpy + poselib, N = 256 .. 2048,
``out/peer_benchmark_features.png``; ``--no-sweep`` skips it).

Run: ``.venv/bin/python benches/peer_benchmark.py [--queries 20]`` with both cores idle.
"""

from __future__ import annotations

import os

# One BLAS thread per worker: the peers run two workers (both cores), and the roofline
# compares one core against one core. Must be set before numpy is imported.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import hashlib
import inspect
import pickle
import platform
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from report import write_report

import ilias_rerank as ir

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".cache" / "bench-features"
#: Every RANSAC gets the iteration cap ilias-rerank uses by default.
MAX_ITERATIONS = 1000


def cached(paths_or_arrays, keys, num_features: int = 1024):
    CACHE.mkdir(parents=True, exist_ok=True)
    out = []
    # The extractor's signature (with its defaults) is part of every key.
    signature = str(inspect.signature(ir.extract_local))
    for item, key in zip(paths_or_arrays, keys, strict=True):
        key = key if num_features == 1024 else f"{key}|n={num_features}"
        f = CACHE / (hashlib.sha1((key + signature).encode()).hexdigest() + ".pkl")
        if f.exists():
            out.append(pickle.loads(f.read_bytes()))
            continue
        feats = ir.extract_local([item], num_features=num_features, progress=False)[0]
        tmp = f.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(pickle.dumps(feats))
        os.replace(tmp, f)
        out.append(feats)
    return out


def load_smvs(n_queries: int, num_features: int = 1024):
    """smvs_dvd_covers: E63 phone photos against the 100 references, or None."""
    root = REPO.parent / "shared" / "data" / "smvs_dvd_covers"
    if not root.is_dir():
        return None
    refs = [root / f"Reference/{i:03d}.jpg" for i in range(1, 101)]
    queries = [root / f"E63/{i:03d}.jpg" for i in range(1, n_queries + 1)]
    rf = cached(refs, [str(p) for p in refs], num_features)
    qf = cached(queries, [str(p) for p in queries], num_features)
    return "smvs_dvd_covers", qf, rf, list(range(n_queries))


def load_synthetic(n_queries: int, num_features: int = 1024, distractors=()):
    """Synthetic warps: phone shots (homography, blur, noise, lighting) of the photos shipped
    in scikit-image, against those photos plus optional distractor features."""
    from ilias_rerank import demo

    rng = np.random.default_rng(0)
    photos = demo.load_photos()
    names = list(photos)
    shots = [demo.phone_shot(photos[names[i % len(names)]], rng) for i in range(n_queries)]
    rf = cached([photos[n] for n in names], [f"skimage:{n}" for n in names], num_features)
    qf = cached(shots, [f"shot:{i}" for i in range(n_queries)], num_features)
    name = "synthetic warps of scikit-image photos"
    if distractors:
        name += f" + {len(distractors)} SMVS references as distractors"
    truth = [i % len(names) for i in range(n_queries)]
    return name, qf, rf + list(distractors), truth


def load_inputs(n_queries: int, num_features: int = 1024):
    """The main input set: smvs_dvd_covers when present, else the synthetic warps."""
    return load_smvs(n_queries, num_features) or load_synthetic(n_queries, num_features)


def opencv_pair(q, c, cv2):
    matcher = cv2.BFMatcher(cv2.NORM_L2, crossCheck=True)
    m = matcher.match(q.descriptors.astype(np.float32), c.descriptors.astype(np.float32))
    if len(m) < 4:
        return 0
    src = q.keypoints[[x.queryIdx for x in m]]
    dst = c.keypoints[[x.trainIdx for x in m]]
    _, mask = cv2.findHomography(src, dst, cv2.USAC_MAGSAC, 8.0, maxIters=MAX_ITERATIONS)
    return 0 if mask is None else int(mask.sum())


def numpy_mnn(q, c):
    """numpy GEMM mutual nearest neighbours + Lowe ratio 0.9 (our default matching)."""
    qd = q.descriptors.astype(np.float32)
    cd = c.descriptors.astype(np.float32)
    if len(qd) < 2 or len(cd) < 2:
        return None, None
    s = qd @ cd.T
    nn12 = s.argmax(1)
    nn21 = s.argmax(0)
    idx = np.arange(len(nn12))
    mutual = nn21[nn12] == idx
    d = (qd * qd).sum(1)[:, None] + (cd * cd).sum(1)[None] - 2 * s
    part = np.partition(d, 1, axis=1)[:, :2]
    ratio = np.sqrt(np.maximum(part[:, 0], 0)) <= 0.9 * np.sqrt(np.maximum(part[:, 1], 0))
    keep = idx[mutual & ratio]
    if len(keep) < 4:
        return None, None
    return q.keypoints[keep].astype(np.float64), c.keypoints[nn12[keep]].astype(np.float64)


def numpy_opencv_pair(q, c, cv2):
    src, dst = numpy_mnn(q, c)
    if src is None:
        return 0
    _, mask = cv2.findHomography(src, dst, cv2.USAC_MAGSAC, 8.0, maxIters=MAX_ITERATIONS)
    return 0 if mask is None else int(mask.sum())


def numpy_poselib_pair(q, c, poselib):
    src, dst = numpy_mnn(q, c)
    if src is None:
        return 0
    _, info = poselib.estimate_homography(
        src, dst, {"max_reproj_error": 8.0, "max_iterations": MAX_ITERATIONS}, {}
    )
    return int(np.sum(info["inliers"]))


def numpy_pycolmap_pair(q, c, pycolmap):
    src, dst = numpy_mnn(q, c)
    if src is None:
        return 0
    opts = pycolmap.RANSACOptions()
    opts.max_error = 8.0
    opts.max_num_trials = MAX_ITERATIONS
    out = pycolmap.estimate_homography_matrix(src, dst, opts)
    return (
        0
        if out is None
        else int(np.sum(out["inlier_mask"] if "inlier_mask" in out else out["inliers"]))
    )


def kornia_pair(q, c, ransac, torch, match_mnn):
    qd = torch.from_numpy(q.descriptors.astype(np.float32))
    _, idx = match_mnn(qd, torch.from_numpy(c.descriptors.astype(np.float32)))
    if len(idx) < 4:
        return 0
    src = torch.from_numpy(q.keypoints)[idx[:, 0]]
    dst = torch.from_numpy(c.keypoints)[idx[:, 1]]
    _, mask = ransac(src, dst)
    return int(mask.sum())


def quality(all_inliers: list[np.ndarray], truth: list[int]) -> dict:
    """Top-1, mAP (one true image per query) and inliers on the true pair vs the best
    negative, from each query's per-candidate inlier counts (input order; ties keep the
    first-stage order, as every pipeline here ranks by inliers)."""
    top1, aps, true_inl, neg_inl = [], [], [], []
    for inl, t in zip(all_inliers, truth, strict=True):
        order = np.argsort(-np.asarray(inl), kind="stable")
        rank = int(np.nonzero(order == t)[0][0]) + 1
        top1.append(rank == 1)
        aps.append(1.0 / rank)
        true_inl.append(inl[t])
        neg_inl.append(np.delete(inl, t).max(initial=0))
    return {
        "top1": float(np.mean(top1)),
        "map": float(np.mean(aps)),
        "median_inliers_true": float(np.median(true_inl)),
        "median_inliers_best_negative": float(np.median(neg_inl)),
    }


def run_peer(name, pair_fn, queries, refs, truth, workers=2, max_pairs=None):
    pairs, t0 = 0, time.perf_counter()
    inliers = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for q in queries:
            cands = refs if max_pairs is None else refs[:max_pairs]
            inliers.append(np.array(list(pool.map(lambda c, q=q: pair_fn(q, c), cands))))
            pairs += len(cands)
    dt = time.perf_counter() - t0
    row = {"name": name, "pairs": pairs, "seconds": dt, "pairs_per_s": pairs / dt}
    if max_pairs is None:
        row.update(quality(inliers, truth))
    return row


def run_ours(queries, refs, truth):
    t0 = time.perf_counter()
    inliers = [ir.rerank(q, refs).inliers for q in queries]
    dt = time.perf_counter() - t0
    pairs = len(queries) * len(refs)
    return {
        "name": "ilias-rerank",
        "pairs": pairs,
        "seconds": dt,
        "pairs_per_s": pairs / dt,
        **quality(inliers, truth),
    }


def best_rate(fn, macs: float, seconds: float = 1.5) -> float:
    """Best multiply-adds/s of `fn` over repeated calls for about `seconds`."""
    fn()
    best, start = 0.0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        fn()
        best = max(best, macs / (time.perf_counter() - t0))
    return best


def roofline(n: int = 1024, dim: int = 128) -> dict:
    import torch

    from ilias_rerank import _core

    rng = np.random.default_rng(0)
    a = rng.random((n, dim), dtype=np.float32)
    b = rng.random((n, dim), dtype=np.float32)
    macs = float(n * n * dim)
    out = {"shape": [n, n, dim], "numpy_sgemm": best_rate(lambda: a @ b.T, macs)}
    ai = torch.from_numpy(rng.integers(-128, 127, (n, dim), dtype=np.int8))
    bi = torch.from_numpy(rng.integers(-128, 127, (dim, n), dtype=np.int8))
    torch.set_num_threads(1)
    try:
        out["torch_int8_mm"] = best_rate(lambda: torch._int_mm(ai, bi), macs)
    except (RuntimeError, AttributeError) as exc:  # no CPU kernel in this torch build
        out["torch_int8_mm"] = None
        out["torch_int8_mm_error"] = str(exc).splitlines()[0]
    torch.set_num_threads(1)
    out["ours_f32"] = _core.kernel_throughput(n, n, dim, uint8=False, repeats=32, threads=1)
    out["ours_u8"] = _core.kernel_throughput(n, n, dim, uint8=True, repeats=64, threads=1)
    out["ours_f32_over_numpy_sgemm"] = out["ours_f32"] / out["numpy_sgemm"]
    out["ours_u8_over_ours_f32"] = out["ours_u8"] / out["ours_f32"]
    # All cores (the 2-core target for uint8 vs float32).
    out["ours_f32_all_cores"] = _core.kernel_throughput(n, n, dim, uint8=False, repeats=64)
    out["ours_u8_all_cores"] = _core.kernel_throughput(n, n, dim, uint8=True, repeats=128)
    out["ours_u8_over_ours_f32_all_cores"] = out["ours_u8_all_cores"] / out["ours_f32_all_cores"]
    if out["torch_int8_mm"]:
        out["ours_u8_over_torch_int8"] = out["ours_u8"] / out["torch_int8_mm"]
    return out


def run_set(inputs, cv2, torch, match_mnn, ransac, kornia_pairs: int) -> dict:
    """Every pipeline on one input set, interleaved with our runs: ours, a peer, ours
    again... so that drift in machine speed hits all alike."""
    dataset, queries, refs, truth = inputs
    print(f"inputs: {dataset}, {len(queries)} queries x {len(refs)} candidates")
    peers = [
        ("opencv", lambda q, c: opencv_pair(q, c, cv2)),
        ("numpy+opencv", lambda q, c: numpy_opencv_pair(q, c, cv2)),
    ]
    for name, module, fn in (
        ("numpy+poselib", "poselib", numpy_poselib_pair),
        ("numpy+pycolmap", "pycolmap", numpy_pycolmap_pair),
    ):
        try:
            mod = __import__(module)
        except ImportError:
            print(f"{name}: not installed (pip install '.[bench]'), skipped")
            continue
        peers.append((name, lambda q, c, m=mod, f=fn: f(q, c, m)))
    ours, rows = [], []
    for name, fn in peers:
        ours.append(run_ours(queries, refs, truth))
        rows.append(run_peer(name, fn, queries, refs, truth))
        print(f"  {name}: {rows[-1]['pairs_per_s']:.0f} pairs/s")
    ours.append(run_ours(queries, refs, truth))
    kornia = lambda q, c: kornia_pair(q, c, ransac, torch, match_mnn)  # noqa: E731
    rows.append(
        run_peer("kornia (cpu)", kornia, queries, refs, truth, workers=1, max_pairs=kornia_pairs)
    )
    best = max(ours, key=lambda r: r["pairs_per_s"])
    return {
        "dataset": dataset,
        "queries": len(queries),
        "candidates": len(refs),
        "ours": best,
        "ours_runs": ours,
        "peers": [
            {**p, "ratio_ours_over_peer": best["pairs_per_s"] / p["pairs_per_s"]} for p in rows
        ],
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--queries", type=int, default=20)
    ap.add_argument(
        "--kornia-pairs", type=int, default=10, help="pairs per query for kornia (slow)"
    )
    ap.add_argument("--out", type=Path, default=REPO / "out" / "peer_benchmark")
    ap.add_argument("--no-sweep", action="store_true", help="skip the features sweep + plot")
    args = ap.parse_args(argv)

    import cv2
    import torch
    from kornia.feature import match_mnn
    from kornia.geometry.ransac import RANSAC

    cv2.setNumThreads(1)  # parallelism comes from the two worker threads, as for us
    ransac = RANSAC("homography", inl_th=8.0, max_iter=10, seed=0)
    smvs = load_smvs(args.queries)
    sets = [smvs] if smvs else []
    sets.append(load_synthetic(args.queries, distractors=smvs[2] if smvs else ()))
    results = [run_set(s, cv2, torch, match_mnn, ransac, args.kornia_pairs) for s in sets]
    roof = roofline()
    summary = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {ir.cpu_features()}",
        "date": time.strftime("%Y-%m-%d"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "sets": results,
        "roofline": roof,
    }
    lines = []
    for res in results:
        lines += [
            f"{res['dataset']}: {res['queries']} queries x {res['candidates']} candidates",
            "",
            "| pipeline | pairs/s | ours / peer | top-1 | mAP | inliers true / best negative |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for p in [res["ours"], *res["peers"]]:
            ratio = p.get("ratio_ours_over_peer", 1.0)
            if "top1" in p:
                q = (
                    f"{p['top1']:.2f} | {p['map']:.3f} | {p['median_inliers_true']:.0f} / "
                    f"{p['median_inliers_best_negative']:.0f}"
                )
            else:
                q = "n/a (subsample) | | "
            lines.append(f"| {p['name']} | {p['pairs_per_s']:.0f} | {ratio:.1f}x | {q} |")
        lines.append("")
    g = 1e9
    lines += [
        f"Roofline, {roof['shape'][0]} x {roof['shape'][1]} x {roof['shape'][2]}, one core "
        "each (G multiply-adds/s):",
        "",
        "| kernel | G MAC/s | fraction |",
        "| --- | --- | --- |",
        f"| numpy float32 GEMM | {roof['numpy_sgemm'] / g:.1f} | 1.00 |",
        f"| ours float32 NN (GEMM + fused reductions) | {roof['ours_f32'] / g:.1f} | "
        f"{roof['ours_f32_over_numpy_sgemm']:.2f} of numpy sgemm |",
        f"| ours uint8 NN (VNNI) | {roof['ours_u8'] / g:.1f} | "
        f"{roof['ours_u8_over_ours_f32']:.2f}x our float32 |",
    ]
    if roof.get("torch_int8_mm"):
        lines.append(
            f"| torch int8 `_int_mm` | {roof['torch_int8_mm'] / g:.1f} | "
            f"ours uint8 = {roof['ours_u8_over_torch_int8']:.2f} of it |"
        )
    else:
        lines.append(f"| torch int8 `_int_mm` | n/a | {roof.get('torch_int8_mm_error', '')} |")
    lines += [
        "",
        f"All cores: ours float32 {roof['ours_f32_all_cores'] / g:.1f}, uint8 "
        f"{roof['ours_u8_all_cores'] / g:.1f} G MAC/s: uint8 = "
        f"{roof['ours_u8_over_ours_f32_all_cores']:.2f}x float32.",
    ]
    if not args.no_sweep:
        # Throughput vs number of features (ours vs the fastest GEMM peer), as a PNG.
        from scaling import features_sweep, plot_features

        name, q2048, r2048, _ = load_inputs(4, num_features=2048)
        summary["by_features"] = features_sweep(q2048, r2048)
        plot_features(
            summary["by_features"], args.out.with_name(args.out.name + "_features.png"), name
        )
        lines += ["", f"Throughput vs features: {args.out.name}_features.png"]
    write_report(args.out, summary, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
