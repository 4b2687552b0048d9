"""The one extraction pool: how a batch of images is run through an extractor, used by
:func:`~ilias_rerank.extract_local`, ``ilias-rerank run / extract`` and
``rerank-shortlists`` alike.

- **Threads** (the default on a CPU): ``workers`` threads in this process. OpenCV's SIFT,
  kornia-rs, Pillow's decoder and torch release the GIL, so threads scale like processes
  (``benches/extract.py``) with nothing pickled, nothing spawned and nothing asked of the
  caller's script (no ``if __name__ == "__main__":`` guard, ``python -c``, notebooks,
  Ray actors). The libraries' own thread counts are set for the call (the usable cores
  shared among the workers) and restored after it.
- **Isolated processes** (``isolate=True``): ``workers`` processes started as
  ``python -m ilias_rerank.extractors.worker`` (never a re-run of the caller's script),
  each dying with this process (``PR_SET_PDEATHSIG`` and end of input). One image at a
  time each, so an image that kills its process (a decoder crash, an out-of-memory kill)
  is known exactly.
- **GPU batches** (an extractor on a GPU): decoding in ``workers`` threads while the GPU
  detects batches of one working shape.

**One failure rule** everywhere: an image whose extraction raises (any ``Exception``) or
returns no :class:`LocalFeatures` is that image's failure, named with the reason; an image
in flight when its process died is run again once, and fails ("killed its worker
process") when it is in flight at a second death. So a restart is bounded per culprit and
no image is ever failed untried. The results come back in input order; the caller
collects the failures (and a job keeps a journal of the images in flight, so that one
that kills the whole process costs only itself across runs: :mod:`ilias_rerank.scale.journal`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import Any

from .._progress import progress as progress_bar
from ..errors import ConfigError, ExtractionError
from ..features import LocalFeatures
from .base import IMAGE_ERRORS, Extractor
from .outcome import Outcome, describe, extract_one, is_image_error, set_threads

__all__ = [
    "GPU_BATCH",
    "MAX_WORKERS",
    "check_workers",
    "library_threads",
    "run_batch",
    "run_images",
    "set_threads",
    "usable_cores",
]

#: Largest ``workers`` accepted (a bound on the threads or processes one call may start).
MAX_WORKERS = 256
#: Images detected per GPU forward (one working shape each).
GPU_BATCH = 16


def _cgroup_cores() -> float | None:
    """The CPU quota of this process's cgroup in cores (v2 ``cpu.max``, v1 CFS), or None."""
    for quota_file, period_file in (
        ("/sys/fs/cgroup/cpu.max", None),
        ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_period_us"),
    ):
        try:
            with open(quota_file) as f:
                fields = f.read().split()
            if period_file is not None:
                with open(period_file) as f:
                    fields.append(f.read().strip())
        except (OSError, ValueError):
            continue
        if len(fields) >= 2 and fields[0] not in ("max", "-1"):
            try:
                return int(fields[0]) / int(fields[1])
            except (ValueError, ZeroDivisionError):
                return None
    return None


