"""How a batch of images is run through an extractor: in this process, over worker
processes (a CPU backend on every core), or in GPU batches with the decoding done beside.

Every path returns the results in input order and keeps going past images that fail (the
caller collects the failures). Workers are spawned (never forked: torch and OpenCV keep
threads), each builds the same extractor from its settings and runs with one thread, so a
result never depends on the number of workers. A worker that dies (killed, out of memory)
fails only the image that killed it (:func:`_run_processes`); the rest are kept.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .._progress import progress as progress_bar
from ..errors import ConfigError, ExtractionError, IliasRerankError
from ..features import LocalFeatures
from .base import IMAGE_ERRORS, Extractor

__all__ = [
    "GPU_BATCH",
    "MAX_WORKERS",
    "check_workers",
    "run_batch",
    "run_images",
    "set_threads",
    "usable_cores",
]

#: Largest ``workers`` accepted (a bound on the processes one call may start).
MAX_WORKERS = 256
#: Images detected per GPU forward (one working shape each).
GPU_BATCH = 16
#: Fewer images than this run in this process: starting workers costs more than they save.
MIN_IMAGES_FOR_POOL = 4

#: ``(index, features or None, (name, reason) or None)`` for each image, in input order.
Outcome = tuple[int, "LocalFeatures | None", "tuple[str, str] | None"]


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def check_workers(workers: Any) -> int:
    """``workers`` as a count (``None``: every usable core), range-checked."""
    if workers is None:
        return usable_cores()
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= MAX_WORKERS:
        raise ConfigError(f"workers: expected an int in 1..={MAX_WORKERS} or None, got {workers!r}")
    return workers


def _failure(source: Any, index: int, exc: BaseException) -> tuple[str, str]:
    from ..images import describe_source

    return describe_source(source, index), f"{type(exc).__name__}: {exc}"


def _one(extractor, index: int, source: Any) -> Outcome:
    try:
        return index, extractor(source, index), None
    except (IliasRerankError, *IMAGE_ERRORS) as exc:
        return index, None, _failure(source, index, exc)


def run_images(extractor, items: list, workers: int) -> Iterator[Outcome]:
    """Every item through ``extractor``, in input order (see the module docstring)."""
    if extractor.device != "cpu":
        yield from _run_gpu(extractor, items, workers)
    elif workers > 1 and len(items) >= MIN_IMAGES_FOR_POOL:
        yield from _run_processes(extractor, items, min(workers, len(items)))
    else:
        for index, source in enumerate(items):
            yield _one(extractor, index, source)


# --- worker processes ------------------------------------------------------------------------

_WORKER: dict[str, Any] = {}


def set_threads(extractor: Extractor, threads: int) -> None:
    """Give the library ``extractor`` computes with (torch, OpenCV) ``threads`` threads."""
    if extractor.requires[0] == "torch":
        import torch

        torch.set_num_threads(threads)
    if "cv2" in extractor.requires:
        import cv2

        cv2.setNumThreads(threads)


def _init_worker(spec: tuple) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from . import make_extractor

    method, backend, args, kwargs = spec
    extractor = make_extractor(method, *args, backend=backend, **dict(kwargs))
    set_threads(extractor, 1)
    _WORKER["extractor"] = extractor


def _work(index: int, source: Any) -> Outcome:
    return _one(_WORKER["extractor"], index, source)


#: Pool restarts one call allows after dead workers before failing what is left.
MAX_RESTARTS = 16


def _pool(extractor, processes: int):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(
        processes,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
        initargs=(extractor.spec,),
    )


def _mapped(extractor, items: list, start: int, processes: int) -> Iterator[Outcome]:
    """Outcomes of ``items[start:]`` from one pool, in order; a dead worker raises
    ``BrokenProcessPool`` at the first image not yet returned."""
    rest = len(items) - start
    chunk = max(1, min(8, rest // (4 * processes)))
    pool = _pool(extractor, min(processes, rest))
    try:
        yield from pool.map(_work, range(start, len(items)), items[start:], chunksize=chunk)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _run_processes(extractor, items: list, processes: int) -> Iterator[Outcome]:
    """Over worker processes, in order. When a worker dies, the first image not returned
    is run again alone: if it kills that worker too it fails ("the worker process
    extracting it stopped"), else it was another image's fault; then a fresh pool goes on
    from the next image. Nothing returned before is lost or redone."""
    from concurrent.futures.process import BrokenProcessPool

    from ..images import describe_source

    start, restarts = 0, 0
    while start < len(items):
        try:
            for outcome in _mapped(extractor, items, start, processes):
                start += 1
                yield outcome
        except BrokenProcessPool as exc:
            restarts += 1
            reason = (
                "the worker process extracting it stopped (killed, out of memory, or it "
                f"could not start: {exc})"
            )
            if restarts > MAX_RESTARTS:
                for index in range(start, len(items)):
                    yield index, None, (describe_source(items[index], index), reason)
                return
            try:
                yield next(_mapped(extractor, items[: start + 1], start, 1))
            except BrokenProcessPool:
                yield start, None, (describe_source(items[start], start), reason)
            start += 1


# --- GPU batches -----------------------------------------------------------------------------


def _run_gpu(extractor, items: list, workers: int) -> Iterator[Outcome]:
    """Decode in ``workers`` threads while the GPU detects: images are taken a window at a
    time, grouped by working shape, detected ``GPU_BATCH`` at a time, returned in order."""
    window = 4 * GPU_BATCH

    def prepare(index: int):
        try:
            return extractor.prepare(items[index], index)
        except (IliasRerankError, *IMAGE_ERRORS) as exc:
            return exc

    with ThreadPoolExecutor(max(1, workers)) as pool:
        pending = [pool.submit(prepare, i) for i in range(min(window, len(items)))]
        start = 0
        while start < len(items):
            stop = min(start + window, len(items))
            prepared = [f.result() for f in pending]
            pending = [pool.submit(prepare, i) for i in range(stop, min(stop + window, len(items)))]
            outcomes: dict[int, Outcome] = {}
            groups: dict[tuple, list[int]] = {}
            for offset, value in enumerate(prepared):
                index = start + offset
                if isinstance(value, BaseException):
                    outcomes[index] = (index, None, _failure(items[index], index, value))
                else:
                    groups.setdefault(value[0].shape, []).append(index)
            for indices in groups.values():
                for k in range(0, len(indices), GPU_BATCH):
                    part = indices[k : k + GPU_BATCH]
                    batch = [prepared[i - start] for i in part]
                    _detect_group(extractor, items, part, batch, outcomes)
            for index in range(start, stop):
                yield outcomes[index]
            start = stop


def _detect_group(extractor, items: list, indices: list[int], prepared: list, outcomes) -> None:
    arrays = [arr for arr, _ in prepared]
    try:
        detected = extractor._detect_many(arrays) if len(arrays) > 1 else [None]
    except IMAGE_ERRORS:
        # One odd image (or the batch's memory) failed the batch: each alone, so that only
        # the image that fails is reported.
        detected = [None] * len(arrays)
    for index, (arr, original), found in zip(indices, prepared, detected, strict=True):
        try:
            if found is None:
                found = extractor._detect(arr)
            outcomes[index] = (
                index,
                extractor.finish(found, (arr.shape[1], arr.shape[0]), original),
                None,
            )
        except (IliasRerankError, *IMAGE_ERRORS) as exc:
            outcomes[index] = (index, None, _failure(items[index], index, exc))


def run_batch(
    extractor: Extractor,
    images: Any,
    *,
    progress: bool | None,
    on_error: str,
    workers: int = 1,
) -> list[LocalFeatures | None]:
    """Every image through ``extractor`` (over ``workers`` processes on a CPU, in batches
    on a GPU: :mod:`~ilias_rerank.extractors.pool`); failures are collected, never stop
    the batch. ``on_error="raise"``: :class:`ExtractionError` with every result;
    ``"skip"``: a warning and ``None`` in their places."""
    import warnings

    if on_error not in ("raise", "skip"):
        raise ConfigError(f"on_error: expected 'raise' or 'skip', got {on_error!r}")
    items = (
        list(images)
        if isinstance(images, Sequence) and not isinstance(images, (str, bytes, bytearray))
        else [images]
    )
    if progress is None and len(items) <= 1:
        progress = False  # None: a bar when stderr is a terminal
    results: list[LocalFeatures | None] = []
    failures: dict[int, tuple[str, str]] = {}
    outcomes = run_images(extractor, items, workers)
    bar = progress_bar(
        outcomes, progress, desc=f"extract ({extractor.method})", unit="img", total=len(items)
    )
    for index, features, failure in bar:
        results.append(features)
        if failure is not None:
            failures[index] = failure
    if failures:
        listing = "; ".join(reason for _, reason in failures.values())
        message = f"{len(failures)} of {len(items)} images failed: {listing}"
        if on_error == "raise":
            raise ExtractionError(message, results, failures)
        warnings.warn(message, stacklevel=3)
    return results
