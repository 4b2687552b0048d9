"""``rerank-shortlists``: the whole job from a kNN shortlist file to a re-ranked one.

1. Read the shortlists (ILIAS JSON ``{query: {db: score}}``, ILIAS pickle with
   ``trust_pickle``, or ``.npz``); every query's candidates by descending score.
2. Take the store's writer lock (a second job on the same store gets
   :class:`~ilias_rerank.errors.StoreLockedError`, or waits ``lock_timeout`` seconds), and
   adopt what a killed run left (orphan shards, temporary files).
3. The ids needed: the queries and the union of their top ``k``; those the store lacks
   are extracted from the image source, batch by batch, each batch into a new shard,
   registered in groups as batches finish (a second run extracts nothing new).
4. Re-rank each query's top ``k`` against the store (opened once), in groups of queries.
5. Write one file: the re-ranked top ``k``, then the rest of the global ranking, with
   distinct decreasing rank-based scores. Candidates whose image failed keep their global
   place; a query whose own image failed keeps its global ranking. The failures are listed
   in ``<out>.failures.tsv``.
6. Merge the store's small shards (``merge``, on by default), then check the failure
   budget: more failed images than ``max_failed`` is a
   :class:`~ilias_rerank.errors.FailureBudgetError` (the files are written first).
"""

from __future__ import annotations

import math
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._io import atomic_write
from .._progress import Counter
from ..config import RerankConfig
from ..errors import ConfigError, FailureBudgetError, InvalidInputError
from ..reranker import by_score, load_similarities, rank_scores, save_similarities
from ..sources import ImageSource, open_source
from ..store import SHARDS_FILE, FeatureStore, register_shards, writer_lock
from ..store.lock import check_timeout
from ..store.maintenance import (
    MERGE_TARGET_BYTES,
    UnhealthyStoreError,
    adopt_orphans,
    check_target_bytes,
    merge_store,
)
from .extraction import ExtractorSpec, plan_batches

__all__ = ["ShortlistJob", "rerank_shortlists"]


def _ranked(shortlist: dict[str, float]) -> list[str]:
    return by_score(shortlist)  # the pipeline's order too


def merge_order(head: list[str], reranked: list[str], failed: set[str]) -> list[str]:
    """``head`` (global order) re-ordered: ids in ``failed`` keep their places, the others
    fill the remaining places in ``reranked`` order."""
    fill = iter(reranked)
    return [d if d in failed else next(fill) for d in head]


def _check_picklable(source) -> None:
    """Worker processes and Ray get the source by pickling: say so up front."""
    import pickle

    try:
        pickle.dumps(source)
    except Exception as exc:
        raise ConfigError(
            "images: with workers > 1 or --ray the image source must be picklable (a "
            f"module-level function, not a lambda or closure): {exc}"
        ) from None


#: Largest score magnitude: the core reads scores as float32.
FLOAT32_MAX = 3.4028234663852886e38


def _check_scores(shortlists: dict, path) -> None:
    """Scores finite in float32 and ids that fit one line (the failures file, the
    journal) everywhere, before any work (the core or a later stage would refuse them
    mid-job)."""
    for q, v in shortlists.items():
        bad = next((d for d, x in v.items() if not abs(x) <= FLOAT32_MAX), None)
        if bad is not None:
            raise InvalidInputError(
                f"{path}: query {q!r}: expected finite float32 scores (|x| <= "
                f"{FLOAT32_MAX:.4g}), got {v[bad]} for {bad!r}"
            )
        for image_id in (q, *v):
            if "\n" in image_id or "\r" in image_id:
                raise InvalidInputError(
                    f"{path}: expected ids without line breaks, got {image_id!r}"
                )


