"""The job's two stages on this machine (no Ray): extraction batches and re-ranking query
groups, in this process.

Extraction runs each batch through the one extraction pool
(:mod:`~ilias_rerank.extractors.pool`): ``workers`` threads (the work releases the GIL),
or ``isolate=True`` worker processes started as ``python -m ...`` that die with this one.
An image that fails or kills its process is that image's failure; the job's journal
(:mod:`~ilias_rerank.scale.journal`) makes one that kills this whole process cost only
itself on the next run. Nothing is spawned from the caller's script. Re-ranking runs in
this process on the Rust core's own ``workers`` threads, one group of queries at a time.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from .extraction import ExtractorSpec, extract_batch

__all__ = ["LocalBackend"]

_STATE: dict[str, Any] = {}


def rerank_group(
    root: str, group: dict, config: dict | None, threads: int, store: Any = None
) -> dict:
    """Re-rank one group of queries against the store at ``root`` (or ``store``, the
    caller's open one): ``group`` maps a query id to ``(candidate ids best first, global
    scores)``; returns query -> re-ranked ids."""
    from ..config import RerankConfig
    from ..reranker import Reranker
    from ..store import FeatureStore

    if store is None:
        # A worker process (local pool or Ray) opens the store once; it is reopened when
        # the shard list changes. Shards are mapped on demand, a bounded number at once.
        stamp = os.stat(os.path.join(root, "shards.json"))
        key = ("store", root, stamp.st_mtime_ns, stamp.st_size, stamp.st_ino)
        store = _STATE.get(key)
        if store is None:
            old = next((k for k in _STATE if k[:2] == ("store", root)), None)
            if old is not None:
                _STATE.pop(old).close()
            store = _STATE[key] = FeatureStore(root)
    settings = dict(config or {})
    if not settings.get("num_threads"):  # the user's own thread count wins
        settings["num_threads"] = threads
    cfg = RerankConfig(**settings)
    shortlists = {q: dict(zip(ids, scores, strict=True)) for q, (ids, scores) in group.items()}
    found = Reranker(store, cfg, workers=1).rerank_results(store, shortlists, progress=False)
    return {q: result.ranked_ids(ids) for q, (ids, result) in found.items()}


class LocalBackend:
    name = "local"

    def __init__(self, workers: int = 1, isolate: bool = False) -> None:
        if not isinstance(workers, int) or not 1 <= workers <= 1024:
            raise ValueError(f"workers: expected an int in 1..=1024, got {workers!r}")
        self.workers = workers
        self.isolate = isolate

    def close(self) -> None:
        """Nothing to release: each stage's pool is closed when the stage ends."""

    def extract(self, batches, source, spec: ExtractorSpec, root, on_done, journal=None) -> None:
        """Each batch through the pool in turn (its images over the workers). Stopped
        midway (a signal), what the current batch committed is handed to ``on_done`` too,
        to be registered."""
        from ..store import shard_path

        extractor = spec.build()
        for batch in batches:
            partial: list = []
            try:
                result = extract_batch(
                    batch,
                    source,
                    extractor,
                    root,
                    workers=self.workers,
                    isolate=self.isolate,
                    journal=journal,
                    partial=partial,
                )
            except BaseException:
                if partial and (shard_path(root, batch.name) / "manifest.json").exists():
                    on_done(partial[0])
                raise
            on_done(result)

    def rerank(
        self, root, groups: Sequence[dict], config: dict | None, on_done, store=None
    ) -> None:
        """``store``: the caller's open store (else the store at ``root`` is opened for
        the call); each group on ``workers`` threads of the core."""
        from ..store import FeatureStore

        threads = self.workers if self.workers > 1 else 0  # 0: the core's default
        own = store is None
        if own:
            store = FeatureStore(root)
        try:
            for group in groups:
                on_done(rerank_group(str(root), group, config, threads, store))
        finally:
            if own:
                store.close()
