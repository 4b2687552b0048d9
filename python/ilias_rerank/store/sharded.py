"""A sharded store: shard directories written by independent workers, made visible by a
top-level manifest.

Layout::

    <root>/shards.json          format, version, the shards' common layout (extractor,
                                descriptor dtype and dimension, frame width, global
                                dimension) and per shard: name, image and feature counts,
                                CRC-32 of its manifest; and its own CRC-32
    <root>/shards/<name>/       one store directory each (``single.py``)
    <root>/.lock                the writer lock (``lock.py``)

Guarantees (version 2 of ``shards.json``):

- **One owner per id.** :func:`register_shards` makes a shard part of the store only with
  the ids no registered shard holds: a shard that adds none is removed, one that adds some
  is rewritten as a new shard holding only those (the original removed). No sequence of
  runs, kills or retries can register an id twice.
- **A registered shard is never written again.** :class:`~ilias_rerank.store.StoreWriter`
  refuses it; a retry writes a new shard. Registration rewrites ``shards.json`` atomically
  (write, fsync, rename) under the root's writer lock: a shard that is being written, or
  whose writer died, is simply not listed (an *orphan*, adopted or removed by the next job
  or by ``store repair``).
- **Bounded resources.** Opening reads every shard's manifest, index and ids (and closes
  them); a shard's files are mapped on first access and at most ``max_open`` shards stay
  mapped (least recently used first out): about 3 descriptors and maps each, whatever the
  shard count.

A listed shard that is missing, truncated, corrupt or changed since it was registered is
a :class:`~ilias_rerank.errors.FormatError` naming it; with ``on_broken_shard="skip"`` the
store opens with the other shards' ids, and ``store.broken`` says what was left out and
why. ``ilias-rerank store check | repair | merge`` (``maintenance.py``) find, fix and
compact such stores.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import threading
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from .._io import atomic_write_json
from ..errors import FormatError, InvalidInputError, MissingIdError, StoreLockedError
from ..features import LocalFeatures
from .lock import writer_lock
from .single import SHARDS_FILE, FeatureStore, StoreWriter

__all__ = [
    "SHARDS_FILE",
    "ShardedStore",
    "copy_images",
    "orphan_shards",
    "register_shards",
    "shard_path",
]

SHARDED_FORMAT = "ilias-rerank-sharded-store"
#: Version 2: an id is registered in one shard at most, a registered shard is never
#: written again. Version 1 lists (the previous release) are read as they are (``store
#: check`` finds what they may hold twice, ``store repair`` fixes it); the next
#: registration writes version 2.
SHARDED_VERSION = 2
READABLE_VERSIONS = (1, 2)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_LAYOUT = ("extractor", "descriptors", "frame_width", "global_dim")
_ENTRY = {"name": str, "images": int, "features": int, "manifest_crc": int}


def shard_path(root: str | os.PathLike, name: str) -> Path:
    """The directory of shard ``name`` of the sharded store at ``root``."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInputError(
            f"shard name: expected letters, digits, '.', '_' or '-' (at most 128), got {name!r}"
        )
    return Path(root) / "shards" / name


def new_shard_name(prefix: str) -> str:
    """A fresh shard name: ``prefix`` and 16 random hex digits."""
    return f"{prefix}-{secrets.token_hex(8)}"


def _crc(manifest: dict) -> int:
    body = {k: v for k, v in manifest.items() if k != "checksum"}
    return zlib.crc32(json.dumps(body, sort_keys=True).encode())


def _read(root: Path) -> dict:
    path = root / SHARDS_FILE
    try:
        m = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise FormatError(f"{path}: unreadable shard list ({exc})") from None
    if not isinstance(m, dict) or m.get("format") != SHARDED_FORMAT:
        raise FormatError(f"{path}: expected format {SHARDED_FORMAT!r}")
    version = m.get("version")
    if isinstance(version, bool) or version not in READABLE_VERSIONS:
        raise FormatError(
            f"{path}: expected version {' or '.join(map(str, READABLE_VERSIONS))}, "
            f"got {version!r} (written by another release of ilias-rerank)"
        )
    if not isinstance(m.get("shards"), list) or m.get("checksum") != _crc(m):
        raise FormatError(f"{path}: checksum mismatch (corrupt shard list)")
    layout = m.get("layout")
    if layout is not None and not (
        isinstance(layout, dict)
        and isinstance(layout.get("descriptors"), dict)
        and isinstance(layout["descriptors"].get("dtype"), str)
        and type(layout["descriptors"].get("dim")) is int
    ):
        raise FormatError(
            f"{path}: expected a layout with descriptors dtype and dim, got {layout!r}"
        )
    names = set()
    for k, entry in enumerate(m["shards"]):
        if not isinstance(entry, dict) or any(
            type(entry.get(key)) is not kind for key, kind in _ENTRY.items()
        ):
            raise FormatError(
                f"{path}: shard entry {k}: expected name, images, features and manifest_crc, "
                f"got {entry!r}"
            )
        if not _NAME.match(entry["name"]) or entry["name"] in names:
            raise FormatError(f"{path}: shard entry {k}: bad or repeated name {entry['name']!r}")
        names.add(entry["name"])
    return m


