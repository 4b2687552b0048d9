"""The extraction plan and one batch of it.

The ids a job needs are sorted and cut into batches; each batch is named by a hash of its
ids and the run's tag (``b-<16 hex>-<run>``), carries only those of its ids the store
lacks, and is written to the shard of that name. Within a run, a batch that is redone (its
worker died) reopens its own unregistered shard and resumes it. A later run has another
tag, so it never writes a shard an earlier run left: a registered shard is never written
again, and what a killed run committed but never registered (an orphan) is adopted by the
next run before it plans (``store.adopt_orphans``), so it is neither extracted again nor
duplicated. A shard becomes visible when the driver registers it, after its batch finished.

A per-image failure follows the extraction pool's one rule
(:mod:`~ilias_rerank.extractors.pool`): an image whose extraction raises, returns no
features or kills its process is that image's failure, named in the batch's result; the
job's failure budget decides what many failures mean.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import IliasRerankError
from ..extractors import make_extractor
from ..store import StoreWriter, shard_path

__all__ = ["Batch", "BatchResult", "ExtractorSpec", "extract_batch", "plan_batches"]


@dataclass(frozen=True)
class ExtractorSpec:
    """How to build the extractor in a worker: ``make_extractor`` arguments, plus the
    torch thread count (the same count gives the same features everywhere)."""

    method: str = "sift"
    num_features: int = 1024
    max_side: int | None = None  # None: the backend's default
    device: str = "cpu"
    options: tuple[tuple[str, Any], ...] = ()
    torch_threads: int = 0  # 0: the library's default (threads of torch / OpenCV)
    backend: str | None = None  # None: the method's default for the device
    #: A store of codes (issue 22): ``"shipped"`` or a vocabulary ``.npz``; ``None``: the
    #: extractor's own descriptors are stored.
    codes: str | None = None

    def manifest_name(self) -> str:
        """The ``name`` its features carry in a store's manifest (method and backend),
        known without building the extractor (nothing is imported or loaded)."""
        from ..extractors import _class, resolve_backend

        backend = resolve_backend(self.method, self.backend, self.device)
        return _class(self.method, backend).manifest_name

    def params(self, remote: bool = False) -> dict:
        """The manifest entry of the features this spec extracts, checking every setting.
        ``remote``: the extractor runs elsewhere (Ray workers), so the device is checked
        for its spelling only, not for being present here (a driver without a GPU can run
        a job whose workers have one); the extractor is built on this CPU for the check."""
        if remote and self.device != "cpu":
            from dataclasses import replace

            from ..extractors import resolve_backend
            from ..extractors.base import check_device_name

            check_device_name(self.device)
            backend = resolve_backend(self.method, self.backend, self.device)
            built = replace(self, device="cpu", backend=backend, torch_threads=0).build()
            return store_entry(built)[0]
        return store_entry(self.build())[0]

    def build(self):
        extractor = make_extractor(
            self.method,
            self.num_features,
            self.max_side,
            self.device,
            backend=self.backend,
            **dict(self.options),
        )
        if self.torch_threads:
            from ..extractors.pool import set_threads

            set_threads(extractor, self.torch_threads)
        if self.codes is not None:
            from ..codes import load_coder

            extractor.codes = load_coder(self.codes)
        return extractor


def store_entry(extractor) -> tuple[dict, Any]:
    """The manifest entry and the layout of the store ``extractor`` fills: its own, or,
    with a coder (``ExtractorSpec.codes``), its entry with the codes' and a codes layout."""
    coder = getattr(extractor, "codes", None)
    if coder is None:
        return extractor.params(), extractor.store_layout()
    frames = extractor.store_layout().frame_width != 0
    return {**extractor.params(), "codes": coder.params()}, coder.store_layout(frames)


@dataclass(frozen=True)
class Batch:
    name: str
    ids: tuple[str, ...]


@dataclass
class BatchResult:
    shard: str
    extracted: int = 0
    reused: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


