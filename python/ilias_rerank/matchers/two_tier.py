"""Two tiers: the fast pass re-ranks the whole shortlist; a learned matcher re-scores only
the candidates whose verdict is uncertain, at most ``top`` of them, so the cost per query
stays bounded (``top`` matcher calls).

Uncertain: among the first ``top`` of the fast order, those with fewer than
``certain_inliers`` inliers (a clearly verified candidate needs no second look). Each is
matched by the matcher, its matches verified by :func:`~ilias_rerank.verify_correspondences`
with the same settings, and it keeps the larger of the two inlier counts; then every
candidate is fused with its global score exactly as :func:`~ilias_rerank.rerank` does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from .. import _core
from ..api import _config, _features, _global_scores, rerank, verify_correspondences
from ..config import RerankConfig
from ..errors import ConfigError
from ..features import LocalFeatures
from ..results import RerankResult

__all__ = ["rerank_two_tier"]


def rerank_two_tier(
    query: LocalFeatures,
    candidates: Sequence[LocalFeatures],
    global_scores: Any = None,
    *,
    matcher,
    config: RerankConfig | Mapping | None = None,
    top: int = 10,
    certain_inliers: int = 30,
) -> RerankResult:
    """:func:`~ilias_rerank.rerank`, then ``matcher`` on the uncertain head (module
    docstring). ``inliers`` of the result hold the final counts; ``transforms`` and
    ``models`` stay those of the fast pass."""
    if not isinstance(top, int) or not 0 <= top <= 1000:
        raise ConfigError(f"top: expected an int in 0..=1000, got {top!r}")
    if not isinstance(certain_inliers, int) or certain_inliers < 1:
        raise ConfigError(f"certain_inliers: expected a positive int, got {certain_inliers!r}")
    query = _features(query, "query")
    candidates = [_features(c, f"candidate {j}") for j, c in enumerate(candidates)]
    fast = rerank(query, candidates, global_scores, config=config)
    inliers = fast.inliers.copy()
    cfg = _config(config)
    for j in fast.order[:top]:
        if inliers[j] >= certain_inliers:
            continue
        m = matcher.match(query, candidates[j])
        if len(m) < 4:
            continue
        v = verify_correspondences(
            query.keypoints[m[:, 0]],
            candidates[j].keypoints[m[:, 1]],
            candidate_size=candidates[j].image_size,
            config=cfg,
        )
        inliers[j] = max(inliers[j], v.num_inliers)
    # Verified score as in the fast pass: counted inliers plus any expansion support.
    verified = np.where(inliers >= cfg["min_inliers"], inliers, 0) + fast.support
    order, scores = _core.fuse(verified.astype(np.uint32), _global_scores(global_scores), cfg)
    return replace(fast, order=order, scores=scores, inliers=inliers)
