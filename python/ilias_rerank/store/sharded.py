"""A sharded store: shard directories written by independent workers, made visible by a
top-level manifest.

Layout::

    <root>/shards.json          format, version, the shards' common layout (extractor,
                                descriptor dtype and dimension, frame width, global
                                dimension) and per shard: name, image and feature counts,
                                CRC-32 of its manifest; and its own CRC-32
    <root>/shards/<name>/       one store directory each (``single.py``)

A worker writes its own shard with a :class:`~ilias_rerank.store.single.StoreWriter` and
no coordination; the shard becomes part of the store only when :func:`register_shards`
rewrites ``shards.json`` (under a lock, atomically: write, fsync, rename). A shard that is
being written, or whose writer died, is simply not listed. Readers open every listed shard
memory-mapped and look ids up across them. A listed shard that is missing, truncated,
corrupt or changed since it was registered is a :class:`~ilias_rerank.errors.FormatError`
naming it; with ``on_broken_shard="skip"`` the store opens with the other shards' ids, and
``store.broken`` says what was left out and why.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from .._io import atomic_write_json
from ..errors import FormatError, InvalidInputError, MissingIdError
from ..features import LocalFeatures
from .single import FeatureStore

__all__ = ["SHARDS_FILE", "ShardedStore", "register_shards", "shard_path"]

SHARDS_FILE = "shards.json"
SHARDED_FORMAT = "ilias-rerank-sharded-store"
SHARDED_VERSION = 1
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_LAYOUT = ("extractor", "descriptors", "frame_width", "global_dim")


def shard_path(root: str | os.PathLike, name: str) -> Path:
    """The directory of shard ``name`` of the sharded store at ``root``."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInputError(
            f"shard name: expected letters, digits, '.', '_' or '-' (at most 128), got {name!r}"
        )
    return Path(root) / "shards" / name


def _crc(manifest: dict) -> int:
    body = {k: v for k, v in manifest.items() if k != "checksum"}
    return zlib.crc32(json.dumps(body, sort_keys=True).encode())


def _read(root: Path) -> dict:
    path = root / SHARDS_FILE
    try:
        m = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"{path}: unreadable shard list ({exc})") from None
    if not isinstance(m, dict) or m.get("format") != SHARDED_FORMAT:
        raise FormatError(f"{path}: expected format {SHARDED_FORMAT!r}")
    if m.get("version") != SHARDED_VERSION:
        raise FormatError(f"{path}: expected version {SHARDED_VERSION}, got {m.get('version')!r}")
    if not isinstance(m.get("shards"), list) or m.get("checksum") != _crc(m):
        raise FormatError(f"{path}: checksum mismatch (corrupt shard list)")
    return m


@contextlib.contextmanager
def _locked(root: Path):
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".shards.lock", "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _manifest_crc(shard: Path) -> int:
    try:
        return zlib.crc32((shard / "manifest.json").read_bytes())
    except OSError as exc:
        raise FormatError(f"shard {shard.name}: no committed manifest ({exc})") from None


def register_shards(root: str | os.PathLike, names: Iterable[str]) -> dict:
    """Make the shards ``names`` (written under ``root/shards/``) part of the store at
    ``root``, creating it if needed: checked (committed, same layout as the others), then
    listed in ``shards.json`` by one atomic rewrite under a lock. Registering a shard again
    updates its entry (a shard that was resumed and grew). Empty shards are skipped.
    Returns the new top-level manifest."""
    root = Path(root)
    with _locked(root):
        if (root / SHARDS_FILE).is_file():
            m = _read(root)
        elif (root / "manifest.json").is_file():
            raise InvalidInputError(f"{root}: a single store, not a sharded one")
        else:
            m = {"format": SHARDED_FORMAT, "version": SHARDED_VERSION, "layout": None, "shards": []}
        entries = {e["name"]: e for e in m["shards"]}
        for name in names:
            path = shard_path(root, name)
            store = FeatureStore(path, verify="none")
            if not len(store):
                continue
            layout = {key: store.manifest.get(key) for key in _LAYOUT}
            if m["layout"] is None:
                m["layout"] = layout
            elif layout != m["layout"]:
                raise FormatError(
                    f"shard {name}: layout {layout} differs from the store's {m['layout']}"
                )
            entries[name] = {
                "name": name,
                "images": len(store),
                "features": int(store.manifest["features"]),
                "manifest_crc": _manifest_crc(path),
            }
        m["shards"] = [entries[k] for k in sorted(entries)]
        m["checksum"] = _crc(m)
        atomic_write_json(root / SHARDS_FILE, m, indent=1)
    return m


