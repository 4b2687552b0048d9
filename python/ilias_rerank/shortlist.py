"""The first-stage shortlist: k nearest database images by inner product of global
embeddings (faiss), exact by default, IVF-PQ for large databases, optional query expansion.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ._extras import require
from .errors import ConfigError, DimensionMismatchError, NonFiniteError, ShapeError

__all__ = ["GlobalIndex", "Shortlist"]


@dataclass(frozen=True)
class Shortlist:
    """Per query: database positions (``indices``, best first) and their ``scores``."""

    indices: list[np.ndarray]
    scores: list[np.ndarray]


def _vectors(x, what: str, dim: int | None = None) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 2 or arr.dtype.kind not in "fiu":
        raise ShapeError(f"{what}: expected (n, dim) float32, got {arr.shape} {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise NonFiniteError(f"{what}: NaN or infinity")
    if dim is not None and arr.shape[1] != dim:
        raise DimensionMismatchError(
            f"{what}: expected dimension {dim} (the index), got {arr.shape[1]}"
        )
    return arr


class GlobalIndex:
    """Inner-product index over ``(n, dim)`` database vectors.

    ``kind="exact"`` (default): brute force (faiss ``IndexFlatIP``), the ILIAS protocol.
    ``kind="ivfpq"``: inverted lists + product quantisation for large databases
    (``nlist`` lists, ``pq_bytes`` bytes a vector, ``nprobe`` lists visited); it needs at
    least ``39 * nlist`` training vectors.
    """

    def __init__(
        self,
        vectors,
        kind: str = "exact",
        *,
        nlist: int = 1024,
        pq_bytes: int = 32,
        nprobe: int = 16,
    ) -> None:
        faiss = require("faiss", "GlobalIndex")

        db = _vectors(vectors, "database vectors")
        if len(db) == 0:
            raise ShapeError("database vectors: expected at least one vector, got none")
        self.dim = db.shape[1]
        self.kind = kind
        if kind == "exact":
            self.index = faiss.IndexFlatIP(self.dim)
        elif kind == "ivfpq":
            if len(db) < 39 * nlist:
                raise ConfigError(
                    f"ivfpq: expected at least 39 x nlist = {39 * nlist} database vectors to "
                    f"train on, got {len(db)} (lower nlist or use kind='exact')"
                )
            if self.dim % pq_bytes:
                raise ConfigError(f"ivfpq: pq_bytes must divide the dimension {self.dim}")
            quantizer = faiss.IndexFlatIP(self.dim)
            self.index = faiss.IndexIVFPQ(
                quantizer, self.dim, nlist, pq_bytes, 8, faiss.METRIC_INNER_PRODUCT
            )
            self.index.train(db)
            self.index.nprobe = nprobe
            self._quantizer = quantizer  # keep alive
        else:
            raise ConfigError(f"kind: expected 'exact' or 'ivfpq', got {kind!r}")
        self.index.add(db)
        self._db = db

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def search(
        self, queries, k: int = 100, *, expansion: int = 0, expansion_alpha: float = 1.0
    ) -> Shortlist:
        """The top ``k`` per query. ``expansion=n`` > 0 re-queries with the query plus its
        top ``n`` neighbours weighted by similarity^``expansion_alpha``, re-normalised."""
        q = _vectors(queries, "query vectors", self.dim)
        if k < 1:
            raise ConfigError(f"k: expected >= 1, got {k}")
        k = min(k, len(self))
        scores, idx = self.index.search(q, k)
        if expansion > 0:
            n = min(expansion, k)
            w = np.maximum(scores[:, :n], 0.0) ** expansion_alpha
            expanded = q + np.einsum("qn,qnd->qd", w, self._db[np.maximum(idx[:, :n], 0)])
            expanded /= np.maximum(np.linalg.norm(expanded, axis=1, keepdims=True), 1e-12)
            scores, idx = self.index.search(np.ascontiguousarray(expanded, np.float32), k)
        keep = [row >= 0 for row in idx]  # faiss pads with -1 when fewer than k are found
        return Shortlist(
            indices=[row[m].astype(np.int64) for row, m in zip(idx, keep, strict=True)],
            scores=[row[m] for row, m in zip(scores, keep, strict=True)],
        )

    def search_ids(self, queries, ids: Sequence[str], k: int = 100, **kw) -> list[dict[str, float]]:
        """Like :meth:`search`, as ``{db_id: score}`` per query (ILIAS's JSON layout)."""
        if len(ids) != len(self):
            raise ShapeError(f"ids: expected {len(self)} (one per vector), got {len(ids)}")
        res = self.search(queries, k, **kw)
        return [
            {ids[j]: float(s) for j, s in zip(row, sc, strict=True)}
            for row, sc in zip(res.indices, res.scores, strict=True)
        ]