@dataclass
class ShortlistJob:
    """Settings of one ``rerank-shortlists`` run (see :func:`rerank_shortlists`)."""

    shortlists: str | os.PathLike
    images: Any
    store: str | os.PathLike
    out: str | os.PathLike
    k: int = 100
    workers: int = 1
    ray: bool = False
    ray_address: str | None = None
    #: How to extract what the store lacks; ``None``: re-rank the features the store holds,
    #: whatever extractor made them, and extract nothing (a missing id is an error).
    extractor: ExtractorSpec | None = field(default_factory=ExtractorSpec)
    config: RerankConfig | None = None
    batch_size: int = 256
    query_group: int = 32
    trust_pickle: bool = False
    progress: bool | None = None
    #: Failed images allowed: an int is a count, a float in [0, 1] a fraction of the images
    #: the job needs (its queries and their top ``k``, however many runs it took). Beyond
    #: it the job raises FailureBudgetError (exit 3).
    max_failed: int | float = 0.01
    #: Extract in isolated worker processes (an image that crashes its process fails
    #: alone, within the run) instead of threads of this process.
    isolate: bool = False
    #: Merge the store's small shards at the end (``merge_target_bytes`` each).
    merge: bool = True
    merge_target_bytes: int = MERGE_TARGET_BYTES
    #: Seconds to wait for another writer of the store (0: fail at once).
    lock_timeout: float = 0.0
    #: Seconds between registrations of finished shards (each rewrites shards.json).
    register_every: float = 10.0
    timing: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, value, lo, hi in (
            ("k", self.k, 1, 1 << 20),
            ("workers", self.workers, 1, 1024),
            ("batch_size", self.batch_size, 1, 1 << 20),
            ("query_group", self.query_group, 1, 1 << 20),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
                raise ConfigError(f"{name}: expected an int in {lo}..={hi}, got {value!r}")
        mf = self.max_failed
        if isinstance(mf, bool) or not isinstance(mf, (int, float)):
            raise ConfigError(f"max_failed: expected an int >= 0 or a float in [0, 1], got {mf!r}")
        if (isinstance(mf, int) and not 0 <= mf <= 1 << 40) or (
            isinstance(mf, float) and not 0.0 <= mf <= 1.0
        ):
            raise ConfigError(f"max_failed: expected an int >= 0 or a float in [0, 1], got {mf!r}")
        if not isinstance(self.merge, bool):
            raise ConfigError(f"merge: expected True or False, got {self.merge!r}")
        if not isinstance(self.isolate, bool):
            raise ConfigError(f"isolate: expected True or False, got {self.isolate!r}")
        check_timeout(self.lock_timeout)  # the lock's own check, before any work
        every = self.register_every
        if (
            isinstance(every, bool)
            or not isinstance(every, (int, float))
            or not 0 <= every <= 86400
        ):
            raise ConfigError(f"register_every: expected seconds in 0..=86400, got {every!r}")
        check_target_bytes(self.merge_target_bytes)  # the merge's own check
        if isinstance(self.config, dict):
            self.config = RerankConfig(**self.config)
        if self.config is not None and not isinstance(self.config, RerankConfig):
            raise ConfigError(
                f"config: expected RerankConfig, dict or None, got {type(self.config).__name__}"
            )
        if self.extractor is not None and not isinstance(self.extractor, ExtractorSpec):
            raise ConfigError(
                f"extractor: expected an ExtractorSpec or None, got {type(self.extractor).__name__}"
            )
        self.store = Path(self.store)
        self.out = Path(self.out)
        if self.out.suffix not in (".json", ".npz", ".pkl", ".pickle"):
            raise ConfigError(f"--out: expected a .json, .npz or .pkl file, got {self.out}")
        if (self.store / "manifest.json").is_file() and not (self.store / SHARDS_FILE).is_file():
            raise InvalidInputError(
                f"{self.store}: a single store; rerank-shortlists writes a sharded store "
                "(pass a new or sharded directory)"
            )

    def backend(self):
        if self.ray:
            from .ray_backend import RayBackend

            device = self.extractor.device if self.extractor is not None else "cpu"
            gpus = 1 if device.startswith("cuda") else 0
            return RayBackend(self.ray_address, workers=self.workers, num_gpus=gpus)
        from .local import LocalBackend

        return LocalBackend(self.workers, isolate=self.isolate)

    def _store(self) -> FeatureStore | None:
        if (self.store / SHARDS_FILE).is_file():
            return FeatureStore(self.store)
        return None

    def run(self, source: ImageSource | None = None) -> dict:
        with writer_lock(self.store, timeout=self.lock_timeout, reentrant=True):
            summary = self._locked_run(source)
        if summary["failed"] > summary["failure_budget"]:
            raise FailureBudgetError(
                f"{summary['failed']} images failed, expected at most "
                f"{summary['failure_budget']} (max_failed={self.max_failed!r}); the results "
                f"are in {summary['out']}, the failures in {summary['failures']}",
                summary,
            )
        return summary

    def _locked_run(self, source: ImageSource | None) -> dict:
        t_start = time.perf_counter()
        shortlists = load_similarities(self.shortlists, trust_pickle=self.trust_pickle)
        if not shortlists:
            raise InvalidInputError(f"{self.shortlists}: no queries")
        _check_scores(shortlists, self.shortlists)
        ranked = {q: _ranked(v) for q, v in shortlists.items()}
        if self.out.suffix != ".json" and len({len(r) for r in ranked.values()}) > 1:
            raise InvalidInputError(
                f"--out {self.out}: ILIAS arrays need shortlists of one length, got lengths "
                f"{sorted({len(r) for r in ranked.values()})[:5]} (write a .json instead)"
            )
        heads = {q: r[: self.k] for q, r in ranked.items()}
        needed = set(heads) | {d for h in heads.values() for d in h}
        self.adopted = adopt_orphans(self.store)  # what a killed run left
        store = self._store()
        have = set(store.ids) if store is not None else set()
        if store is not None:
            store.close()
        # Features of another method or backend are refused even when nothing is missing
        # (re-ranking them would silently answer for another extractor).
        held = store.extractor.get("name") if store is not None and len(store) else None
        missing = sorted(needed - have)
        if self.extractor is None:
            if missing:
                raise InvalidInputError(
                    f"{self.store}: lacks {len(missing)} of the {len(needed)} ids this job "
                    f"needs (first: {missing[:3]}), and a job without an extractor "
                    "(--method store) extracts nothing"
                )
        elif held is not None and held != self.extractor.manifest_name():
            raise ConfigError(
                f"{self.store}: expected features of {self.extractor.manifest_name()!r} "
                f"(--method {self.extractor.method}, backend "
                f"{self.extractor.backend or 'default'}), got a store of {held!r} (use "
                f"another --store or the store's extractor{_held_hint(held)})"
            )
        if self.extractor is not None and held is not None:
            _check_codes(self.store, store.extractor.get("codes"), self.extractor.codes)
        if missing:
            # The extractor is built here once before any worker: a bad setting is a clear
            # error now, and a store of other features is refused before any work.
            params = self.extractor.params(remote=self.ray)
            if store is not None and len(store) and store.extractor != params:
                raise ConfigError(
                    f"{self.store}: holds features of {store.extractor}, this job extracts "
                    f"{params} (use another --store or the store's settings)"
                )
        self.timing["plan_s"] = time.perf_counter() - t_start

        backend = self.backend()
        try:
            return self._run(
                shortlists, ranked, heads, needed, missing, have, backend, source, t_start
            )
        finally:
            backend.close()

    def _run(
        self, shortlists, ranked, heads, needed, missing, have, backend, source, t_start
    ) -> dict:
        # Extraction of what the store lacks, one shard per batch.
        failed: dict[str, str] = {}
        counts = {"extracted": 0, "reused": 0}
        t0 = time.perf_counter()
        if missing:
            source = open_source(
                self.images if source is None else source, index_dir=self.store / "tar-index"
            )
            if self.isolate or self.ray:
                _check_picklable(source)
            source.prepare(missing)
            # Batches are cut from every id the job needs; each carries only its missing
            # ids and writes a new shard (the run's tag), never one a past run left.
            batches = plan_batches(
                sorted(needed), self.batch_size, skip=have, tag=secrets.token_hex(4)
            )
            bar = Counter(
                len(batches), self.progress, desc=f"extract ({backend.name})", unit="batch"
            )
            finished: list[str] = []
            last = [time.monotonic()]

            def register() -> None:
                # Taken off the list first: a registration that fails changes nothing and
                # leaves its shards as orphans for the next run, never retried here.
                names = list(finished)
                finished.clear()
                if names:
                    register_shards(self.store, names)
                last[0] = time.monotonic()

            def done(result) -> None:
                bar.update()
                failed.update(result.failed)
                counts["extracted"] += result.extracted
                counts["reused"] += result.reused
                finished.append(result.shard)
                if time.monotonic() - last[0] >= self.register_every:
                    register()

            try:
                with bar:
                    if self.ray:
                        backend.extract(batches, source, self.extractor, self.store, done)
                    else:
                        from .journal import JOURNAL_FILE, Journal

                        with Journal(self.store / JOURNAL_FILE) as journal:
                            backend.extract(
                                batches, source, self.extractor, self.store, done, journal
                            )
            finally:
                register()  # what finished is registered, even when the stage failed
        self.timing["extract_s"] = time.perf_counter() - t0

        # Re-ranking, in groups of queries, on the one open store.
        store = self._store()
        try:
            return self._rerank_and_write(
                shortlists,
                ranked,
                heads,
                needed,
                missing,
                failed,
                counts,
                store,
                backend,
                t_start,
            )
        finally:
            if store is not None:
                store.close()

    def _rerank_and_write(
        self, shortlists, ranked, heads, needed, missing, failed, counts, store, backend, t_start
    ) -> dict:
        have = set(store.ids) if store is not None else set()
        work: dict[str, tuple[list[str], list[float]]] = {}
        for q, head in heads.items():
            if q not in have:
                continue
            ids = [d for d in head if d in have]
            work[q] = (ids, [shortlists[q][d] for d in ids])
        items = list(work.items())
        groups = [
            dict(items[k : k + self.query_group]) for k in range(0, len(items), self.query_group)
        ]
        reranked: dict[str, list[str]] = {}
        t0 = time.perf_counter()
        if groups:
            bar = Counter(
                len(groups), self.progress, desc=f"re-rank ({backend.name})", unit="group"
            )

            def ranked_done(result: dict) -> None:
                bar.update()
                reranked.update(result)

            config = None if self.config is None else self.config.to_dict()
            with bar:
                backend.rerank(self.store, groups, config, ranked_done, store=store)
        self.timing["rerank_s"] = dt = time.perf_counter() - t0
        pairs = sum(len(ids) for ids, _ in work.values())
        self.timing["rerank_pairs_per_s"] = pairs / dt if dt else 0.0

        # One output file: re-ranked heads, then the global tails; rank-based scores.
        out: dict[str, dict[str, float]] = {}
        for q, ranking in ranked.items():
            head = heads[q]
            if q in reranked:
                lost = {d for d in head if d not in have}
                head = merge_order(head, reranked[q], lost)
            out[q] = rank_scores(head + ranking[self.k :])
        save_similarities(self.out, out)
        failures_path = Path(str(self.out) + ".failures.tsv")
        lines = "".join(f"{i}\t{' '.join(r.split())}\n" for i, r in sorted(failed.items()))
        atomic_write(failures_path, ("id\treason\n" + lines).encode())
        merged = None
        merge_refused = None
        if self.merge and store is not None:
            store.close()
            try:
                merged = merge_store(self.store, target_bytes=self.merge_target_bytes)
            except UnhealthyStoreError as exc:  # the results stand; the store is as it was
                merge_refused = str(exc)
        # The budget is the job's: a fraction of the images it needs, however many runs it
        # took (an image that failed is retried by every run, so it is counted again).
        budget = (
            self.max_failed
            if isinstance(self.max_failed, int)
            else math.floor(self.max_failed * len(needed))
        )
        self.timing["total_s"] = time.perf_counter() - t_start
        return {
            "queries": len(shortlists),
            "queries_reranked": len(reranked),
            "ids_needed": len(needed),
            "extracted": counts["extracted"],
            # In the store before this run, or committed by an earlier run's unfinished batch.
            "reused": len(needed) - len(missing) + counts["reused"],
            "failed": len(failed),
            "complete": not failed,
            "failure_budget": budget,
            "adopted": list(self.adopted),
            "shards": merged.shards if merged is not None else len(getattr(store, "shards", ())),
            "merge_refused": merge_refused,
            "pairs": pairs,
            "pairs_per_s": self.timing["rerank_pairs_per_s"],
            "backend": backend.name,
            "workers": self.workers,
            "out": str(self.out),
            "failures": str(failures_path),
            "timing": dict(self.timing),
        }


def rerank_shortlists(
    shortlists: str | os.PathLike,
    images: str | os.PathLike | ImageSource | Callable[[str], bytes],
    store: str | os.PathLike,
    out: str | os.PathLike,
    **settings: Any,
) -> dict:
    """Run the ``rerank-shortlists`` job (module docstring) and return its summary:
    ``queries``, ``ids_needed``, ``extracted``, ``reused``, ``failed``, ``pairs``,
    ``pairs_per_s``, the output paths and ``timing``. ``images`` is a folder, a TSV of
    ``id<TAB>path``, tar files, an :class:`~ilias_rerank.sources.ImageSource` or a
    function ``id -> bytes``; ``settings`` are :class:`ShortlistJob`'s fields (``k``,
    ``workers``, ``ray``, ``ray_address``, ``extractor``, ``config``, ...)."""
    source = images if isinstance(images, ImageSource) or callable(images) else None
    job = ShortlistJob(shortlists, images, store, out, **settings)
    return job.run(open_source(source) if source is not None else None)


def _held_hint(held: str) -> str:
    """How to ask for the extractor that made a store (its manifest name), e.g.
    ``: --method sift --backend opencv``; empty for names no extractor has."""
    from ..extractors import manifest_owner

    owner = manifest_owner(held)
    return f": --method {owner[0]} --backend {owner[1]}" if owner else ""


def _check_codes(path, held: dict | None, codes: str | None) -> None:
    """Codes of another vocabulary (or codes where descriptors are asked for, and the
    reverse) are refused even when nothing is missing: re-ranking them would silently
    answer for another vocabulary."""
    want = None
    if codes is not None:
        from ..codes import load_coder

        want = load_coder(codes).params()
    if held == want:
        return

    def said(entry: dict | None) -> str:
        return "descriptors (no --codes)" if entry is None else f"codes {entry}"

    raise ConfigError(
        f"{path}: holds {said(held)}, this job asks for {said(want)} (use another --store, "
        "or the store's --codes vocabulary)"
    )
