"""Evaluation protocols, reproducing the reference definitions (``../shared/docs/PROTOCOLS.md``):

- :func:`ilias_map` — ILIAS mAP@k: per query, candidates sorted by descending score, the top
  ``k`` kept, AP as scikit-learn's ``average_precision_score`` (tied scores grouped) times
  ``(positives in the top k) / min(k, |gt|)``; 0 when no positive is in the top k. Queries
  missing from the results are skipped, as by the official script, and *counted*.
- :func:`revisitop_map` — revisited Oxford/Paris: mAP and mP@k for the Easy, Medium and Hard
  setups, junk images removed from the ranking, AP by the trapezoidal rule; queries without
  positives in a setup are left out of its mean.
- :func:`shortlist_metrics` — INQUIRE-style fixed-shortlist re-ranking: AP (normalised by
  the positives inside the shortlist), nDCG and MRR, plus top-1 and P@k.

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


def shortlist_metrics(labels_in_rank_order: Sequence[int], ks: Sequence[int] = (5, 10)) -> dict:
    """Metrics of one re-ranked fixed shortlist (binary relevance, best first): ``ap``
    (normalised by the positives inside the shortlist; 0 without any), ``ndcg``, ``mrr``,
    ``top1`` and ``p@k``."""
    y = np.asarray(labels_in_rank_order, dtype=np.float64)
    if y.ndim != 1:
        raise ValueError(f"expected a 1-D list of 0/1 labels, got shape {y.shape}")
    positives = y.sum()
    ranks = np.arange(1, len(y) + 1)
    out = {"ap": average_precision(y)}
    gains = 1.0 / np.log2(ranks + 1)
    ideal = gains[: int(positives)].sum()
    out["ndcg"] = float((y * gains).sum() / ideal) if positives else 0.0
    first = np.nonzero(y)[0]
    out["mrr"] = float(1.0 / (first[0] + 1)) if len(first) else 0.0
    out["top1"] = float(y[0]) if len(y) else 0.0
    for k in ks:
        out[f"p@{k}"] = float(y[:k].sum() / k)
    return out
