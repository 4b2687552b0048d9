"""The job's two parallel stages on Ray (``pip install 'ilias-rerank[ray]'``).

- Extraction is a Ray Data pipeline over image bytes: one row per batch (its shard name and
  ids), a read stage (tasks) that fetches the batch's bytes from the image source, then an
  actor pool (``map_batches(..., compute=ActorPoolStrategy(size=workers))``) whose actors
  build the extractor once each (CPU, or a GPU each with ``num_gpus=1``) and write each
  batch into its own shard. Ray restarts a killed actor and runs its batch again; the batch
  resumes its shard, so nothing is duplicated or lost.
- Re-ranking is Ray tasks over groups of queries; each memory-maps the store's shards
  (a filesystem every node sees) and calls the Rust core.

``address=None`` starts a local Ray (``ray.init(address="local")``); otherwise it joins the
cluster at that address (``"auto"``: the one ``ray start`` left on this machine).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from .._extras import require
from ..errors import IliasRerankError
from .extraction import Batch, BatchResult, ExtractorSpec, extract_batch
from .local import rerank_group

__all__ = ["RayBackend"]


def _read_bytes(rows: dict, source) -> dict:
    """Read stage: each batch row gets the encoded bytes of its images (empty on failure,
    with the reason)."""
    import numpy as np

    from ..errors import ImageReadError

    data, errors = [], []
    for ids in rows["ids"]:
        blobs, reasons = [], []
        for image_id in ids:
            try:
                blobs.append(source.read(str(image_id)))
                reasons.append("")
            except ImageReadError as exc:
                blobs.append(b"")
                reasons.append(str(exc))
        data.append(np.array(blobs, dtype=object))
        errors.append(np.array(reasons, dtype=object))
    return {**rows, "data": np.array(data, dtype=object), "errors": np.array(errors, dtype=object)}


class _BytesSource:
    """The bytes a read stage fetched, as a source for :func:`extract_batch`."""

    def __init__(self, ids, data, errors) -> None:
        self.blobs = dict(zip(ids, data, strict=True))
        self.errors = dict(zip(ids, errors, strict=True))

    def read(self, image_id: str) -> bytes:
        from ..errors import ImageReadError

        if self.errors.get(image_id):
            raise ImageReadError(self.errors[image_id])
        return self.blobs[image_id]


class _ExtractActor:
    """One per worker: builds the extractor once, writes each batch to its shard."""

    def __init__(self, spec: ExtractorSpec, root: str) -> None:
        self.extractor = spec.build()
        self.root = root

    def __call__(self, rows: dict) -> dict:
        import json

        import numpy as np

        out = []
        for name, ids, data, errors in zip(
            rows["shard"], rows["ids"], rows["data"], rows["errors"], strict=True
        ):
            ids = [str(i) for i in ids]
            batch = Batch(str(name), tuple(ids))
            result = extract_batch(
                batch, _BytesSource(ids, list(data), list(errors)), self.extractor, self.root
            )
            out.append(json.dumps(result.__dict__))
        return {"result": np.array(out, dtype=object)}


class RayBackend:
    name = "ray"

    def __init__(self, address: str | None = None, workers: int = 1, num_gpus: float = 0) -> None:
        """``num_gpus``: GPUs per extraction actor (1 for GPU extraction)."""
        self.ray = require("ray", "--ray")
        require("ray.data", "--ray")
        self.address = address
        self.workers = workers
        self.num_gpus = num_gpus
        self._started = False

    def _init(self) -> None:
        ray = self.ray
        if ray.is_initialized():
            return
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        # Workers import this package the way the driver does.
        package_root = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
        env = {"PYTHONPATH": os.pathsep.join([package_root, os.environ.get("PYTHONPATH", "")])}
        if self.address:
            ray.init(address=self.address, runtime_env={"env_vars": env}, log_to_driver=False)
        else:
            ray.init(
                address="local",
                num_cpus=max(self.workers, os.cpu_count() or 1),
                include_dashboard=False,
                log_to_driver=False,
                runtime_env={"env_vars": env},
            )
        self._started = True

    def extract(self, batches: Sequence[Batch], source, spec: ExtractorSpec, root, on_done) -> None:
        import json
        from dataclasses import replace

        if not spec.torch_threads:  # one CPU an actor: one torch thread, as locally
            spec = replace(spec, torch_threads=1)
        ray = self.ray
        self._init()
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        rows = [{"shard": b.name, "ids": list(b.ids)} for b in batches]
        ds = ray.data.from_items(rows, override_num_blocks=max(1, len(rows)))
        # The read stage is I/O: it takes no CPU slot, so that the actors (one CPU each)
        # never starve it of one.
        ds = ds.map_batches(_read_bytes, fn_kwargs={"source": source}, batch_size=1, num_cpus=0)
        ds = ds.map_batches(
            _ExtractActor,
            fn_constructor_args=(spec, str(root)),
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=self.workers),
            num_cpus=1,
            num_gpus=self.num_gpus,
        )
        try:
            for row in ds.iter_rows():
                on_done(BatchResult(**json.loads(row["result"])))
        except ray.exceptions.RayError as exc:
            raise IliasRerankError(f"Ray extraction failed: {exc}") from None

    def rerank(
        self, root, groups: Sequence[dict], config: dict | None, on_done, store=None
    ) -> None:
        """``store`` (the driver's open store) is not shipped: each task opens its own."""
        ray = self.ray
        self._init()
        # One CPU and one Rust thread per task: Ray spreads the groups over the cluster.
        task = ray.remote(num_cpus=1, max_retries=3)(rerank_group)
        pending = [task.remote(str(root), g, config, 1) for g in groups]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            try:
                on_done(ray.get(done[0]))
            except ray.exceptions.RayError as exc:  # a task failed past its retries
                raise IliasRerankError(f"Ray re-ranking task failed: {exc}") from None

    def close(self) -> None:
        if self._started and self.ray.is_initialized():
            self.ray.shutdown()
        self._started = False
