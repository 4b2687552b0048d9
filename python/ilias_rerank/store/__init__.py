"""Feature stores: local features (and optional global vectors) of many images on disk.
One class per role:

- :class:`FeatureStore` (``reader.py``): what users open; reads one store directory or a
  sharded store (a ``shards.json`` listing shard directories that independent workers
  wrote) alike. ``ShardedStore`` is the same class.
- :class:`StoreDirectory` (``single.py``): the reader of one store directory (its format).
- :class:`StoreWriter` (``writer.py``): appends to one store directory (a whole store or
  one shard) in the layout its extractor declares (:class:`StoreLayout`, ``layout.py``),
  holding its writer lock (``lock.py``).
- :class:`ShardRegistry` (``sharded.py``; ``shards.json`` itself is ``listing.py``): the
  registry of a sharded store's shards and of which shard owns each id;
  :func:`register_shards` makes written shards part of the store, atomically, each id in
  one shard only.
- :func:`check_store`, :func:`repair_store`, :func:`merge_store`: maintenance, ``ilias-rerank
  store check | repair | merge`` (``maintenance.py``).
"""

from __future__ import annotations

from .layout import StoreLayout
from .listing import SHARDS_FILE, shard_path
from .lock import writer_lock
from .maintenance import (
    StoreReport,
    UnhealthyStoreError,
    check_store,
    merge_store,
    repair_store,
)
from .reader import FeatureStore, ShardedStore
from .sharded import ShardRegistry, copy_images, orphan_shards, register_shards
from .single import FORMAT_NAME, FORMAT_VERSION, StoreDirectory
from .writer import StoreWriter

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "SHARDS_FILE",
    "FeatureStore",
    "ShardRegistry",
    "ShardedStore",
    "StoreDirectory",
    "StoreLayout",
    "StoreReport",
    "StoreWriter",
    "UnhealthyStoreError",
    "check_store",
    "copy_images",
    "merge_store",
    "orphan_shards",
    "register_shards",
    "repair_store",
    "shard_path",
    "writer_lock",
]
