"""``rerank_consensus`` on the pipeline's protocol (issue 16, item 4): what ``ilias-rerank
run --dataset roxford-subset`` computes — default extraction, VLAD-256 fitted on the
database, each query's 20-image shortlist ordered by its global score (a real first stage,
so the order carries no label) — but with the query's local features withheld, as for a
text query: each shortlist is re-ranked by its candidates verifying one another, the
global score fused.

Rows: the global order; ``rerank`` with the query's features (what ``run`` does, for
reference); ``rerank_consensus`` with its defaults (the raw global scores, as a user
passes them) and with the settings the accuracy bench uses, and a few others, each
measured the same way (ILIAS mAP@1k, as ``run`` evaluates).

Writes ``out/consensus_pipeline.{json,md}``. Run:
``PYTHONPATH=python .venv/bin/python benches/consensus_pipeline.py [--features 4096]``
(features are extracted once into ``.cache/pipeline-roxford-N``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from report import write_report

import ilias_rerank as ir
from ilias_rerank.datasets import load_dataset
from ilias_rerank.pipeline import Workspace
from ilias_rerank.reranker import by_score, rank_scores

REPO = Path(__file__).resolve().parents[1]
ROOT = REPO.parent / "shared" / "data" / "roxford_rparis_pixel_subset"

#: name -> (normalise the global scores to [0, 1] per shortlist, rerank_consensus kwargs)
SETTINGS = {
    "defaults (5 pseudo-queries, lexicographic)": (False, {}),
    "5 pseudo-queries, weighted 0.5": (True, {"config": {"fusion": "weighted"}}),
    "accuracy bench's (2 pseudo-queries, weighted 0.5)": (
        True,
        {"pseudo_queries": 2, "config": {"fusion": "weighted", "fusion_weight": 0.5}},
    ),
    "5 pseudo-queries, weighted 0.5, min_inliers 8": (
        True,
        {"config": {"fusion": "weighted", "min_inliers": 8}},
    ),
    "3 pseudo-queries, weighted 0.7": (
        True,
        {"pseudo_queries": 3, "config": {"fusion": "weighted", "fusion_weight": 0.7}},
    ),
}


def reorder(sims: dict, q: str, head: list[str], order) -> dict[str, float]:
    """The re-ranked head then the rest of the global ranking, rank-based scores."""
    return rank_scores([head[i] for i in order] + by_score(sims[q])[len(head) :])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--k", type=int, default=20, help="shortlist head re-ranked")
    ap.add_argument("--features", type=int, default=1024, help="local features per image")
    ap.add_argument("--work", type=Path, default=None, help="default: .cache/pipeline-roxford-N")
    ap.add_argument("--out", type=Path, default=None, help="default: out/consensus_pipeline[_N]")
    args = ap.parse_args(argv)
    work = args.work or REPO / ".cache" / f"pipeline-roxford-{args.features}"
    suffix = "" if args.features == 1024 else f"_{args.features}"
    args.out = args.out or REPO / "out" / f"consensus_pipeline{suffix}"
    ws = Workspace(
        load_dataset("roxford-subset", ROOT),
        work,
        num_features=args.features,
        k=args.k,
        progress=False,
    )
    db, _queries = ws.extract()
    sims = ws.search()
    rows = [{"name": "global order (VLAD-256)", **ws.evaluate(sims)}]
    reranked, _ = ws.rerank(sims)
    rows.append(
        {"name": "rerank with the query's features (what run does)", **ws.evaluate(reranked)}
    )
    for name, (normalise, kwargs) in SETTINGS.items():
        out = {}
        for q in sims:
            head = by_score(sims[q])[: args.k]
            g = np.array([sims[q][d] for d in head], dtype=np.float32)
            if normalise:
                g = (g - g.min()) / (np.ptp(g) + 1e-9)
            result = ir.rerank_consensus([db[d] for d in head], g, **kwargs)
            out[q] = reorder(sims, q, head, result.order)
        rows.append({"name": f"rerank_consensus, {name}", **ws.evaluate(out)})
        print(json.dumps(rows[-1]), flush=True)
    base = rows[0]["map"]
    lines = [
        f"roxford-subset, {len(sims)} queries, global top {args.k} (the fixed 20-image "
        f"shortlists ordered by VLAD-256), default extraction with {args.features} features; "
        "ILIAS mAP@1k as `run` reports it",
        "",
        "| ranking | mAP | vs global | top-1 | P@5 |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['map']:.3f} | {r['map'] - base:+.3f} | {r['top1']:.2f} "
            f"| {r['p@5']:.2f} |"
        )
    write_report(args.out, {"k": args.k, "rows": rows}, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
