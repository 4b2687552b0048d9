"""Frozen result objects of :func:`rerank` and :func:`verify_pair`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

__all__ = ["PairVerification", "RerankResult"]


@dataclass(frozen=True)
class RerankResult:
    """A re-ranked shortlist (returned by :func:`~ilias_rerank.rerank`, never built by hand).

    Attributes
    ----------
    order, scores, inliers, num_matches, transforms, models, support, expansion, refined
        As below.

    ``order`` (M,) int64: indices into the candidates, best first.
    ``scores`` (M,) float64: fused scores aligned with ``order``, strictly decreasing.
    Per candidate, in *input* order: ``inliers`` (M,) int64, ``num_matches`` (M,) int64
    tentative correspondences, ``transforms`` (M, 3, 3) float64 mapping query pixels to
    candidate pixels (NaN where nothing verified), ``models`` (``"homography"``,
    ``"affine"``, ``"similarity"`` or ``None``), and ``support`` (M,) int64: the inliers
    it verifies with the expansion images (zeros without expansion).
    ``expansion``: indices of the candidates that joined the query (query expansion) or
    acted as pseudo-queries (:func:`~ilias_rerank.rerank_consensus`), empty otherwise.
    For :func:`~ilias_rerank.rerank_consensus`, ``inliers``, ``transforms`` and ``models``
    are each candidate's verification with the pseudo-query that supports it most.
    ``refined``: indices of the candidates the cascade's second pass re-verified (their
    ``inliers``, ``num_matches``, ``transforms`` and ``models`` are the second pass's), in
    the order the first pass chose them; empty without the cascade.
    """

    order: np.ndarray
    scores: np.ndarray
    inliers: np.ndarray
    num_matches: np.ndarray
    transforms: np.ndarray
    models: tuple[str | None, ...]
    support: np.ndarray
    expansion: np.ndarray
    refined: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int64))

    def ranked_ids(self, ids) -> list:
        """``ids`` (one per candidate, input order) in the new order."""
        return [ids[j] for j in self.order]

    def __len__(self) -> int:
        return int(self.order.shape[0])


@dataclass(frozen=True)
class PairVerification:
    """One verified pair (returned by :func:`~ilias_rerank.verify_pair` and
    :func:`~ilias_rerank.verify_correspondences`).

    Attributes
    ----------
    matches, distances, inlier_mask, transform, model, num_inliers
        As below.

    ``matches`` (K, 2) int64 rows ``[query_index, candidate_index]``; ``distances`` (K,)
    float32 squared L2 descriptor distances (Hamming distances of the signatures for
    :class:`~ilias_rerank.codes.QuantisedFeatures`); ``inlier_mask`` (K,) bool; ``transform``
    (3, 3) float64 query -> candidate pixels, or ``None``; ``model``; ``num_inliers``.
    """

    matches: np.ndarray
    distances: np.ndarray
    inlier_mask: np.ndarray
    transform: np.ndarray | None
    model: str | None
    num_inliers: int

    @property
    def inlier_matches(self) -> np.ndarray:
        return self.matches[self.inlier_mask]