def _empty() -> dict:
    return {"format": SHARDED_FORMAT, "version": SHARDED_VERSION, "layout": None, "shards": []}


def _write(root: Path, m: dict, state: dict | None = None) -> dict:
    """Rewrite ``shards.json`` atomically (the caller holds the root's writer lock)."""
    m["version"] = SHARDED_VERSION
    m["shards"] = sorted(m["shards"], key=lambda e: e["name"])
    m["checksum"] = _crc(m)
    atomic_write_json(root / SHARDS_FILE, m, indent=1)
    if state is not None and "ids" in state:
        state["checksum"] = m["checksum"]
    return m


def _manifest_crc(shard: Path) -> int:
    try:
        return zlib.crc32((shard / "manifest.json").read_bytes())
    except FileNotFoundError as exc:
        raise FormatError(f"shard {shard.name}: no committed manifest ({exc})") from None


def _layout(store: FeatureStore) -> dict:
    return {key: store.manifest.get(key) for key in _LAYOUT}


def _entry(path: Path, store: FeatureStore) -> dict:
    return {
        "name": path.name,
        "images": len(store),
        "features": int(store.manifest["features"]),
        "manifest_crc": _manifest_crc(path),
    }


def _registered_ids(root: Path, m: dict, state: dict) -> dict[str, str]:
    """id -> the registered shard that holds it; kept in the lock's ``state`` while the
    writer lock is held (no one else changes ``shards.json`` meanwhile)."""
    if state.get("checksum") != m.get("checksum") or "ids" not in state:
        ids: dict[str, str] = {}
        for entry in m["shards"]:
            store = FeatureStore(shard_path(root, entry["name"]), verify="none")
            for image_id in store.ids:
                ids.setdefault(image_id, entry["name"])
        state["ids"], state["checksum"] = ids, m.get("checksum")
    return state["ids"]


def shard_dirs(root: str | os.PathLike) -> list[str]:
    """Names of the shard directories under ``root/shards`` (registered or not)."""
    folder = Path(root) / "shards"
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and _NAME.match(p.name))


def orphan_shards(root: str | os.PathLike) -> list[str]:
    """Shard directories under ``root/shards`` that ``shards.json`` does not list."""
    root = Path(root)
    listed = {e["name"] for e in _read(root)["shards"]} if (root / SHARDS_FILE).is_file() else set()
    return [name for name in shard_dirs(root) if name not in listed]


def copy_images(store: FeatureStore, ids: Iterable[str], writer: StoreWriter) -> int:
    """Append the images ``ids`` of ``store`` (features, image size, global vector) to
    ``writer``, each checked against its checksum on the way; returns how many. A store
    opened with ``verify="none"`` is refused: a copy gets fresh checksums, so a damaged
    image copied unchecked would pass every later check."""
    if getattr(store, "_verify", "access") == "none":
        raise ValueError("copy_images: expected a store opened with verification, got 'none'")
    glob = store.global_vectors
    count = 0
    for image_id in ids:
        row = store.position(image_id)
        writer.add(image_id, store[image_id], None if glob is None else glob[row])
        count += 1
    return count


