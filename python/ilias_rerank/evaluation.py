"""Evaluation protocols, reproducing the reference definitions (``../shared/docs/PROTOCOLS.md``):

- :func:`ilias_map` — ILIAS mAP@k: per query, candidates sorted by descending score, the top
  ``k`` kept, AP as scikit-learn's ``average_precision_score`` (tied scores grouped) times
  ``(positives in the top k) / min(k, |gt|)``; 0 when no positive is in the top k. Queries
  missing from the results are skipped, as by the official script, and *counted*.
- :func:`revisitop_map` — revisited Oxford/Paris: mAP and mP@k for the Easy, Medium and Hard
  setups, junk images removed from the ranking, AP by the trapezoidal rule; queries without
  positives in a setup are left out of its mean.
- :func:`shortlist_metrics` — INQUIRE-Rerank's fixed-shortlist metrics as its official
  code computes them (AP and nDCG from scikit-learn's definitions, tied scores grouped;
  MRR in its ``argsort`` order), plus top-1 and P@k.

All values are fractions in [0, 1]; multiply by 100 for the percentages papers print.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "IliasEvaluation",
    "average_precision",
    "average_precision_tied",
    "ilias_instance",
    "ilias_map",
    "revisitop_map",
    "shortlist_metrics",
    "tie_averaged_ndcg",
    "trapezoid_average_precision",
]


def average_precision(labels) -> float:
    """Non-interpolated AP of a ranked 0/1 list (scikit-learn's definition without ties),
    normalised by the positives in the list; 0 without any."""
    y = np.asarray(labels, dtype=np.float64)
    hits = np.cumsum(y)
    ranks = np.arange(1, len(y) + 1)
    return float((hits / ranks * y).sum() / max(y.sum(), 1))


def average_precision_tied(y_true: Sequence[bool], y_score: Sequence[float]) -> float:
    """scikit-learn's ``average_precision_score`` for one query: the step-wise area under
    the precision-recall curve, one step per *distinct* score (tied items enter together).
    ``nan`` when there is no positive (as scikit-learn warns)."""
    y = np.asarray(y_true, dtype=bool)
    s = np.asarray(y_score, dtype=np.float64)
    if y.shape != s.shape or y.ndim != 1:
        raise ValueError(f"expected two 1-D arrays of one length, got {y.shape} and {s.shape}")
    positives = int(y.sum())
    if positives == 0:
        return float("nan")
    order = np.argsort(-s, kind="stable")
    y, s = y[order], s[order]
    # Last index of each run of equal scores: the thresholds.
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tp = np.cumsum(y)[last]
    precision = tp / (last + 1)
    recall = tp / positives
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def ilias_instance(image_id: str) -> str:
    """The object instance of an ILIAS id: the part before the first ``/``."""
    return image_id.split("/", 1)[0]


@dataclass(frozen=True)
class IliasEvaluation:
    """``map`` over the evaluated queries (fraction), per-query ``aps``, how many queries
    were evaluated and which of the ground truth's queries had no results."""

    map: float
    aps: dict[str, float]
    queries_evaluated: int
    queries_missing: list[str] = field(default_factory=list)


def ilias_map(
    similarities: Mapping[str, Mapping[str, float]],
    ground_truth: Mapping[str, Iterable[str]],
    k: int = 1000,
) -> IliasEvaluation:
    """ILIAS mAP@k of ``{query_id: {db_id: score}}`` against ``{query_id: positive db ids}``.

    Queries of ``ground_truth`` absent from ``similarities`` are skipped and listed in
    ``queries_missing`` (the official evaluator skips them silently); queries absent from
    ``ground_truth`` are an error.
    """
    if k < 1:
        raise ValueError(f"k: expected >= 1, got {k}")
    unknown = sorted(set(similarities) - set(ground_truth))
    if unknown:
        raise KeyError(
            f"queries without ground truth: {unknown[:5]}{'...' if len(unknown) > 5 else ''}"
        )
    aps: dict[str, float] = {}
    missing = []
    for qid, positives in ground_truth.items():
        if qid not in similarities:
            missing.append(qid)
            continue
        gt = set(positives)
        ids = list(similarities[qid].keys())
        scores = np.array([similarities[qid][i] for i in ids], dtype=np.float64)
        if not np.isfinite(scores).all():
            raise ValueError(f"query {qid!r}: scores must be finite")
        order = np.argsort(-scores, kind="stable")[:k]
        y_true = np.array([ids[i] in gt for i in order], dtype=bool)
        if not gt or not y_true.any():
            aps[qid] = 0.0
            continue
        ap = average_precision_tied(y_true, scores[order])
        aps[qid] = ap * y_true.sum() / min(k, len(gt))
    value = float(np.mean(list(aps.values()))) if aps else float("nan")
    return IliasEvaluation(value, aps, len(aps), missing)


def trapezoid_average_precision(positions: Sequence[int], num_positives: int) -> float:
    """revisitop's AP: ``positions`` are the 0-based ranks of the retrieved positives
    (junk removed), the area under the precision-recall curve by the trapezoidal rule."""
    ap = 0.0
    step = 1.0 / num_positives
    for j, rank in enumerate(sorted(positions)):
        precision_before = 1.0 if rank == 0 else j / rank
        precision_after = (j + 1) / (rank + 1)
        ap += (precision_before + precision_after) * step / 2.0
    return ap


_SETUPS = {
    "easy": (("easy",), ("junk", "hard")),
    "medium": (("easy", "hard"), ("junk",)),
    "hard": (("hard",), ("junk", "easy")),
}


def revisitop_map(
    rankings: Sequence[Sequence[int]],
    ground_truth: Sequence[Mapping[str, Iterable[int]]],
    ks: Sequence[int] = (1, 5, 10),
) -> dict[str, dict]:
    """Revisited Oxford/Paris: ``rankings[i]`` lists database indices best first for query
    ``i``; ``ground_truth[i]`` has ``easy``, ``hard`` and ``junk`` index lists (as in
    ``gnd_roxford5k.pkl``). Returns ``{setup: {"map", "mp@k"..., "aps", "queries"}}``."""
    if len(rankings) != len(ground_truth):
        raise ValueError(
            f"expected one ranking per query ({len(ground_truth)}), got {len(rankings)}"
        )
    out = {}
    for setup, (ok_keys, junk_keys) in _SETUPS.items():
        aps, prs = [], []
        for ranking, gnd in zip(rankings, ground_truth, strict=True):
            ok = set().union(*(set(gnd.get(key, ())) for key in ok_keys))
            junk = set().union(*(set(gnd.get(key, ())) for key in junk_keys)) - ok
            if not ok:
                aps.append(float("nan"))
                prs.append([float("nan")] * len(ks))
                continue
            kept = [d for d in ranking if d not in junk]
            positions = [r for r, d in enumerate(kept) if d in ok]
            aps.append(trapezoid_average_precision(positions, len(ok)))
            if positions:
                one_based = np.array(positions) + 1
                row = []
                for k in ks:
                    kq = min(int(one_based.max()), k)
                    row.append(float((one_based <= kq).sum() / kq))
                prs.append(row)
            else:
                prs.append([0.0] * len(ks))
        arr = np.array(aps)
        valid = ~np.isnan(arr)
        res = {"map": float(arr[valid].mean()) if valid.any() else float("nan")}
        pr = np.array(prs, dtype=np.float64).reshape(len(aps), len(ks))
        for j, k in enumerate(ks):
            res[f"mp@{k}"] = float(pr[valid, j].mean()) if valid.any() else float("nan")
        res["aps"] = aps
        res["queries"] = int(valid.sum())
        out[setup] = res
    return out


def tie_averaged_ndcg(
    y_true: Sequence[float], y_score: Sequence[float], k: int | None = None
) -> float:
    """scikit-learn's ``ndcg_score([y_true], [y_score], k=k)`` for one list: items ranked
    by descending score, each run of tied scores sharing the average gain of its members
    (``ignore_ties=False``), discounts ``1 / log2(rank + 1)`` for ranks 1..k, normalised by
    the ideal DCG; 0 when there is no positive."""
    y = np.asarray(y_true, dtype=np.float64)
    s = np.asarray(y_score, dtype=np.float64)
    if y.shape != s.shape or y.ndim != 1:
        raise ValueError(f"expected two 1-D arrays of one length, got {y.shape} and {s.shape}")
    n = len(y)
    discount = 1.0 / np.log2(np.arange(n) + 2.0)
    if k is not None:
        discount[k:] = 0.0
    ideal = float(np.sort(y)[::-1] @ discount)
    if ideal == 0.0:
        return 0.0
    # Runs of equal scores, best first: each run's gains averaged over its positions.
    values, inverse, counts = np.unique(-s, return_inverse=True, return_counts=True)
    run_gain = np.zeros(len(values))
    np.add.at(run_gain, inverse, y)
    run_gain /= counts
    cumulative = np.r_[0.0, np.cumsum(discount)]
    ends = np.cumsum(counts)
    run_discount = cumulative[ends] - cumulative[ends - counts]
    return float(run_gain @ run_discount / ideal)


def shortlist_metrics(
    labels: Sequence[int],
    scores: Sequence[float] | None = None,
    ks: Sequence[int] = (5, 10),
) -> dict:
    """INQUIRE-Rerank's metrics of one fixed shortlist (``src/metrics.py`` of
    inquire-benchmark/INQUIRE, with the shortlist's positives as ``count_pos``).

    ``labels``: 0/1 relevance in shortlist order; ``scores``: the re-ranker's scores in the
    same order (higher is better), or ``None`` for "the shortlist order is the ranking".

    - ``ap``: scikit-learn's ``average_precision_score(labels, scores)`` (tied scores enter
      together), 0 without positives (the normalisation ``found / min(count_pos, k)`` is 1
      over a whole shortlist);
    - ``ndcg``: scikit-learn's ``ndcg_score`` with tied scores averaged
      (:func:`tie_averaged_ndcg`);
    - ``mrr``: the reciprocal rank of the first positive in the official order,
      ``np.flip(np.argsort(scores))`` — the same numpy call, so tied scores fall as they
      fall there (for short lists: the later shortlist item first);
    - ``top1``, ``p@k``: of the ranking by descending score, ties in shortlist order.
    """
    y = np.asarray(labels, dtype=np.float64)
    if y.ndim != 1:
        raise ValueError(f"labels: expected a 1-D list of 0/1, got shape {y.shape}")
    if scores is None:
        s = -np.arange(len(y), dtype=np.float64)  # the given order, strictly decreasing
    else:
        s = np.asarray(scores, dtype=np.float64)
        if s.shape != y.shape:
            raise ValueError(f"scores: expected shape {y.shape} (one per label), got {s.shape}")
        if not np.isfinite(s).all():
            raise ValueError("scores: expected finite values")
    positives = int(y.sum())
    out = {
        "ap": average_precision_tied(y.astype(bool), s) if positives else 0.0,
        "ndcg": tie_averaged_ndcg(y, s),
    }
    official = np.flip(np.argsort(s))
    first = np.nonzero(y[official])[0]
    out["mrr"] = float(1.0 / (first[0] + 1)) if len(first) else 0.0
    ranked = y[np.argsort(-s, kind="stable")]
    out["top1"] = float(ranked[0]) if len(ranked) else 0.0
    for k in ks:
        out[f"p@{k}"] = float(ranked[:k].sum() / k)
    return out