def usable_cores() -> int:
    """The cores this process may use: its affinity mask, bounded by its cgroup's CPU
    quota (not the machine's count)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    quota = _cgroup_cores()
    if quota is not None:
        cores = min(cores, int(quota + 0.5))
    return max(1, cores)


def check_workers(workers: Any) -> int:
    """``workers`` as a count (``None``: every usable core), range-checked."""
    if workers is None:
        return usable_cores()
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= MAX_WORKERS:
        raise ConfigError(f"workers: expected an int in 1..={MAX_WORKERS} or None, got {workers!r}")
    return workers


@contextlib.contextmanager
def library_threads(extractor: Extractor, threads: int):
    """:func:`set_threads` for the duration of a ``with`` block; the caller's settings
    are restored after it."""
    saved: list[Callable[[], None]] = []
    requires = getattr(extractor, "requires", ())
    if requires[:1] == ("torch",):
        import torch

        before = torch.get_num_threads()
        saved.append(lambda: torch.set_num_threads(before))
    if "cv2" in requires:
        import cv2

        cv_before = cv2.getNumThreads()
        saved.append(lambda: cv2.setNumThreads(cv_before))
    set_threads(extractor, threads)
    try:
        yield
    finally:
        for restore in saved:
            restore()


# --- the scheduler shared by threads and processes --------------------------------------------


def _scheduled(
    executor, count: int, slots: int, alone: Callable[[int], bool] | None
) -> Iterator[Outcome]:
    """Outcomes of images ``0..count`` in order, at most ``slots`` in flight and a bounded
    window ahead of the first not yet returned; an image for which ``alone`` is true runs
    with nothing else in flight (a suspect of an earlier crash: if it crashes again, it
    alone was in flight). ``executor`` has ``submit(index)`` and ``wait()`` (finished
    ``(index, outcome or None)``; ``None``: run it again)."""
    window = max(4 * slots, 8)
    ahead, first = 0, 0
    running: set[int] = set()
    retry: list[int] = []
    ready: dict[int, Outcome] = {}
    while first < count:
        while len(running) < slots:
            if retry:
                index = retry[0]
            elif ahead < count and ahead - first < window:
                index = ahead
            else:
                break
            lonely = alone is not None and alone(index)
            if running and (lonely or any(alone(i) for i in running if alone is not None)):
                break
            executor.submit(index)
            running.add(index)
            if retry and retry[0] == index:
                retry.pop(0)
            else:
                ahead += 1
            if lonely:
                break
        for index, outcome in executor.wait():
            running.discard(index)
            if outcome is None:
                retry.append(index)
            else:
                ready[index] = outcome
        while first in ready:
            yield ready.pop(first)
            first += 1


class _Threads:
    def __init__(self, extractor, items: Sequence, read, workers: int, on_start) -> None:
        self.extractor, self.items, self.read, self.on_start = extractor, items, read, on_start
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="ilias-extract")
        self.futures: dict = {}

    def _run(self, index: int) -> Outcome:
        if self.on_start is not None:
            self.on_start(index)
        return extract_one(self.extractor, index, self.items[index], self.read)

    def submit(self, index: int) -> None:
        self.futures[self.pool.submit(self._run, index)] = index

    def wait(self) -> list[tuple[int, Outcome]]:
        done, _ = wait(self.futures, return_when=FIRST_COMPLETED)
        return [(self.futures.pop(f), f.result()) for f in done]

    def close(self) -> None:
        # Images not started are dropped; the running ones (one each) are waited for.
        self.pool.shutdown(wait=True, cancel_futures=True)


def run_images(
    extractor,
    items: Sequence,
    workers: int,
    *,
    read: Callable[[Any], Any] | None = None,
    isolate: bool = False,
    on_start: Callable[[int], None] | None = None,
    alone: Callable[[int], bool] | None = None,
) -> Iterator[Outcome]:
    """Every item through ``extractor``, in input order (see the module docstring).
    ``read``: items are ids and ``read(id)`` gives each image (in the worker thread or
    process); ``on_start(index)``: called as an image is handed to a worker (a job's
    journal); ``alone(index)``: run that image with nothing else in flight. ``extractor``
    is any callable ``extractor(image, name=...) -> LocalFeatures`` (a ``device`` other
    than ``"cpu"`` takes the GPU path)."""
    if getattr(extractor, "device", "cpu") != "cpu":
        if read is not None:
            ids = items
            items = _Lazy(items, read)
            yield from _run_gpu(extractor, items, workers, lambda i: describe(ids[i], i, read))
            return
        yield from _run_gpu(extractor, items, workers)
        return
    workers = max(1, min(workers, len(items)))
    if isolate:
        from .worker import Processes

        executor = Processes(extractor, items, read, workers, on_start)
        threads = max(1, usable_cores() // workers)
        executor.start(threads)
    else:
        executor = _Threads(extractor, items, read, workers, on_start)
        threads = max(1, usable_cores() // workers)
    try:
        with contextlib.ExitStack() as stack:
            if not isolate:
                stack.enter_context(library_threads(extractor, threads))
            yield from _scheduled(executor, len(items), workers, alone)
    finally:
        executor.close()


class _Lazy(Sequence):
    """Items read on demand (``read(item)``), for the GPU path."""

    def __init__(self, items: Sequence, read: Callable) -> None:
        self.items, self.read = items, read

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index):  # type: ignore[override]
        return self.read(self.items[index])


# --- GPU batches -----------------------------------------------------------------------------


def _run_gpu(
    extractor, items: Sequence, workers: int, name_of: Callable[[int], str] | None = None
) -> Iterator[Outcome]:
    """Decode in ``workers`` threads while the GPU detects: images are taken a window at a
    time, grouped by working shape, detected ``GPU_BATCH`` at a time, returned in order.
    The failure rule is the pool's (:func:`~.outcome.is_image_error`)."""
    window = 4 * GPU_BATCH
    if name_of is None:
        name_of = lambda i: describe(items[i], i, None)  # noqa: E731

    def failure(index: int, exc: BaseException) -> tuple[str, str]:
        if not is_image_error(exc):
            raise exc
        name = name_of(index)
        return name, f"{type(exc).__name__}: {exc}"

    def prepare(index: int):
        try:
            return extractor.prepare(items[index], index, name_of(index))
        except Exception as exc:
            if not is_image_error(exc):
                raise
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
                    outcomes[index] = (index, None, failure(index, value))
                else:
                    groups.setdefault(value[0].shape, []).append(index)
            for indices in groups.values():
                for k in range(0, len(indices), GPU_BATCH):
                    part = indices[k : k + GPU_BATCH]
                    batch = [prepared[i - start] for i in part]
                    _detect_group(extractor, failure, part, batch, outcomes)
            for index in range(start, stop):
                yield outcomes[index]
            start = stop


def _detect_group(extractor, failure, indices: list[int], prepared: list, outcomes) -> None:
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
        except Exception as exc:
            outcomes[index] = (index, None, failure(index, exc))


def run_batch(
    extractor: Extractor,
    images: Any,
    *,
    progress: bool | None,
    on_error: str,
    workers: int = 1,
    isolate: bool = False,
) -> list[LocalFeatures | None]:
    """Every image through ``extractor`` (:func:`run_images`); failures are collected,
    never stop the batch. ``on_error="raise"``: :class:`ExtractionError` with every
    result; ``"skip"``: a warning and ``None`` in their places."""
    import warnings

    if on_error not in ("raise", "skip"):
        raise ConfigError(f"on_error: expected 'raise' or 'skip', got {on_error!r}")
    if not isinstance(isolate, bool):
        raise ConfigError(f"isolate: expected True or False, got {isolate!r}")
    items = (
        list(images)
        if isinstance(images, Sequence) and not isinstance(images, (str, bytes, bytearray))
        else [images]
    )
    if progress is None and len(items) <= 1:
        progress = False  # None: a bar when stderr is a terminal
    results: list[LocalFeatures | None] = []
    failures: dict[int, tuple[str, str]] = {}
    if not items:
        return results
    outcomes = run_images(extractor, items, workers, isolate=isolate)
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
