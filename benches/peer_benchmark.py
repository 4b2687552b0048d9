"""Side-by-side peer benchmark: the same SIFT features re-ranked by ilias-rerank and by
the usual Python pipelines, in one process, interleaved, with quality next to speed. This
one command produces every peer number docs/speed.md quotes.

The pipelines, their settings and the timing rules are in ``peers.py``: each converts and
lays out the query once per shortlist, candidates are float32 copies made before timing,
every pipeline runs the same number of interleaved rounds (``--rounds``, default 3) and
reports its median round.

Inputs, each set reported on its own: ``../shared/data/smvs_dvd_covers`` (each E63 phone
photo against all 100 references) when present, and synthetic warps: phone shots of the
photos shipped in scikit-image (the quickstart's data) against those photos plus, when
present, the 100 SMVS references as distractors. Features: kornia RootSIFT, 1024 per
image, extracted once and cached in ``.cache/bench-features``.

Peers (each ranks a query's shortlist by its inlier count, both cores available):
OpenCV BFMatcher (L2, cross-check) + findHomography(USAC_MAGSAC, 8 px); numpy GEMM mutual
NN + ratio 0.9 followed by OpenCV USAC_MAGSAC, poselib or pycolmap (8 px), when installed
(``pip install '.[bench]'``); kornia's match_mnn + RANSAC on the CPU (its first
``--kornia-pairs`` candidates per query: it is slow; same rounds and statistic).

Roofline, in the same run: numpy float32 GEMM and (where available) torch int8
``_int_mm`` on the same N x N x 128 shapes, next to our nearest-neighbour kernels alone
(``_core.kernel_throughput``), each on one core, in multiply-adds per second.

Quality next to speed: top-1, mAP and the median inliers on the true pair vs on the best
negative. Throughput vs features (ours vs numpy + poselib, N = 256 .. 2048, the same rounds
and statistic) goes to a PNG (``docs/img/throughput_vs_features.png``; ``--no-sweep``
skips it). Writes JSON and a Markdown table (``--out``, default ``out/peer_benchmark``).

Run: ``.venv/bin/python benches/peer_benchmark.py [--queries 20]`` with both cores idle.
"""

from __future__ import annotations

# peers sets one BLAS thread per worker before numpy is imported: import it first.
import peers  # isort: skip

import argparse
import hashlib
import inspect
import os
import pickle
import platform
import sys
import time
from pathlib import Path

import numpy as np
from report import write_report

import ilias_rerank as ir

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".cache" / "bench-features"


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


def truncate(f: ir.LocalFeatures, n: int, copy: bool = False) -> ir.LocalFeatures:
    """The first ``n`` features (extractors list the strongest first)."""
    take = (lambda a: a[:n].copy()) if copy else (lambda a: np.ascontiguousarray(a[:n]))
    frames = None if f.frames is None else take(f.frames)
    return ir.LocalFeatures(take(f.keypoints), take(f.descriptors), frames, f.image_size)


def compare(queries, refs, pipelines, rounds: int, kornia_pairs: int | None = None):
    """ilias-rerank and every peer on one shortlist set: ``[(Timed, candidates per query)]``."""
    fq = [peers.as_float(q) for q in queries]
    fr = [peers.as_float(c) for c in refs]
    runs = [("ilias-rerank", lambda: peers.run_ours(queries, refs), len(queries) * len(refs))]
    for peer in pipelines:
        cands = fr[:kornia_pairs] if isinstance(peer, peers.Kornia) and kornia_pairs else fr
        runs.append(
            (peer.name, lambda p=peer, c=cands: peers.run_peer(p, fq, c), len(fq) * len(cands))
        )
    return peers.interleaved(runs, rounds)


def run_set(inputs, pipelines, rounds: int, kornia_pairs: int) -> dict:
    dataset, queries, refs, truth = inputs
    print(f"inputs: {dataset}, {len(queries)} queries x {len(refs)} candidates")
    timed = compare(queries, refs, pipelines, rounds, kornia_pairs)
    ours = timed[0]
    rows = []
    for t in timed:
        row = {
            "name": t.name,
            "pairs": t.pairs,
            "seconds": t.seconds,
            "median_seconds": t.median_seconds,
            "pairs_per_s": t.pairs_per_s,
            "ratio_ours_over_peer": ours.pairs_per_s / t.pairs_per_s,
        }
        if len(t.inliers[0]) == len(refs):  # the whole shortlist: quality is comparable
            row.update(quality(t.inliers, truth))
        rows.append(row)
        print(f"  {t.name}: {t.pairs_per_s:.0f} pairs/s (median of {rounds})")
    return {"dataset": dataset, "queries": len(queries), "candidates": len(refs), "rows": rows}


