"""What a run records for its report: per query, the candidates re-ranked (in the global
order), their inlier counts and their estimated transforms (the *verification file*).

Format (``.npz``, written atomically, read without pickle)::

    query_ids   (Q,)        str      the queries
    db_ids      (D,)        str      the database ids the candidates index
    candidates  (Q, K)      int32    indices into db_ids, global order; -1 pads short lists
    inliers     (Q, K)      int32    inliers of each candidate's verification; -1 in padding
    transforms  (Q, K, 3, 3) float32 query pixels -> candidate pixels; NaN where nothing
                                     verified (and in padding)

The global ranking itself is in ``global.json`` and the re-ranked one in ``reranked.json``
(or the job's ``--out`` file): this file only adds what verification found.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .._io import atomic_write_npz
from ..errors import FormatError

__all__ = ["Verification", "read_verification", "write_verification"]

#: query id -> {candidate id: (inliers, 3x3 transform or None)}, candidates in global order.
Verification = dict[str, dict[str, tuple[int, np.ndarray | None]]]


def write_verification(path: str | os.PathLike, details: Mapping[str, Mapping]) -> Path:
    """Write ``{query: {candidate: (inliers, transform or None)}}`` (candidates in global
    order) as a verification file."""
    qids = list(details)
    dids = sorted({d for per in details.values() for d in per})
    pos = {d: i for i, d in enumerate(dids)}
    k = max((len(per) for per in details.values()), default=0)
    cand = np.full((len(qids), k), -1, np.int32)
    inl = np.full((len(qids), k), -1, np.int32)
    tf = np.full((len(qids), k, 3, 3), np.nan, np.float32)
    for qi, q in enumerate(qids):
        for j, (d, (n, t)) in enumerate(details[q].items()):
            cand[qi, j], inl[qi, j] = pos[d], int(n)
            if t is not None:
                tf[qi, j] = np.asarray(t, dtype=np.float32)
    return atomic_write_npz(
        path,
        query_ids=np.array(qids, dtype=str),
        db_ids=np.array(dids, dtype=str),
        candidates=cand,
        inliers=inl,
        transforms=tf,
    )


def read_verification(path: str | os.PathLike) -> Verification:
    """The verification file at ``path`` as ``{query: {candidate: (inliers, transform or
    None)}}``; a file that is not one raises :class:`~ilias_rerank.FormatError`."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            qids, dids = [str(q) for q in z["query_ids"]], [str(d) for d in z["db_ids"]]
            cand, inl, tf = z["candidates"], z["inliers"], z["transforms"]
    except (OSError, KeyError, ValueError) as exc:
        raise FormatError(f"{path}: not a verification file ({exc})") from None
    q, k = cand.shape if cand.ndim == 2 else (-1, -1)
    if q != len(qids) or inl.shape != (q, k) or tf.shape != (q, k, 3, 3):
        raise FormatError(
            f"{path}: expected candidates, inliers (Q, K) and transforms (Q, K, 3, 3) for "
            f"{len(qids)} queries, got {cand.shape}, {inl.shape}, {tf.shape}"
        )
    if cand.size and (cand.max() >= len(dids) or cand.min() < -1):
        raise FormatError(f"{path}: candidate indices outside 0..{len(dids) - 1}")
    out: Verification = {}
    for qi, query in enumerate(qids):
        row = {}
        for j in np.nonzero(cand[qi] >= 0)[0]:
            t = tf[qi, j].astype(np.float64)
            row[dids[cand[qi, j]]] = (int(inl[qi, j]), t if np.isfinite(t).all() else None)
        out[query] = row
    return out
