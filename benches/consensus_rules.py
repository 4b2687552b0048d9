"""Consensus scoring rules compared offline (issue 16, item 4), on the accuracy bench's
protocol: the rOxf/rPar shortlists without the query's local features, the global order =
the query's VLAD-256 scores over the same features; each shortlist's full 20 x 20 inlier
matrix (``rerank`` of every candidate against the others, the larger of both directions)
is computed once, then every rule below re-ranks from it.

Rules: ``sum`` (what ``rerank_consensus`` does: counted inliers from the top ``P`` of the
global ranking, weighted fusion 0.5 with ``n / (n + 20)``); ``votes`` (the pseudo-queries'
verdicts weighted by their global scores); ``mean-neighbour`` (the mean global score of
the verified neighbours); ``pull`` (a step towards the verified neighbours' global scores).

Run: ``PYTHONPATH=python .venv/bin/python benches/consensus_rules.py [1024|4096]``
(OpenCV SIFT features of ``benches/cvsift.py``, first N of 4096).
"""

from __future__ import annotations

import sys

import accuracy as acc
import cvsift
import numpy as np

import ilias_rerank as ir
from ilias_rerank.evaluation import average_precision
from ilias_rerank.global_features import Vlad


def matrices(n: int) -> dict:
    items = acc.roxford_items()
    qp = [acc.ROX / q / "query.jpg" for q in items]
    cp = [acc.ROX / p for v in items.values() for p, _ in v]
    feats = [acc._prefix(f, n) for f in cvsift.features(qp + cp, 4096)[0]]
    by = dict(zip(map(str, qp + cp), feats, strict=True))
    vlad = Vlad(256).fit(feats)
    out = {}
    for q, v in items.items():
        fq = by[str(acc.ROX / q / "query.jpg")]
        fc = [by[str(acc.ROX / p)] for p, _ in v]
        g = vlad.encode(fc) @ vlad.encode([fq])[0]
        inl = np.array([ir.rerank(fc[e], fc).inliers for e in range(len(fc))])
        np.fill_diagonal(inl, 0)
        out[q] = (g, np.maximum(inl, inl.T), np.array([lab for _, lab in v]))
    return out


def norm(g):
    return (g - g.min()) / (np.ptp(g) + 1e-9)


def rules():
    def total(p, t):
        def f(g, inl):
            top = np.argsort(-g, kind="stable")[:p]
            v = np.where(inl[top] >= t, inl[top], 0).sum(0).astype(float)
            return 0.5 * norm(g) + 0.5 * v / (v + 20)

        return f

    def votes(p, t):
        def f(g, inl):
            gn = norm(g)
            top = np.argsort(-g, kind="stable")[:p]
            w = gn[top]
            return gn + 0.5 * ((inl[top] >= t) * w[:, None]).sum(0) / max(w.sum(), 1e-9)

        return f

    def mean_neighbour(t):
        def f(g, inl):
            gn, adj = norm(g), inl >= t
            deg = adj.sum(1)
            nb = np.where(deg > 0, (adj * gn[None, :]).sum(1) / np.maximum(deg, 1), gn)
            return 0.5 * (gn + nb)

        return f

    def pull(a, t):
        def f(g, inl):
            gn, adj = norm(g), (inl >= t).astype(float)
            w = adj / np.maximum(adj.sum(1, keepdims=True), 1)
            return gn + a * (w @ (gn - gn.mean()))

        return f

    yield "global", lambda g, inl: g
    for t in (4, 8, 15):
        yield f"mean-neighbour t{t}", mean_neighbour(t)
        for p in (2, 3, 5):
            yield f"sum P{p} t{t}", total(p, t)
            yield f"votes P{p} t{t}", votes(p, t)
        for a in (0.25, 0.5, 1.0):
            yield f"pull a{a} t{t}", pull(a, t)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
    mats = matrices(n)
    res = {}
    for name, rule in rules():
        aps = []
        for g, inl, lab in mats.values():
            s = rule(g, inl)
            aps.append(average_precision(lab[np.lexsort((np.arange(len(s)), -s))]))
        res[name] = float(np.mean(aps))
    for name, v in sorted(res.items(), key=lambda kv: -kv[1]):
        print(f"{v:.3f}  {name}")


if __name__ == "__main__":
    main()