def _rewrite(root: Path, store: FeatureStore, ids: list[str], prefix: str = "r") -> Path:
    """A new shard of ``root`` holding ``ids`` of ``store`` (committed, not registered)."""
    path = shard_path(root, new_shard_name(prefix))
    with StoreWriter(path, store.extractor, commit_every=1 << 30) as writer:
        copy_images(store, ids, writer)
    return path


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def register_shards(
    root: str | os.PathLike, names: Iterable[str], *, lock_timeout: float = 0.0
) -> dict:
    """Make the shards ``names`` (written under ``root/shards/``) part of the store at
    ``root``, creating it if needed, under the root's writer lock, by one atomic rewrite of
    ``shards.json``. Each shard is checked (committed, not being written, same layout as
    the others) and brings only the ids no registered shard holds: a shard that adds none
    is removed; one that adds some but not all is rewritten as a new shard with just
    those (the original removed). A shard registered already is left as it is. Returns
    the new top-level manifest."""
    root = Path(root)
    # Each shard's own lock is held until the new list is written: a writer that reopened
    # it in between would change the manifest whose checksum the list records.
    with (
        writer_lock(root, timeout=lock_timeout, reentrant=True) as state,
        contextlib.ExitStack() as shard_locks,
    ):
        if (root / SHARDS_FILE).is_file():
            m = _read(root)
        elif (root / "manifest.json").is_file():
            raise InvalidInputError(f"{root}: a single store, not a sharded one")
        else:
            m = _empty()
        registered = _registered_ids(root, m, state)
        entries = {e["name"]: e for e in m["shards"]}
        removed: list[Path] = []
        for name in dict.fromkeys(names):
            path = shard_path(root, name)
            if name in entries:
                if _manifest_crc(path) != entries[name]["manifest_crc"]:
                    raise FormatError(
                        f"shard {name}: its manifest changed since it was registered "
                        f"(run `ilias-rerank store repair {root}`)"
                    )
                continue
            if not path.is_dir():
                raise FormatError(f"shard {name}: no such shard directory {path}")
            try:
                shard_locks.enter_context(writer_lock(path))  # nobody is writing it
                store = FeatureStore(path)  # images copied below are checked as read
            except StoreLockedError:
                raise StoreLockedError(
                    f"shard {name}: it is being written (its writer holds its lock); "
                    "expected a finished shard"
                ) from None
            if not len(store):
                removed.append(path)
                continue
            layout = _layout(store)
            if m["layout"] is None:
                m["layout"] = layout
            elif layout != m["layout"]:
                raise FormatError(
                    f"shard {name}: layout {layout} differs from the store's {m['layout']}"
                )
            new = [i for i in store.ids if i not in registered]
            if len(new) < len(store):
                removed.append(path)
                if not new:
                    continue
                path = _rewrite(root, store, new)
                store = FeatureStore(path, verify="none")
            entries[path.name] = _entry(path, store)
            registered.update(dict.fromkeys(store.ids, path.name))
        m["shards"] = list(entries.values())
        _write(root, m, state)
        for path in removed:  # after the new list is durable: a crash leaves orphans
            _remove(path)
    return m


