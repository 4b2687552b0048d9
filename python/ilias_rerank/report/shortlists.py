"""The report of a ``rerank-shortlists`` job: its input shortlists (the global ranking),
its output file (the re-ranked one), its feature store and its image sources.

The job's workers return only each query's new order, so the inliers and transforms the
page shows are found again here for the candidates it shows (the top ``top`` of both
rankings, a few thousand pairs a second) and recorded beside the output as
``<out>.verification.npz`` (:mod:`.record`'s format)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..reranker import by_score
from .record import write_verification

__all__ = ["shortlist_job_report"]


def shortlist_job_report(
    shortlists: str | os.PathLike,
    out: str | os.PathLike,
    store: str | os.PathLike,
    images: Any,
    *,
    config: Any = None,
    top: int = 10,
    match_pictures: int = 5,
    trust_pickle: bool = False,
    summary: dict | None = None,
    progress: bool = True,
) -> Path:
    """Write ``<out stem>.report.html`` beside ``out``; return its path. ``images``: what
    the job read images from (a folder, TSV, tar files, an
    :class:`~ilias_rerank.sources.ImageSource`, or a list of them)."""
    from ..reranker import Reranker, load_similarities
    from ..sources import open_source
    from ..store import FeatureStore
    from .build import write_report

    out = Path(out)
    global_sims = load_similarities(shortlists, trust_pickle=trust_pickle)
    reranked = load_similarities(out, trust_pickle=trust_pickle)
    features = FeatureStore(store)
    try:
        have = set(features.ids)
        heads = {}
        for q, ranking in reranked.items():
            if q not in have:
                continue
            shown = list(
                dict.fromkeys(by_score(global_sims.get(q, {}))[:top] + by_score(ranking)[:top])
            )
            scores = global_sims.get(q, {})
            heads[q] = {d: float(scores.get(d, 0.0)) for d in shown if d in have}
        found = Reranker(features, config).rerank_results(features, heads, progress=progress)
        details = {
            q: {d: (int(r.inliers[j]), r.transforms[j]) for j, d in enumerate(ids)}
            for q, (ids, r) in found.items()
        }
        write_verification(Path(str(out) + ".verification.npz"), details)
        source = open_source(images)
        settings = {
            "shortlists": str(shortlists),
            "results": str(out),
            "store": str(store),
            "queries": len(reranked),
        }
        if summary:
            settings.update(
                {k: summary[k] for k in ("k", "pairs", "backend", "workers") if k in summary}
            )
        return write_report(
            out.with_name(out.stem + ".report.html"),
            global_sims,
            reranked,
            query_images=source.read,
            db_images=source.read,
            verification=details,
            query_features=features,
            db_features=features,
            config=config,
            settings=settings,
            top=top,
            match_pictures=match_pictures,
            title=f"ilias-rerank: {out.name}",
            progress=progress,
        )
    finally:
        features.close()
