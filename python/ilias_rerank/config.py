"""``RerankConfig``: every setting of matching, verification, fusion and execution.

Its defaults are the Rust core's (``RerankConfig::default`` in ``rust/core/src/config.rs``);
a test checks that both sides agree. Field meanings are documented there and below.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Literal

__all__ = ["RerankConfig"]


@dataclass(frozen=True, kw_only=True)
class RerankConfig:
    """Settings of :func:`ilias_rerank.rerank` and :func:`ilias_rerank.verify_pair`.

    Keyword-only and frozen (:meth:`replace` makes a changed copy); the defaults are the
    Rust core's.

    Parameters
    ----------
    Matching
        ``mutual``: keep only mutual nearest neighbours (squared L2).
        ``ratio``: Lowe's test on L2 distances (best <= ratio * second best), or ``None``.
        ``min_similarity``: floor on the descriptors' cosine similarity, or ``None``.
    Verification
        ``model``: ``"homography"`` (affine, refined to a homography when enough inliers
        support it), ``"affine"`` or ``"similarity"``.
        ``inlier_threshold``: pixels in the candidate image, for an image whose longest side
        is ``reference_side``; larger images scale it up (never down); ``reference_side=0``
        makes it absolute.
        ``use_frames``: one hypothesis per correspondence from keypoint frames when both
        sides have them (deterministic); otherwise seeded LO-RANSAC.
        ``ransac_fallback_below``: with frames, when the frame hypotheses verify fewer
        inliers than this, seeded LO-RANSAC runs over the same correspondences too and the
        better model is kept (0: never).
        ``max_hypotheses``, ``ransac_max_iterations``, ``ransac_confidence``,
        ``local_optimisation_rounds``, ``homography_min_inliers``, ``max_scale_change``.
    Scoring
        ``min_inliers``: fewer inliers count as unverified (0 in the score).
        ``expansion``: spatially verified query expansion: at most this many of the best
        verified candidates (each with at least ``expansion_min_inliers`` inliers) join the
        query; every candidate is verified against them too and its score adds those
        inliers (0: off; costs up to ``expansion`` x the shortlist more pairs).
        ``fusion``: ``"lexicographic"`` (inliers, then global score) or ``"weighted"``
        (``fusion_weight * global + (1 - fusion_weight) * n / (n + inlier_saturation)``).
    Cascade (off by default; ``docs/cascade.md``)
        ``cascade_features``: when > 0, a first pass verifies every candidate with only the
        first ``cascade_features`` features of each image (store features strongest first:
        every extractor here does) and a second pass verifies again, with
        ``cascade_rich_features`` features (0: all), at most ``cascade_candidates``
        candidates per query: those the first pass leaves uncertain (below
        ``cascade_certain_inliers`` first-pass inliers; 0: none is certain), by first-pass
        inliers (uncounted: 3 beats 0), then global score, then tentative matches, then
        input order. Cost per query: M pairs at ``cascade_features`` plus at most
        ``cascade_candidates`` pairs at ``cascade_rich_features``. Expansion pairs use the
        first pass's features.
    Quantised features (:mod:`ilias_rerank.codes`)
        ``codes_hamming``: the largest Hamming distance between the signatures of two
        features of the same visual word that makes a tentative correspondence (0..256);
        ``codes_ratio``: the ratio test in Hamming space, ``(h + 1) / (h2 + 1)`` at most this
        (``h2`` the second nearest among the query feature's collisions), or ``None``;
        ``codes_sigma``: score a verified candidate by the sum over its inliers of
        ``exp(-h² / σ²)`` (``h`` each one's Hamming distance) instead of the inlier count
        (Hamming Embedding's weighting; expansion and consensus sum it likewise), or
        ``None`` (the count); ``min_inliers``, the cascade's choices and which images join
        expansion still read the count. Measured: σ = 16 with
        ``codes_hamming`` 28 (docs/accuracy.md).
    Execution
        ``seed``: seeds every random choice per (query, candidate) pair;
        ``num_threads``: 0 = all cores (or ``ILIAS_RERANK_NUM_THREADS``, then
        ``RAYON_NUM_THREADS``).

    Raises
    ------
    ConfigError
        A field of the wrong type or out of its range ("config.<field>: expected ...,
        got ..."), checked when the config is built.
    """

    mutual: bool = True
    ratio: float | None = 0.9
    min_similarity: float | None = None
    model: Literal["homography", "affine", "similarity"] = "homography"
    inlier_threshold: float = 8.0
    reference_side: float = 1024.0
    use_frames: bool = True
    max_hypotheses: int = 512
    ransac_fallback_below: int = 0
    ransac_max_iterations: int = 1000
    ransac_confidence: float = 0.999
    local_optimisation_rounds: int = 4
    homography_min_inliers: int = 8
    max_scale_change: float = 10.0
    min_inliers: int = 4
    expansion: int = 0
    expansion_min_inliers: int = 20
    cascade_features: int = 0
    cascade_candidates: int = 0
    cascade_rich_features: int = 0
    cascade_certain_inliers: int = 0
    fusion: Literal["lexicographic", "weighted"] = "lexicographic"
    fusion_weight: float = 0.5
    inlier_saturation: float = 20.0
    codes_hamming: int = 24
    codes_ratio: float | None = None
    codes_sigma: float | None = None
    seed: int = 0
    num_threads: int = 0

    def __post_init__(self) -> None:
        # Every field's type and range, checked by the core once, here: a bad value is a
        # ConfigError ("config.<field>: expected ..., got ...") before anything runs.
        # (bools for numeric fields included: the core refuses them for every caller).
        from . import _core

        _core.validate_config(self.to_dict())

    def to_dict(self) -> dict:
        """The plain dict the Rust core parses (and validates)."""
        return dataclasses.asdict(self)

    def replace(self, **changes) -> RerankConfig:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


_FIELDS = frozenset(f.name for f in dataclasses.fields(RerankConfig))
_dataclass_init = RerankConfig.__init__


@functools.wraps(_dataclass_init)
def _init(self, *args, **kwargs) -> None:
    # An unknown setting is a ConfigError naming it, not Python's TypeError.
    unknown = sorted(set(kwargs) - _FIELDS)
    if unknown:
        from .errors import ConfigError

        raise ConfigError(
            f"config: unknown setting {unknown[0]!r}: expected one of {sorted(_FIELDS)}"
        )
    _dataclass_init(self, *args, **kwargs)


RerankConfig.__init__ = _init  # type: ignore[method-assign]
