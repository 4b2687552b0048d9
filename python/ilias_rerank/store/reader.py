""":class:`FeatureStore`: what users open. One class reads a single store directory and a
sharded store alike: a store is a list of store directories (``single.StoreDirectory``,
one, or the shards ``shards.json`` lists through ``sharded.ShardRegistry``), read through
one id map.

- **Bounded resources.** Opening reads every directory's manifest, index and ids (and
  closes them); a directory's files are mapped on first access and at most ``max_open``
  stay mapped (least recently used first out): about 3 descriptors and maps each, whatever
  the shard count.
- **Damage is never used.** A listed shard that is missing, truncated, corrupt or changed
  since it was registered is a :class:`~ilias_rerank.errors.FormatError` naming it; with
  ``on_broken_shard="skip"`` the store opens with the other shards' ids, and
  ``store.broken`` says what was left out and why.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FormatError, MissingIdError
from ..features import LocalFeatures
from .layout import LaidOut, StoreLayout
from .listing import shard_manifest_crc
from .sharded import ShardRegistry, layouts_fit, merged_key
from .single import StoreDirectory, store_layout_key

__all__ = ["FeatureStore", "ShardedStore"]


class FeatureStore(LaidOut, Mapping):
    """A committed store, read-only and memory-mapped: a mapping of image id to that
    image's :class:`LocalFeatures` (views of the mapped files). A directory with a
    ``shards.json`` is a sharded store and reads the same way.

    Parameters
    ----------
    path : str or os.PathLike
        The store directory (as :class:`StoreWriter` or ``rerank-shortlists`` wrote it).
    verify : {"access", "full", "none"}
        When checksums are checked: each image's on first access (default), every file
        now, or never.
    on_broken_shard : {"raise", "skip"}
        A sharded store with a damaged shard (or an id in two shards): raise a
        :class:`FormatError`, or open the rest (``broken`` and ``duplicates`` say what).
    max_open : int
        Directories kept mapped at once (least recently used first out).

    Attributes
    ----------
    ids : list of str
        The image ids, in insertion order (shard by shard).
    extractor : dict
        The manifest's extractor entry (name and parameters).
    layout : StoreLayout or None
        The layout of every image (``None``: every image is featureless).
    shards : list of StoreDirectory
        The registered shards read (empty for a single store directory).
    global_vectors : numpy.ndarray or None
        ``(images, G)`` float32 global vectors, if the store holds them.

    Raises
    ------
    FormatError
        A missing, truncated or corrupt file, an unknown format version, a sharded store
        that holds an id twice (``ilias-rerank store repair`` mends it).
    MissingIdError
        ``store[image_id]`` of an id the store does not hold.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        verify: str = "access",
        on_broken_shard: str = "raise",
        *,
        max_open: int = 64,
    ) -> None:
        if verify not in ("access", "full", "none"):
            raise ValueError(f"verify: expected 'access', 'full' or 'none', got {verify!r}")
        if on_broken_shard not in ("raise", "skip"):
            raise ValueError(
                f"on_broken_shard: expected 'raise' or 'skip', got {on_broken_shard!r}"
            )
        if (
            isinstance(max_open, bool)
            or not isinstance(max_open, int)
            or not 1 <= max_open <= 1 << 16
        ):
            raise ValueError(f"max_open: expected an int in 1..=65536, got {max_open!r}")
        self.path = Path(path)
        self.verify = verify
        self._open_args = (str(self.path), verify, on_broken_shard, max_open)
        self.max_open = max_open
        self.broken: dict[str, str] = {}
        self.duplicates: dict[str, list[str]] = {}
        self._lru: OrderedDict[int, None] = OrderedDict()
        self._lru_lock = threading.Lock()
        self._global: np.ndarray | None = None
        self._positions: dict[str, int] | None = None
        registry = ShardRegistry(self.path)
        self.sharded = registry.exists
        if self.sharded:
            self.manifest = registry.read()
            self.shards = self._open_shards(registry, verify, on_broken_shard)
            parts = self.shards
            recorded = self.manifest.get("layout")
            key = None
            if recorded is not None and "layout" in recorded:
                key = {k: recorded[k] for k in ("extractor", "layout", "global_dim")}
            else:  # a listing of an earlier release: its shards' layout
                for part in parts:
                    if layouts_fit(key, store_layout_key(part)):
                        key = merged_key(key, store_layout_key(part))
            self.extractor = key["extractor"] if key else {}
            self.layout = StoreLayout.from_dict(key["layout"]) if key and key["layout"] else None
            self._global_dim = key["global_dim"] if key else 0
        else:
            single = StoreDirectory(self.path, verify=verify)
            self.manifest = single.manifest
            self.shards = []
            parts = [single]
            self.extractor, self.layout = single.extractor, single.layout
            self._global_dim = single.global_dim
        self._parts: list[StoreDirectory] = parts
        self._index_ids(on_broken_shard)

    def _open_shards(
        self, registry: ShardRegistry, verify: str, on_broken_shard: str
    ) -> list[StoreDirectory]:
        shards = []
        for entry in self.manifest["shards"]:
            try:
                if shard_manifest_crc(registry.path(entry["name"])) != entry["manifest_crc"]:
                    raise FormatError("its manifest changed since it was registered")
                shard = registry.open(entry["name"], verify=verify)
                shard.release()
                if len(shard) != entry["images"]:
                    raise FormatError(f"expected {entry['images']} images, got {len(shard)}")
            except (FormatError, FileNotFoundError, NotADirectoryError) as exc:
                # Other OSErrors (too many open files, no memory) are not damage: raised.
                self.broken[entry["name"]] = str(exc)
                continue
            shards.append(shard)
        if self.broken and on_broken_shard == "raise":
            listing = "; ".join(f"shard {k}: {v}" for k, v in self.broken.items())
            raise FormatError(
                f"{self.path}: {len(self.broken)} of {len(self.manifest['shards'])} shards are "
                f"damaged ({listing}); open with on_broken_shard='skip' to read the other "
                f"shards, or run `ilias-rerank store repair {self.path}`"
            )
        return shards

    def _index_ids(self, on_broken_shard: str) -> None:
        if not self.sharded:
            self.ids: list[str] = self._parts[0].ids
            self._where: dict[str, tuple[int, int]] | None = None
            return
        self.ids = []
        self._where = {}
        for s, part in enumerate(self._parts):
            for i, image_id in enumerate(part.ids):
                first = self._where.get(image_id)
                if first is not None:
                    names = self.duplicates.setdefault(image_id, [self._parts[first[0]].path.name])
                    names.append(part.path.name)
                    continue
                self._where[image_id] = (s, i)
                self.ids.append(image_id)
        if self.duplicates and on_broken_shard == "raise":
            image_id, names = next(iter(self.duplicates.items()))
            raise FormatError(
                f"{self.path}: {len(self.duplicates)} ids are in more than one shard (image "
                f"{image_id!r} is in shards {' and '.join(names)}); run "
                f"`ilias-rerank store repair {self.path}`, or open with "
                "on_broken_shard='skip' (the first shard's copy is read)"
            )

    # --- the mapping ---------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids)

    def __contains__(self, image_id: object) -> bool:
        if self._where is None:
            return image_id in self._parts[0]
        return image_id in self._where

    def _locate(self, image_id: str) -> tuple[int, int]:
        if self._where is None:
            return 0, self._parts[0].position(image_id)
        try:
            return self._where[image_id]
        except (KeyError, TypeError):
            hint = f" (damaged shards left out: {sorted(self.broken)})" if self.broken else ""
            raise MissingIdError(f"{image_id!r} is not in the store {self.path}{hint}") from None

    def __getitem__(self, image_id: str) -> LocalFeatures:
        s, i = self._locate(image_id)
        return self._parts[s].features_at(i, self._maps_of(s))

    def position(self, image_id: str) -> int:
        """Row of ``image_id`` in ``ids`` and ``global_vectors``; an unknown id is a
        :class:`~ilias_rerank.errors.MissingIdError` (also a ``KeyError``)."""
        _, i = self._locate(image_id)
        if self._where is None:
            return i
        if self._positions is None:
            self._positions = {image_id: k for k, image_id in enumerate(self.ids)}
        return self._positions[image_id]

    def shard_of(self, image_id: str) -> str:
        """The name of the shard that holds ``image_id`` (a sharded store)."""
        return self._parts[self._locate(image_id)[0]].path.name

    # --- maps ----------------------------------------------------------------------------
    def _maps_of(self, s: int) -> tuple:
        """Directory ``s``'s maps, opened if needed; the least recently used directories
        beyond ``max_open`` are unmapped (under one lock: none is mapped outside the LRU)."""
        with self._lru_lock:
            self._lru[s] = None
            self._lru.move_to_end(s)
            while len(self._lru) > self.max_open:
                old, _ = self._lru.popitem(last=False)
                self._parts[old].release()
            try:
                return self._parts[s].mapped()
            except FileNotFoundError:
                del self._lru[s]
                raise FormatError(
                    f"{self.path}: shard {self._parts[s].path.name} was removed since the store "
                    "was opened (merged or repaired by another process): open the store again"
                ) from None

    def _mapped(self) -> tuple:
        """The first directory's maps (a single store's files)."""
        return self._maps_of(0)

    @property
    def _index(self) -> np.ndarray:
        """The first directory's index records (a single store's: offset, count, size, CRC)."""
        return self._parts[0].index

    @property
    def mapped_shards(self) -> int:
        """How many directories are mapped now (at most ``max_open``)."""
        return sum(1 for part in self._parts if part.is_mapped)

    @property
    def is_mapped(self) -> bool:
        """Whether any of its files is mapped now."""
        return self._global is not None or any(part.is_mapped for part in self._parts)

    @property
    def global_vectors(self) -> np.ndarray | None:
        """``(images, G)`` float32 rows in ``ids`` order, or ``None``; checked against
        their checksum on first use (unless opened with ``verify="none"``). A single store's
        are mapped; a sharded store's are a copy in memory."""
        if not self.sharded:
            return self._parts[0].global_vectors
        if self._global is None:
            if not self._parts or not self._global_dim:
                return None
            rows = []
            for s, part in enumerate(self._parts):
                g = part.global_vectors
                if g is None:
                    return None
                keep = [i for i, image_id in enumerate(part.ids) if self._where[image_id][0] == s]
                rows.append(np.array(g[keep]))
                if s not in self._lru:
                    part.release()
            self._global = np.concatenate(rows)
        return self._global

    def release(self) -> None:
        """Unmap every file (reopened on the next access); features handed out before
        keep their own reference and stay valid."""
        with self._lru_lock:
            for part in self._parts:
                part.release()
            self._lru.clear()
        self._global = None

    def close(self) -> None:
        """Unmap the store's files (see :meth:`release`)."""
        self.release()

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        shards = f"shards={len(self.shards)}, " if self.sharded else ""
        broken = f", broken={sorted(self.broken)}" if self.broken else ""
        return (
            f"FeatureStore({str(self.path)!r}, {shards}images={len(self)}, "
            f"descriptors={self.descriptor_dtype}x{self.dim}, "
            f"global_dim={self._global_dim}{broken})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        path, verify, on_broken_shard, max_open = self._open_args
        return (_reopen, (path, verify, on_broken_shard, max_open))


def _reopen(path: str, verify: str, on_broken_shard: str, max_open: int) -> FeatureStore:
    """A pickled store, opened again where it is unpickled (its maps are not copied)."""
    return FeatureStore(path, verify, on_broken_shard, max_open=max_open)


#: The same class: ``FeatureStore(path)`` reads a sharded store (the name is kept for code
#: written against an earlier release).
ShardedStore = FeatureStore
