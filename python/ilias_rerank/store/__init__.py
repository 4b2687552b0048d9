"""Feature stores: local features (and optional global vectors) of many images on disk.

- :class:`FeatureStore`: one store directory (``single.py``), or a sharded store
  (``sharded.py``): a top-level ``shards.json`` listing shard directories that independent
  workers wrote; ``FeatureStore(path)`` opens either and reads them alike.
- :class:`StoreWriter`: appends to one store directory (a whole store or one shard).
- :func:`register_shards`: makes written shards part of a sharded store, atomically.
"""

from __future__ import annotations

from .sharded import SHARDS_FILE, ShardedStore, register_shards, shard_path
from .single import FORMAT_NAME, FORMAT_VERSION, FeatureStore, StoreWriter

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "SHARDS_FILE",
    "FeatureStore",
    "ShardedStore",
    "StoreWriter",
    "register_shards",
    "shard_path",
]