class ShardedStore(FeatureStore):
    """A sharded store, read like a :class:`FeatureStore` (see the module docstring).
    ``max_open``: shards kept mapped at once (least recently used first out).
    :meth:`close` (or a ``with`` block) unmaps them all."""

    def __init__(
        self,
        path: str | os.PathLike,
        verify: str = "access",
        on_broken_shard: str = "raise",
        *,
        max_open: int = 64,
    ) -> None:
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
        self.path = root = Path(path)
        self.max_open = max_open
        self.manifest = m = _read(root)
        layout = m.get("layout") or {}
        self.extractor = layout.get("extractor", {})
        descriptors = layout.get("descriptors") or {"dtype": "uint8", "dim": 0}
        self.descriptor_dtype, self.dim = descriptors["dtype"], int(descriptors["dim"])
        self.shards: list[FeatureStore] = []
        self.broken: dict[str, str] = {}
        self.duplicates: dict[str, list[str]] = {}
        self._mapped_lru: OrderedDict[int, None] = OrderedDict()
        self._lru_lock = threading.Lock()
        for entry in m["shards"]:
            spath = shard_path(root, entry["name"])
            try:
                if _manifest_crc(spath) != entry["manifest_crc"]:
                    raise FormatError("its manifest changed since it was registered")
                store = FeatureStore(spath, verify=verify)
                store.release()
                if len(store) != entry["images"]:
                    raise FormatError(f"expected {entry['images']} images, got {len(store)}")
            except (FormatError, FileNotFoundError, NotADirectoryError) as exc:
                # Other OSErrors (too many open files, no memory) are not damage: raised.
                self.broken[entry["name"]] = str(exc)
                continue
            self.shards.append(store)
        if self.broken and on_broken_shard == "raise":
            listing = "; ".join(f"shard {k}: {v}" for k, v in self.broken.items())
            raise FormatError(
                f"{root}: {len(self.broken)} of {len(m['shards'])} shards are damaged ({listing}); "
                "open with on_broken_shard='skip' to read the other shards, or run "
                f"`ilias-rerank store repair {root}`"
            )
        self.ids: list[str] = []
        self._where: dict[str, tuple[int, int]] = {}
        for s, store in enumerate(self.shards):
            for i, image_id in enumerate(store.ids):
                first = self._where.get(image_id)
                if first is not None:
                    names = self.duplicates.setdefault(image_id, [self.shards[first[0]].path.name])
                    names.append(store.path.name)
                    continue
                self._where[image_id] = (s, i)
                self.ids.append(image_id)
        if self.duplicates and on_broken_shard == "raise":
            image_id, names = next(iter(self.duplicates.items()))
            raise FormatError(
                f"{root}: {len(self.duplicates)} ids are in more than one shard (image "
                f"{image_id!r} is in shards {' and '.join(names)}); run "
                f"`ilias-rerank store repair {root}`, or open with on_broken_shard='skip' "
                "(the first shard's copy is read)"
            )
        self._positions: dict[str, int] | None = None
        self._global: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids)

    def __contains__(self, image_id: object) -> bool:
        return image_id in self._where

    def _locate(self, image_id: str) -> tuple[int, int]:
        try:
            return self._where[image_id]
        except (KeyError, TypeError):
            hint = f" (damaged shards left out: {sorted(self.broken)})" if self.broken else ""
            raise MissingIdError(f"{image_id!r} is not in the store {self.path}{hint}") from None

    def _maps_of(self, s: int) -> tuple:
        """Shard ``s``'s maps, opened if needed; the least recently used shards beyond
        ``max_open`` are unmapped (under one lock: no shard is mapped outside the LRU)."""
        with self._lru_lock:
            self._mapped_lru[s] = None
            self._mapped_lru.move_to_end(s)
            while len(self._mapped_lru) > self.max_open:
                old, _ = self._mapped_lru.popitem(last=False)
                self.shards[old].release()
            try:
                return self.shards[s]._mapped()
            except FileNotFoundError:
                del self._mapped_lru[s]
                raise FormatError(
                    f"{self.path}: shard {self.shards[s].path.name} was removed since the store "
                    "was opened (merged or repaired by another process): open the store again"
                ) from None

    def __getitem__(self, image_id: str) -> LocalFeatures:
        s, i = self._locate(image_id)
        return self.shards[s]._features_at(i, self._maps_of(s))

    def position(self, image_id: str) -> int:
        """Row of ``image_id`` in ``ids`` (and ``global_vectors``)."""
        self._locate(image_id)
        if self._positions is None:
            self._positions = {image_id: k for k, image_id in enumerate(self.ids)}
        return self._positions[image_id]

    def shard_of(self, image_id: str) -> str:
        """The name of the shard that holds ``image_id``."""
        return self.shards[self._locate(image_id)[0]].path.name

    @property
    def mapped_shards(self) -> int:
        """How many shards are mapped now (at most ``max_open``)."""
        return sum(1 for st in self.shards if st.is_mapped)

    @property
    def global_vectors(self) -> np.ndarray | None:
        """``(images, G)`` float32 rows in ``ids`` order (a copy in memory), or ``None``."""
        if self._global is None:
            if not self.shards or not self.manifest.get("layout", {}).get("global_dim"):
                return None
            rows = []
            for s, st in enumerate(self.shards):
                g = st.global_vectors
                if g is None:
                    return None
                keep = [i for i, image_id in enumerate(st.ids) if self._where[image_id][0] == s]
                rows.append(np.array(g[keep]))
                if s not in self._mapped_lru:
                    st.release()
            self._global = np.concatenate(rows)
        return self._global

    def close(self) -> None:
        """Unmap every shard (features handed out before stay valid)."""
        with self._lru_lock:
            for st in self.shards:
                st.release()
            self._mapped_lru.clear()
        self._global = None

    def __enter__(self) -> ShardedStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        broken = f", broken={sorted(self.broken)}" if self.broken else ""
        return (
            f"ShardedStore({str(self.path)!r}, shards={len(self.shards)}, images={len(self)}, "
            f"descriptors={self.descriptor_dtype}x{self.dim}{broken})"
        )


# FeatureStore(path) opens a sharded store through this (single.py never imports us).
FeatureStore.sharded_class = ShardedStore
