"""The job's two parallel stages on local worker processes (no Ray): extraction batches
and re-ranking query groups. ``workers <= 1`` runs them in this process. Worker processes
are started with ``spawn`` (safe with torch and the Rust pools), each builds its extractor
or opens the store once. A worker that dies (killed, out of memory) breaks its pool: the
pool is rebuilt and the unfinished work submitted again (at most ``retries`` times), so a
dead worker costs time, never results; each batch resumes its own shard.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from ..errors import IliasRerankError
from .extraction import Batch, BatchResult, ExtractorSpec, extract_batch

__all__ = ["LocalBackend"]

_STATE: dict[str, Any] = {}


def _init_extract(source, spec: ExtractorSpec) -> None:
    _STATE["source"], _STATE["extractor"] = source, spec.build()


def _run_extract(batch: Batch, root: str) -> BatchResult:
    return extract_batch(batch, _STATE["source"], _STATE["extractor"], root)


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

    def __init__(self, workers: int = 1, retries: int = 3) -> None:
        if not isinstance(workers, int) or not 1 <= workers <= 1024:
            raise ValueError(f"workers: expected an int in 1..=1024, got {workers!r}")
        self.workers = workers
        self.retries = retries

    def close(self) -> None:
        """Nothing to release: each stage's pool is closed when the stage ends."""

    def threads_per_worker(self) -> int:
        return max(1, (os.cpu_count() or 1) // self.workers)

    def _pool(self, initializer=None, initargs=()) -> ProcessPoolExecutor:
        import multiprocessing

        return ProcessPoolExecutor(
            self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=initializer,
            initargs=initargs,
        )

    def _run(
        self,
        items: Sequence[Any],
        submit: Callable[[ProcessPoolExecutor, Any], Any],
        on_done: Callable[[Any, Any], None],
        pool_args: tuple,
    ) -> None:
        pending = list(items)
        for _ in range(self.retries + 1):
            if not pending:
                return
            pool = self._pool(*pool_args)
            try:
                futures = {submit(pool, item): item for item in pending}
                while futures:
                    done, _ = wait(futures, return_when=FIRST_COMPLETED)
                    for f in done:
                        item = futures.pop(f)
                        on_done(item, f.result())
                        pending.remove(item)
            except BrokenProcessPool:
                continue  # a worker died: the rest is submitted again to a new pool
            finally:
                pool.shutdown(wait=False, cancel_futures=True)
        if pending:
            raise IliasRerankError(
                f"{len(pending)} work items failed after {self.retries} restarts of dead workers"
            )

    def extract(self, batches, source, spec: ExtractorSpec, root, on_done) -> None:
        if self.workers <= 1:
            extractor = spec.build()
            for batch in batches:
                on_done(extract_batch(batch, source, extractor, root))
            return
        # Each worker gets an equal share of the cores unless told otherwise.
        if not spec.torch_threads:
            from dataclasses import replace

            spec = replace(spec, torch_threads=self.threads_per_worker())
        self._run(
            batches,
            lambda pool, b: pool.submit(_run_extract, b, str(root)),
            lambda _, result: on_done(result),
            (_init_extract, (source, spec)),
        )

    def rerank(
        self, root, groups: Sequence[dict], config: dict | None, on_done, store=None
    ) -> None:
        """``store``: the caller's open store, used in this process (``workers <= 1``);
        nothing is kept after the call."""
        if self.workers <= 1:
            for group in groups:
                on_done(rerank_group(str(root), group, config, 0, store))
            return
        threads = self.threads_per_worker()
        self._run(
            list(range(len(groups))),
            lambda pool, g: pool.submit(rerank_group, str(root), groups[g], config, threads),
            lambda _, result: on_done(result),
            (),
        )