class ShardedStore(FeatureStore):
    """A sharded store, read like a :class:`FeatureStore` (see the module docstring)."""

    def __init__(
        self, path: str | os.PathLike, verify: str = "access", on_broken_shard: str = "raise"
    ) -> None:
        if on_broken_shard not in ("raise", "skip"):
            raise ValueError(
                f"on_broken_shard: expected 'raise' or 'skip', got {on_broken_shard!r}"
            )
        self.path = root = Path(path)
        self.manifest = m = _read(root)
        layout = m.get("layout") or {}
        self.extractor = layout.get("extractor", {})
        descriptors = layout.get("descriptors") or {"dtype": "uint8", "dim": 0}
        self.descriptor_dtype, self.dim = descriptors["dtype"], int(descriptors["dim"])
        self.shards: list[FeatureStore] = []
        self.broken: dict[str, str] = {}
        for entry in m["shards"]:
            spath = shard_path(root, entry["name"])
            try:
                if _manifest_crc(spath) != entry["manifest_crc"]:
                    raise FormatError("its manifest changed since it was registered")
                store = FeatureStore(spath, verify=verify)
                if len(store) != entry["images"]:
                    raise FormatError(f"expected {entry['images']} images, got {len(store)}")
            except (FormatError, OSError) as exc:
                self.broken[entry["name"]] = str(exc)
                continue
            self.shards.append(store)
        if self.broken and on_broken_shard == "raise":
            listing = "; ".join(f"shard {k}: {v}" for k, v in self.broken.items())
            raise FormatError(
                f"{root}: {len(self.broken)} of {len(m['shards'])} shards are damaged ({listing}); "
                "open with on_broken_shard='skip' to read the other shards"
            )
        self.ids: list[str] = []
        self._where: dict[str, tuple[int, int]] = {}
        for s, store in enumerate(self.shards):
            for i, image_id in enumerate(store.ids):
                if image_id in self._where:
                    other = self.shards[self._where[image_id][0]].path.name
                    raise FormatError(
                        f"{root}: image {image_id!r} is in shards {other} and {store.path.name}"
                    )
                self._where[image_id] = (s, i)
            self.ids.extend(store.ids)
        self._offsets = np.cumsum([0] + [len(st) for st in self.shards])
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

    def __getitem__(self, image_id: str) -> LocalFeatures:
        s, i = self._locate(image_id)
        return self.shards[s]._features_at(i)

    def position(self, image_id: str) -> int:
        s, i = self._locate(image_id)
        return int(self._offsets[s]) + i

    def shard_of(self, image_id: str) -> str:
        """The name of the shard that holds ``image_id``."""
        return self.shards[self._locate(image_id)[0]].path.name

    @property
    def global_vectors(self) -> np.ndarray | None:
        if self._global is None:
            parts = [st.global_vectors for st in self.shards]
            if not parts or any(p is None for p in parts):
                return None
            self._global = np.concatenate(parts) if len(parts) > 1 else parts[0]
        return self._global

    def __repr__(self) -> str:
        broken = f", broken={sorted(self.broken)}" if self.broken else ""
        return (
            f"ShardedStore({str(self.path)!r}, shards={len(self.shards)}, images={len(self)}, "
            f"descriptors={self.descriptor_dtype}x{self.dim}{broken})"
        )