def features_sweep(queries, refs, rounds: int, sizes=(256, 512, 1024, 2048)) -> list[dict]:
    """Pairs/s of ours and of numpy GEMM MNN + poselib at each number of features N, the
    same pairs, rounds and statistic for both."""
    import poselib

    peer = peers.NumpyPoselib(poselib)
    by_n = []
    for n in sizes:
        q = [truncate(f, n) for f in queries]
        r = [truncate(f, n) for f in refs[:100]]
        ours, theirs = compare(q, r, [peer], rounds)
        mean_n = float(np.mean([len(f) for f in r]))
        row = {
            "features": n,
            "mean_features": mean_n,
            "pairs": ours.pairs,
            "ours_pairs_per_s": ours.pairs_per_s,
            "numpy_poselib_pairs_per_s": theirs.pairs_per_s,
            "ours_ns_per_feature_pair": ours.median_seconds / ours.pairs / mean_n**2 * 1e9,
        }
        row["ratio"] = row["ours_pairs_per_s"] / row["numpy_poselib_pairs_per_s"]
        print(row)
        by_n.append(row)
    return by_n


def plot_features(by_n: list[dict], path: Path, dataset: str) -> None:
    from plot import line_plot

    line_plot(
        {
            "ilias-rerank": [(r["features"], r["ours_pairs_per_s"]) for r in by_n],
            "numpy GEMM MNN + poselib": [
                (r["features"], r["numpy_poselib_pairs_per_s"]) for r in by_n
            ],
        },
        path,
        title=f"Re-ranking throughput vs features per image (2 cores, {dataset})",
        xlabel="features per image (N)",
        ylabel="pairs / s",
    )


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
    out = {"shape": [n, n, dim], "isa": ir.cpu_features()}
    out["numpy_sgemm"] = best_rate(lambda: a @ b.T, macs)
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--queries", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds per pipeline")
    ap.add_argument(
        "--kornia-pairs", type=int, default=10, help="candidates per query for kornia (slow)"
    )
    ap.add_argument("--out", type=Path, default=REPO / "out" / "peer_benchmark")
    ap.add_argument("--no-sweep", action="store_true", help="skip the features sweep + plot")
    args = ap.parse_args(argv)

    pipelines = peers.available_peers()
    smvs = load_smvs(args.queries)
    sets = [smvs] if smvs else []
    sets.append(load_synthetic(args.queries, distractors=smvs[2] if smvs else ()))
    results = [run_set(s, pipelines, args.rounds, args.kornia_pairs) for s in sets]
    roof = roofline()
    summary = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {ir.cpu_features()}",
        "date": time.strftime("%Y-%m-%d"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "rounds": args.rounds,
        "statistic": "median round",
        "sets": results,
        "roofline": roof,
    }
    lines = []
    for res in results:
        lines += [
            f"{res['dataset']}: {res['queries']} queries x {res['candidates']} candidates, "
            f"median of {args.rounds} interleaved rounds, our kernels {roof['isa']}",
            "",
            "| pipeline | pairs/s | ours / peer | top-1 | mAP | inliers true / best negative |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for p in res["rows"]:
            if "top1" in p:
                q = (
                    f"{p['top1']:.2f} | {p['map']:.3f} | {p['median_inliers_true']:.0f} / "
                    f"{p['median_inliers_best_negative']:.0f}"
                )
            else:
                q = f"n/a ({p['pairs'] // res['queries']} candidates a query) | | "
            lines.append(
                f"| {p['name']} | {p['pairs_per_s']:.0f} | {p['ratio_ours_over_peer']:.1f}x | {q} |"
            )
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
        f"| ours uint8 NN ({roof['isa']}) | {roof['ours_u8'] / g:.1f} | "
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
        name, q2048, r2048, _ = load_inputs(2, num_features=2048)
        summary["by_features"] = by_n = features_sweep(q2048, r2048, args.rounds)
        png = REPO / "docs" / "img" / "throughput_vs_features.png"
        plot_features(by_n, png, name)
        lines += [
            "",
            f"Throughput vs features per image ({name}, {by_n[0]['pairs']} pairs each, "
            f"median of {args.rounds} rounds; {png.relative_to(REPO)}):",
            "",
            "| features N | ours pairs/s | numpy+poselib pairs/s | ours / peer "
            "| ns per N x N feature pair |",
            "| --- | --- | --- | --- | --- |",
            *(
                f"| {r['features']} | {r['ours_pairs_per_s']:,.0f} "
                f"| {r['numpy_poselib_pairs_per_s']:,.0f} | "
                f"{r['ratio']:.1f}x | {r['ours_ns_per_feature_pair']:.2f} |"
                for r in by_n
            ),
        ]
    write_report(args.out, summary, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
