"""Feature stores: local features (and optional global vectors) of many images on disk.

- :class:`FeatureStore`: one store directory (``single.py``), or a sharded store
  (``sharded.py``): a top-level ``shards.json`` listing shard directories that independent
  workers wrote; ``FeatureStore(path)`` opens either and reads them alike.
- :class:`StoreWriter`: appends to one store directory (a whole store or one shard),
  holding its writer lock (``lock.py``).
- :func:`register_shards`: makes written shards part of a sharded store, atomically, each
  id in one shard only.
- :func:`check_store`, :func:`repair_store`, :func:`merge_store`: ``ilias-rerank store
  check | repair | merge`` (``maintenance.py``).
"""

from __future__ import annotations

from .lock import writer_lock
from .maintenance import StoreReport, check_store, merge_store, repair_store
from .sharded import (
    SHARDS_FILE,
    ShardedStore,
    copy_images,
    orphan_shards,
    register_shards,
    shard_path,
)
from .single import FORMAT_NAME, FORMAT_VERSION, FeatureStore, StoreWriter

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "SHARDS_FILE",
    "FeatureStore",
    "ShardedStore",
    "StoreReport",
    "StoreWriter",
    "check_store",
    "copy_images",
    "merge_store",
    "orphan_shards",
    "register_shards",
    "repair_store",
    "shard_path",
    "writer_lock",
]