#: Images between two commits of a batch's shard: a batch redone after its process died
#: resumes after the last commit.
COMMIT_EVERY = 16

#: What the store refusing one image's features raises (that image's failure).
IMAGE_FAILURES = (IliasRerankError, ValueError)


def plan_batches(
    ids: Sequence[str], batch_size: int, skip: Collection[str] = (), tag: str = ""
) -> list[Batch]:
    """Deterministic batches of the sorted ``ids``, each named by a hash of all its ids
    (and ``tag``, the run's); ids in ``skip`` (already in the store) are left out of each
    batch, and batches left empty are dropped (see the module docstring)."""
    if batch_size < 1:
        raise ValueError(f"batch_size: expected >= 1, got {batch_size}")
    ordered = sorted(set(ids))
    batches = []
    for k in range(0, len(ordered), batch_size):
        chunk = ordered[k : k + batch_size]
        digest = hashlib.sha1("\n".join(chunk).encode()).hexdigest()[:16]
        todo = tuple(i for i in chunk if i not in skip)
        if todo:
            batches.append(Batch(f"b-{digest}-{tag}" if tag else f"b-{digest}", todo))
    return batches


def extract_batch(
    batch: Batch,
    source,
    extractor,
    root,
    *,
    workers: int = 1,
    isolate: bool = False,
    journal=None,
    partial: list | None = None,
) -> BatchResult:
    """Extract ``batch`` into its own shard of the store at ``root`` (resuming it) through
    the extraction pool (:func:`~ilias_rerank.extractors.pool.run_images`: ``workers``
    threads, or isolated processes). ``source`` gives the bytes; an image that fails under
    the pool's rule is named in the result's ``failed`` and skipped; the others are kept,
    each committed by this process. ``journal``
    (:class:`~ilias_rerank.scale.journal.Journal`): the images in flight are journalled,
    suspects of a past crash run alone, and an image in flight at two crashes is failed
    untried. ``partial``: the result is appended to it at once, so that a caller stopped
    midway (a signal) can register what the shard committed; a shard stopped before its
    first commit is removed."""
    import time

    t0 = time.perf_counter()
    result = BatchResult(batch.name)
    if partial is not None:
        partial.append(result)
    try:
        _extract_into(batch, source, extractor, root, workers, isolate, journal, result)
    except BaseException:
        path = shard_path(root, batch.name)
        if not (path / "manifest.json").exists():
            import shutil

            shutil.rmtree(path, ignore_errors=True)  # nothing committed: nothing to keep
        raise
    result.seconds = time.perf_counter() - t0
    return result


def _extract_into(batch, source, extractor, root, workers, isolate, journal, result) -> None:
    from ..extractors.pool import run_images

    entry, layout = store_entry(extractor)
    coder = getattr(extractor, "codes", None)
    with StoreWriter(
        shard_path(root, batch.name), entry, layout=layout, commit_every=COMMIT_EVERY
    ) as w:
        todo: list[str] = []
        for image_id in batch.ids:
            if image_id in w:
                result.reused += 1
            elif journal is not None and journal.failed(image_id):
                result.failed[image_id] = journal.failed(image_id)
            else:
                todo.append(image_id)
        outcomes = run_images(
            extractor,
            todo,
            workers,
            read=source.read,
            isolate=isolate,
            on_start=None if journal is None else lambda i: journal.start(todo[i]),
            alone=None if journal is None else lambda i: journal.suspect(todo[i]),
        )
        for index, features, failure in outcomes:
            image_id = todo[index]
            stored = False
            if failure is not None:
                result.failed[image_id] = failure[1]
            else:
                try:
                    w.add(image_id, features if coder is None else coder(features))
                    stored = True
                    result.extracted += 1
                except IMAGE_FAILURES as exc:  # features the store cannot hold
                    result.failed[image_id] = f"image {image_id!r}: {type(exc).__name__}: {exc}"
            if journal is not None:
                journal.end(image_id, stored)
