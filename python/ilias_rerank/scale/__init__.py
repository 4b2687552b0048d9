"""Re-ranking at ILIAS scale, driven by the shortlists: extract local features only for
the images the shortlists need (into a sharded store, resumably), re-rank every query's
top-k, and write one result file. The same functions run in local worker processes or on a
Ray cluster (``ray_backend``), with identical output.

- ``extraction``: the extraction plan (which ids, in which deterministic batches) and one
  batch's work (read bytes, extract, append to that batch's own shard);
- ``local``: the batches and query groups on local worker processes;
- ``ray_backend``: the same on Ray (``pip install 'ilias-rerank[ray]'``);
- ``job``: the whole ``rerank-shortlists`` job and its report.
"""

from __future__ import annotations

from .job import ShortlistJob, rerank_shortlists

__all__ = ["ShortlistJob", "rerank_shortlists"]
