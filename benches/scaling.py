"""How the cost grows: with the shortlist length, with the number of features per image,
and the peak memory of re-ranking 1,000 candidates.

- Shortlist length M in {10, 30, 100, 300, 1000} at N = 1,024 features: seconds per query
  (should be linear in M);
- features per image N in {256, 512, 1024, 2048} at M = 100: pairs/s of ilias-rerank and of
  the fastest Python peer of ``peer_benchmark.py`` (numpy GEMM mutual NN + poselib), and our
  nanoseconds per N x N feature pair (flat when the cost is close to N·M);
- peak memory: the process's peak resident memory (VmHWM, reset through
  ``/proc/self/clear_refs``) while re-ranking 1,000 distinct candidates of 1,024 features,
  minus the resident memory before the call, next to the candidates' feature bytes.

Inputs: the smvs_dvd_covers references and E63 phone photos (2,048 RootSIFT features,
truncated to N: extractors list the strongest first) or, without ``../shared``, synthetic
phone shots of scikit-image photos. Writes ``out/scaling.{json,md}`` and
``out/throughput_vs_features.png``, ``out/cost_vs_shortlist.png``.

Run: ``.venv/bin/python benches/scaling.py`` with both cores idle.
"""

from __future__ import annotations

import argparse
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from peer_benchmark import REPO, load_inputs, numpy_poselib_pair
from plot import line_plot
from report import write_report

import ilias_rerank as ir


def truncate(f: ir.LocalFeatures, n: int, copy: bool = False) -> ir.LocalFeatures:
    take = (lambda a: a[:n].copy()) if copy else (lambda a: np.ascontiguousarray(a[:n]))
    frames = None if f.frames is None else take(f.frames)
    return ir.LocalFeatures(take(f.keypoints), take(f.descriptors), frames, f.image_size)


def best_of(fn, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def status_kib(field: str) -> int:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1))


def peak_extra_bytes(fn) -> int | None:
    """Peak resident bytes above the resident bytes before ``fn()`` (Linux only)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return None
    before = status_kib("VmRSS")
    fn()
    return (status_kib("VmHWM") - before) * 1024


def features_sweep(queries, refs, sizes=(256, 512, 1024, 2048)) -> list[dict]:
    """Pairs/s of ours and of numpy GEMM MNN + poselib at each number of features N
    (features truncated to N: extractors list the strongest first)."""
    import poselib

    by_n = []
    for n in sizes:
        q = [truncate(f, n) for f in queries]
        r = [truncate(f, n) for f in refs[:100]]
        ours = best_of(lambda q=q, r=r: [ir.rerank(x, r) for x in q])
        with ThreadPoolExecutor(2) as pool:
            peer = best_of(
                lambda q=q, r=r: [
                    list(pool.map(lambda c, x=x: numpy_poselib_pair(x, c, poselib), r))
                    for x in q[:2]
                ],
                repeats=1,
            )
        pairs = len(q) * len(r)
        mean_n = float(np.mean([len(f) for f in r]))
        row = {
            "features": n,
            "mean_features": mean_n,
            "ours_pairs_per_s": pairs / ours,
            "numpy_poselib_pairs_per_s": 2 * len(r) / peer,
            "ours_ns_per_feature_pair": ours / pairs / (mean_n * mean_n) * 1e9,
        }
        row["ratio"] = row["ours_pairs_per_s"] / row["numpy_poselib_pairs_per_s"]
        print(row)
        by_n.append(row)
    return by_n


def plot_features(by_n: list[dict], path: Path, dataset: str) -> None:
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--queries", type=int, default=4)
    ap.add_argument("--out", type=Path, default=REPO / "out")
    args = ap.parse_args(argv)
    dataset, queries, refs, _ = load_inputs(args.queries, num_features=2048)
    print(f"inputs: {dataset}, kernels {ir.cpu_features()}")
    result: dict = {"dataset": dataset, "machine": ir.cpu_features(), "date": time.strftime("%F")}

    # 1. Features per image.
    by_n = features_sweep(queries, refs)
    result["by_features"] = by_n

    # 2. Shortlist length.
    q = [truncate(f, 1024) for f in queries]
    by_m = []
    for m in (10, 30, 100, 300, 1000):
        cands = [truncate(refs[j % len(refs)], 1024) for j in range(m)]
        seconds = best_of(lambda c=cands: [ir.rerank(x, c) for x in q]) / len(q)
        by_m.append(
            {"shortlist": m, "seconds_per_query": seconds, "ms_per_candidate": 1e3 * seconds / m}
        )
        print(by_m[-1])
    result["by_shortlist"] = by_m

    # 3. Peak memory while re-ranking 1,000 distinct candidates.
    cands = [truncate(refs[j % len(refs)], 1024, copy=True) for j in range(1000)]
    feature_bytes = sum(c.nbytes for c in cands)
    extra = peak_extra_bytes(lambda: ir.rerank(q[0], cands))
    result["memory"] = {
        "candidates": 1000,
        "feature_bytes": feature_bytes,
        "peak_extra_bytes": extra,
        "ratio": None if extra is None else extra / feature_bytes,
    }
    print(result["memory"])

    args.out.mkdir(parents=True, exist_ok=True)
    plot_features(by_n, args.out / "throughput_vs_features.png", dataset)
    line_plot(
        {"ilias-rerank": [(r["shortlist"], r["seconds_per_query"]) for r in by_m]},
        args.out / "cost_vs_shortlist.png",
        title="Seconds per query vs shortlist length (N = 1024, 2 cores)",
        xlabel="shortlist length (M)",
        ylabel="seconds / query",
    )
    lines = [
        "| features N | ours pairs/s | numpy+poselib pairs/s | ours / peer "
        "| ns per N x N feature pair |",
        "| --- | --- | --- | --- | --- |",
        *(
            f"| {r['features']} | {r['ours_pairs_per_s']:,.0f} "
            f"| {r['numpy_poselib_pairs_per_s']:,.0f} | "
            f"{r['ratio']:.1f}x | {r['ours_ns_per_feature_pair']:.2f} |"
            for r in by_n
        ),
        "",
        "| shortlist M | seconds / query | ms / candidate |",
        "| --- | --- | --- |",
        *(
            f"| {r['shortlist']} | {r['seconds_per_query']:.3f} | {r['ms_per_candidate']:.3f} |"
            for r in by_m
        ),
        "",
        "Peak extra memory re-ranking 1,000 candidates: "
        + (
            "n/a"
            if extra is None
            else f"{extra / 2**20:.1f} MiB vs {feature_bytes / 2**20:.1f} MiB of features "
            f"({extra / feature_bytes:.3f} of them)"
        ),
    ]
    write_report(args.out / "scaling", result, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
