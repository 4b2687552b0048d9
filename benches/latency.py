"""Query latency (issue 14): a user's query photo in, its top 100 re-ranked from a feature
store out — what a retrieval service waits for once the global shortlist is known.

Per query: extract the query's features (decode included; the extractor built once, as a
service keeps it), read its 100 candidates from the memory-mapped store, re-rank them
(default settings, both cores); every backend answers each query in turn (interleaved, the
order rotated), and the load average is recorded beside the table. p50 and p95 over the
shared queries, by backend, with the extraction and re-ranking parts reported apart. The
stores are built once per backend (``out/latency/<backend>``, every core) and reused.

Queries and shortlists (latency does not depend on labels; the shortlists are fixed draws):
the 17 roxford/rparis query crops, each against the same 100 database photos of the
subset drawn with seed 0 (in a per-query shuffled order), and the first ``--smvs`` (40)
SMVS E63 phone photos (1600 x 1200) against the 100 references.

Writes ``out/latency.{json,md}``. Run with both cores idle:
``.venv/bin/python benches/latency.py [--backends opencv rust kornia-rs kornia]``
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from report import write_report

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
ROX = DATA / "roxford_rparis_pixel_subset"
SMVS = DATA / "smvs_dvd_covers"
TOP = 100


def workload(smvs: int) -> tuple[dict[str, Path], list[tuple[Path, list[str]]]]:
    """(database id -> path, [(query path, its 100 candidate ids)])."""
    rox_db = sorted(p for p in ROX.glob("*/*/*.jpg"))
    refs = sorted((SMVS / "Reference").glob("*.jpg"))
    if not rox_db or not refs:
        sys.exit(f"no photos under {DATA}: this bench needs ../shared/data")
    rng = np.random.default_rng(0)
    drawn = [rox_db[i] for i in sorted(rng.choice(len(rox_db), TOP, replace=False))]
    db = {f"rox/{p.relative_to(ROX)}": p for p in drawn}
    db.update({f"smvs/{p.name}": p for p in refs[:TOP]})
    rox_ids = [i for i in db if i.startswith("rox/")]
    queries = [
        (q, [rox_ids[i] for i in rng.permutation(len(rox_ids))])
        for q in sorted(ROX.glob("*/query.jpg"))
    ]
    smvs_ids = [f"smvs/{p.name}" for p in refs[:TOP]]
    queries += [(q, smvs_ids) for q in sorted((SMVS / "E63").glob("*.jpg"))[:smvs]]
    return db, queries


def store_for(backend: str, db: dict[str, Path]):
    import ilias_rerank as ir
    from ilias_rerank.extractors import make_extractor

    path = REPO / "out" / "latency" / backend
    ex = make_extractor("sift", backend=backend)
    with ir.StoreWriter(path, ex.params()) as w:
        todo = [i for i in db if i not in w]
        if todo:
            feats = ir.extract_local([db[i] for i in todo], backend=backend, progress=True)
            for i, f in zip(todo, feats, strict=True):
                w.add(i, f)
    return ir.FeatureStore(path)


def measure(backends: list[str], db, queries) -> list[dict]:
    """p50/p95 of every backend, the backends interleaved query by query (each query's
    extraction and re-ranking run by every backend in turn, the order rotated), so that a
    change of load on a shared machine falls on all rows alike."""
    import cv2
    import torch

    import ilias_rerank as ir
    from ilias_rerank.extractors import make_extractor

    stores = {b: store_for(b, db) for b in backends}
    cv2.setNumThreads(2)  # a query uses both cores, as a service would
    torch.set_num_threads(2)
    # The rust backend's query image on both cores too (its SIFT's own threads).
    extractors = {
        b: make_extractor("sift", backend=b, **({"threads": 2} if b == "rust" else {}))
        for b in backends
    }
    config = ir.RerankConfig()
    times = {b: ([], [], []) for b in backends}
    for b in backends:
        extractors[b](queries[0][0])  # warm-up
    for n, (qpath, cands) in enumerate(queries):
        for k in range(len(backends)):
            b = backends[(n + k) % len(backends)]
            store = stores[b]
            t0 = time.perf_counter()
            q = extractors[b](qpath)
            t1 = time.perf_counter()
            ir.rerank(q, [store[c] for c in cands], config=config)
            t2 = time.perf_counter()
            extract, rerank, total = times[b]
            extract.append(t1 - t0)
            rerank.append(t2 - t1)
            total.append(t2 - t0)

    def pct(values, p):
        return 1e3 * float(np.percentile(values, p))

    return [
        {
            "backend": b,
            "queries": len(queries),
            "p50_ms": pct(times[b][2], 50),
            "p95_ms": pct(times[b][2], 95),
            "extract_p50_ms": pct(times[b][0], 50),
            "extract_p95_ms": pct(times[b][0], 95),
            "rerank_p50_ms": pct(times[b][1], 50),
            "rerank_p95_ms": pct(times[b][1], 95),
        }
        for b in backends
    ]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backends", nargs="*", default=["opencv", "rust", "kornia-rs", "kornia"])
    ap.add_argument("--smvs", type=int, default=40, help="SMVS phone photos used as queries")
    ap.add_argument("--out", type=Path, default=REPO / "out" / "latency")
    args = ap.parse_args(argv)
    import ilias_rerank as ir

    db, queries = workload(args.smvs)
    load_before = os.getloadavg()[0]
    rows = measure(args.backends, db, queries)
    load = f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    summary = {
        "machine": f"{platform.machine()}, kernels {ir.cpu_features()}",
        "date": time.strftime("%Y-%m-%d"),
        "load": load,
        "workload": f"{len(queries)} queries (17 roxford crops, {args.smvs} SMVS phone photos), "
        f"top {TOP} each, SIFT-1024, default re-ranking, 2 cores",
        "rows": rows,
    }
    lines = [
        f"{summary['workload']}; backends interleaved query by query; "
        f"{summary['machine']}; {summary['date']}, {load}.",
        "",
        "| backend | p50 ms | p95 ms | extract p50 / p95 | re-rank p50 / p95 |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['backend']} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} "
            f"| {r['extract_p50_ms']:.0f} / {r['extract_p95_ms']:.0f} "
            f"| {r['rerank_p50_ms']:.0f} / {r['rerank_p95_ms']:.0f} |"
        )
    write_report(args.out, summary, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
