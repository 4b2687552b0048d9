"""Global vectors that scale (issue 9): VLAD-256 over RootSIFT (32768-D, 128 KB an image)
against the same vectors PCA-whitened on the database to 2 KB or less, and an IVF-PQ index
over a million synthetic vectors.

1. Shared data, full ranking (the label-free first stage): smvs_dvd_covers (100 E63
   photos against 100 references + the 357 Oxford/Paris images as distractors) and
   roxford_rparis_pixel_subset (17 queries against its 340 images): recall@100 of each
   query's positives, and global mAP, per vector kind. PCA-whitening is learned on the
   database vectors only (so its dimension is at most the database size minus one).
2. ``GlobalIndex(kind="ivfpq")`` over ``--million`` x 1M synthetic 512-D vectors
   (clustered, unit norm): training and adding time, search time for 1,232 queries at
   k = 1000, recall@100 against exact search, memory per vector.

Writes ``out/global_scale.{json,md}``. Run: ``.venv/bin/python benches/global_scale.py``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from accuracy import ROX, SMVS, roxford_items
from featcache import features
from report import write_report

from ilias_rerank.evaluation import ilias_map
from ilias_rerank.global_features import PcaWhitening, Vlad
from ilias_rerank.shortlist import GlobalIndex

REPO = Path(__file__).resolve().parents[1]
PARAMS = {"num_features": 1024, "descriptor_dtype": "float32"}


def sets():
    items = roxford_items()
    rox_db = [ROX / p for v in items.values() for p, _ in v]
    rox_q = [ROX / q / "query.jpg" for q in items]
    rox_pos = [{str(ROX / p) for p, lab in v if lab} for v in items.values()]
    refs = [SMVS / f"Reference/{i:03d}.jpg" for i in range(1, 101)]
    shots = [SMVS / f"E63/{i:03d}.jpg" for i in range(1, 101)]
    distractors = sorted({*rox_db, *rox_q})
    yield "smvs + 357 distractors", shots, refs + distractors, [{str(r)} for r in refs]
    yield "roxford subset, full ranking", rox_q, rox_db, rox_pos


def measure(name, queries, database, positives, dims) -> list[dict]:
    qf, _ = features(queries, "sift", **PARAMS)
    df, _ = features(database, "sift", **PARAMS)
    vlad = Vlad(256).fit(df)
    qv, dv = vlad.encode(qf), vlad.encode(df)
    kinds = {"VLAD-256 (32768-D float32)": (qv, dv)}
    for d in dims:
        pca = PcaWhitening(d).fit(dv)
        k = pca.projection.shape[1]
        kinds[f"PCA-whitened to {k}-D"] = (pca.transform(qv), pca.transform(dv))
    ids = [str(p) for p in database]
    gt = {str(q): pos for q, pos in zip(queries, positives, strict=True)}
    rows = []
    for kind, (q, d) in kinds.items():
        found = GlobalIndex(d).search(q, k=len(ids))
        sims = {
            str(qp): {ids[j]: float(s) for j, s in zip(ix, sc, strict=True)}
            for qp, ix, sc in zip(queries, found.indices, found.scores, strict=True)
        }
        recall = np.mean([len(set(list(sims[q])[:100]) & gt[q]) / len(gt[q]) for q in sims])
        rows.append(
            {
                "set": name,
                "vectors": kind,
                "bytes_per_image": int(d.shape[1] * 4),
                "recall_at_100": float(recall),
                "global_map": ilias_map(sims, gt).map,
            }
        )
        print(rows[-1], flush=True)
    return rows


def synthetic(n: int, dim: int = 512, queries: int = 1232, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(4096, dim)).astype(np.float32)
    db = np.empty((n, dim), np.float32)
    for k in range(0, n, 100_000):
        m = min(100_000, n - k)
        db[k : k + m] = centres[rng.integers(0, len(centres), m)] + rng.normal(
            scale=0.7, size=(m, dim)
        ).astype(np.float32)
    db /= np.linalg.norm(db, axis=1, keepdims=True)
    q = db[rng.choice(n, queries, replace=False)] + rng.normal(scale=0.02, size=(queries, dim))
    q = (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)
    return db, q


def ivfpq(n: int) -> dict:
    db, q = synthetic(n)
    t0 = time.perf_counter()
    index = GlobalIndex(db, kind="ivfpq", nlist=4096, pq_bytes=64, nprobe=32)
    built = time.perf_counter() - t0
    t0 = time.perf_counter()
    approx = index.search(q, k=1000)
    searched = time.perf_counter() - t0
    sample = slice(0, 200)
    exact_scores = q[sample] @ db.T
    exact = np.argsort(-exact_scores, axis=1)[:, :100]
    recall = np.mean(
        [
            len(set(a[:100]) & set(e)) / 100
            for a, e in zip(approx.indices[sample], exact, strict=True)
        ]
    )
    out = {
        "vectors": n,
        "dim": db.shape[1],
        "nlist": 4096,
        "pq_bytes": 64,
        "nprobe": 32,
        "build_s": built,
        "search_1232_queries_k1000_s": searched,
        "recall_at_100_vs_exact": float(recall),
    }
    print(out, flush=True)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--million", type=float, default=1.0, help="synthetic vectors, in millions")
    ap.add_argument("--out", type=Path, default=REPO / "out" / "global_scale")
    args = ap.parse_args(argv)
    rows = []
    for name, q, d, pos in sets():
        rows += measure(name, q, d, pos, dims=(128, 256, 512))
    big = ivfpq(int(args.million * 1_000_000))
    lines = [
        "| set | vectors | bytes / image | recall@100 | global mAP |",
        "| --- | --- | --- | --- | --- |",
        *(
            f"| {r['set']} | {r['vectors']} | {r['bytes_per_image']:,} | "
            f"{r['recall_at_100']:.3f} | {r['global_map']:.3f} |"
            for r in rows
        ),
        "",
        f"IVF-PQ over {big['vectors']:,} synthetic {big['dim']}-D vectors (nlist {big['nlist']}, "
        f"{big['pq_bytes']} B codes, nprobe {big['nprobe']}): built in {big['build_s']:.0f} s, "
        f"1,232 queries x top 1000 in {big['search_1232_queries_k1000_s']:.1f} s, recall@100 "
        f"vs exact {big['recall_at_100_vs_exact']:.3f}.",
    ]
    write_report(args.out, {"shared": rows, "ivfpq": big}, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
