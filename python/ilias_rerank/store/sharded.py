"""A sharded store: shard directories written by independent workers, made visible by a
top-level ``shards.json`` (``listing.py``). :class:`ShardRegistry` is the one place that
reads and changes that list and decides which shard owns an id.

Guarantees (version 2 of ``shards.json``):

- **One owner per id.** :meth:`ShardRegistry.register` makes a shard part of the store
  only with the ids no registered shard holds: a shard that adds none is removed, one that
  adds some is rewritten as a new shard holding only those (the original removed). No
  sequence of runs, kills, retries or failed registrations can register an id twice or
  remove a shard whose ids no registered shard holds: who owns an id is computed from
  ``shards.json`` itself at each registration (:meth:`ShardRegistry.owners`), never kept
  between two.
- **A registered shard is never written again.** :class:`~ilias_rerank.store.StoreWriter`
  refuses it; a retry writes a new shard. Registration rewrites ``shards.json`` atomically
  (write, fsync, rename) under the root's writer lock: a shard that is being written, or
  whose writer died, is simply not listed (an *orphan*, adopted or removed by the next job
  or by ``store repair``).
- **One layout.** Every registered shard has the store's extractor, layout and global
  dimension (a shard whose images are all featureless has no layout yet and fits any).

Reading is :class:`~ilias_rerank.store.FeatureStore` (``reader.py``); ``store check |
repair | merge`` are ``maintenance.py``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import FormatError, InvalidInputError, StoreLockedError
from .listing import (
    SHARDS_FILE,
    empty_listing,
    listing_checksum,
    listing_layout,
    new_shard_name,
    read_listing,
    shard_dirs,
    shard_manifest_crc,
    shard_path,
    write_listing,
)
from .lock import writer_lock
from .single import StoreDirectory, read_ids, store_layout_key
from .writer import StoreWriter

__all__ = [
    "SHARDS_FILE",
    "ShardRegistry",
    "copy_images",
    "first_owners",
    "layouts_fit",
    "merged_key",
    "orphan_shards",
    "register_shards",
    "shard_path",
]

# The names the tests' hand-built fixtures use.
_crc = listing_checksum
_manifest_crc = shard_manifest_crc


def first_owners(
    shards: Iterable[tuple[str, Iterable[str]]], owner: dict[str, str] | None = None
) -> dict[str, str]:
    """id -> the first of ``shards`` (``(name, ids)`` in order) that holds it, added to
    ``owner`` (ids there keep their owner). The one rule of id ownership: registration,
    check and repair all use it."""
    owner = {} if owner is None else owner
    for name, ids in shards:
        for image_id in ids:
            owner.setdefault(image_id, name)
    return owner


def layouts_fit(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """Whether two store keys (``single.store_layout_key``; ``None``: nothing fixed) can
    be shards of one store: same extractor and global dimension, same layout or one not
    fixed yet."""
    if a is None or b is None:
        return True
    return (
        a["extractor"] == b["extractor"]
        and a["global_dim"] == b["global_dim"]
        and (a["layout"] is None or b["layout"] is None or a["layout"] == b["layout"])
    )


def merged_key(a: dict[str, Any] | None, b: dict[str, Any]) -> dict[str, Any]:
    """The store key once ``b`` (which fits ``a``) is registered too."""
    if a is None:
        return b
    return a if a["layout"] is not None else {**a, "layout": b["layout"]}


def copy_images(store: StoreDirectory | Any, ids: Iterable[str], writer: StoreWriter) -> int:
    """Append the images ``ids`` of ``store`` (features, image size, global vector) to
    ``writer``, each checked against its checksum on the way; returns how many. A store
    opened with ``verify="none"`` is refused: a copy gets fresh checksums, so a damaged
    image copied unchecked would pass every later check."""
    if getattr(store, "verify", "access") == "none":
        raise ValueError("copy_images: expected a store opened with verification, got 'none'")
    glob = store.global_vectors
    count = 0
    for image_id in ids:
        row = store.position(image_id)
        writer.add(image_id, store[image_id], None if glob is None else glob[row])
        count += 1
    return count


def remove_shard(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def orphan_shards(root: str | os.PathLike) -> list[str]:
    """Shard directories under ``root/shards`` that ``shards.json`` does not list."""
    return ShardRegistry(root).orphans()


class ShardRegistry:
    """The shards of the sharded store at ``root``: ``shards.json`` read, checked and
    rewritten (atomically, by a holder of the root's writer lock), which shard owns which
    id, and the shards' directories (registered, orphan, set aside).

    Every method reads ``shards.json`` anew (or takes the listing a caller read under the
    lock): nothing it keeps can disagree with the file.
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    # --- the listing ---------------------------------------------------------------------
    @property
    def exists(self) -> bool:
        return (self.root / SHARDS_FILE).is_file()

    def read(self) -> dict:
        """``shards.json`` (an empty listing when there is none; a single store's directory
        is an :class:`~ilias_rerank.errors.InvalidInputError`)."""
        if self.exists:
            return read_listing(self.root)
        if (self.root / "manifest.json").is_file():
            raise InvalidInputError(f"{self.root}: a single store, not a sharded one")
        return empty_listing()

    def write(self, listing: dict, key: dict[str, Any] | None) -> dict:
        """Replace ``shards.json`` by ``listing`` of the store key ``key``, atomically."""
        listing["layout"] = listing_layout(key)
        return write_listing(self.root, listing)

    def key(self, listing: dict) -> dict[str, Any] | None:
        """The store key (extractor, layout, global dimension) the listing records; for a
        listing of an earlier release (no declared layout), the one of its shards."""
        recorded = listing.get("layout")
        if recorded is not None and "layout" in recorded:
            return {k: recorded[k] for k in ("extractor", "layout", "global_dim")}
        key = None
        for entry in listing["shards"]:
            with contextlib.suppress(FormatError, OSError):
                shard = self.open(entry["name"], verify="none")
                if layouts_fit(key, store_layout_key(shard)):
                    key = merged_key(key, store_layout_key(shard))
        return key

    def names(self, listing: dict | None = None) -> list[str]:
        """The registered shards' names, in the listing's order."""
        return [e["name"] for e in (listing or self.read())["shards"]]

    # --- shard directories ---------------------------------------------------------------
    def path(self, name: str) -> Path:
        return shard_path(self.root, name)

    def open(self, name: str, verify: str = "access") -> StoreDirectory:
        return StoreDirectory(self.path(name), verify=verify)

    def dirs(self) -> list[str]:
        """Every shard directory under ``root/shards`` (registered or not)."""
        return shard_dirs(self.root)

    def orphans(self) -> list[str]:
        """Shard directories that ``shards.json`` does not list."""
        listed = set(self.names()) if self.exists else set()
        return [name for name in self.dirs() if name not in listed]

    def entry(self, shard: StoreDirectory) -> dict:
        """The listing entry of a committed shard."""
        return {
            "name": shard.path.name,
            "images": len(shard),
            "features": int(shard.manifest["features"]),
            "manifest_crc": shard_manifest_crc(shard.path),
        }

    def write_shard(
        self, sources: Iterable[tuple[StoreDirectory, Iterable[str]]], prefix: str
    ) -> StoreDirectory:
        """A new shard (committed, not registered) holding, in order, the images ``ids``
        of each ``(shard, ids)`` of ``sources`` (of one extractor and layout), each checked
        against its checksum as copied. A failed copy (a damaged image, an id twice)
        removes what it wrote and raises."""
        path = self.path(new_shard_name(prefix))
        writer = None
        try:
            for shard, ids in sources:
                if writer is None:
                    writer = StoreWriter(
                        path, shard.extractor, layout=shard.layout, commit_every=1 << 30
                    )
                copy_images(shard, ids, writer)
                shard.release()
            if writer is not None:
                writer.close()
        except BaseException:
            if writer is not None:
                with contextlib.suppress(Exception):
                    writer.close()
            remove_shard(path)
            raise
        return StoreDirectory(path, verify="none")

    def rewrite(self, shard: StoreDirectory, ids: list[str], prefix: str = "r") -> StoreDirectory:
        """A new shard holding ``ids`` of ``shard`` (see :meth:`write_shard`)."""
        return self.write_shard([(shard, ids)], prefix)

    def set_aside(self, path: Path) -> Path:
        """Move a shard directory to ``root/damaged/`` (kept, never deleted)."""
        target = self.root / "damaged" / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            target = target.with_name(new_shard_name(path.name[:100]))
        os.replace(path, target)
        return target

    # --- ownership -----------------------------------------------------------------------
    def owners(self, listing: dict) -> dict[str, str]:
        """id -> the registered shard that owns it (the first listed that holds it)."""
        return first_owners((e["name"], read_ids(self.path(e["name"]))) for e in listing["shards"])

    def held_intact(self, ids: list[str], owner: dict[str, str]) -> bool:
        """Whether every id of ``ids`` passes its checksum in the shard ``owner`` names."""
        by_shard: dict[str, list[str]] = {}
        for image_id in ids:
            by_shard.setdefault(owner[image_id], []).append(image_id)
        for name, held in by_shard.items():
            try:
                shard = StoreDirectory(self.path(name))
                try:
                    for image_id in held:
                        shard.features_at(shard.position(image_id))
                finally:
                    shard.release()
            except (FormatError, OSError, KeyError):
                return False
        return True

    # --- registration --------------------------------------------------------------------
    def register(self, names: Iterable[str], *, lock_timeout: float = 0.0) -> dict:
        """See :func:`register_shards`."""
        root = self.root
        # Each shard's own lock is held until the new list is written: a writer that
        # reopened it in between would change the manifest whose checksum the list records.
        with (
            writer_lock(root, timeout=lock_timeout, reentrant=True),
            contextlib.ExitStack() as shard_locks,
        ):
            listing = self.read()
            key = self.key(listing)
            owner = self.owners(listing)  # computed here, changed only in this call
            entries = {e["name"]: e for e in listing["shards"]}
            removed: list[Path] = []
            written: list[Path] = []
            try:
                for name in dict.fromkeys(names):
                    path = self.path(name)
                    if name in entries:
                        if shard_manifest_crc(path) != entries[name]["manifest_crc"]:
                            raise FormatError(
                                f"shard {name}: its manifest changed since it was registered "
                                f"(run `ilias-rerank store repair {root}`)"
                            )
                        continue
                    if not path.is_dir():
                        raise FormatError(f"shard {name}: no such shard directory {path}")
                    try:
                        shard_locks.enter_context(writer_lock(path))  # nobody is writing it
                    except StoreLockedError:
                        raise StoreLockedError(
                            f"shard {name}: it is being written (its writer holds its lock); "
                            "expected a finished shard"
                        ) from None
                    shard = StoreDirectory(path)  # images copied below are checked as read
                    if not len(shard):
                        removed.append(path)
                        continue
                    shard_key = store_layout_key(shard)
                    if not layouts_fit(key, shard_key):
                        raise FormatError(
                            f"shard {name}: layout {shard_key} differs from the store's {key}"
                        )
                    key = merged_key(key, shard_key)
                    new = [i for i in shard.ids if i not in owner]
                    if len(new) < len(shard):
                        # The original goes only where every id it does not bring is held
                        # intact by its owner: its copy may be the only good one (it then
                        # stays an orphan, for `store repair` to adopt).
                        held = [i for i in shard.ids if i in owner]
                        if self.held_intact(held, owner):
                            removed.append(path)
                        if not new:
                            continue
                        shard = self.rewrite(shard, new)
                        written.append(shard.path)
                    entries[shard.path.name] = self.entry(shard)
                    first_owners([(shard.path.name, shard.ids)], owner)
                listing["shards"] = list(entries.values())
                self.write(listing, key)
            except BaseException:
                for path in written:  # copies nothing lists; the originals are untouched
                    remove_shard(path)
                raise
            for path in removed:  # after the new list is durable: a crash leaves orphans
                remove_shard(path)
        return listing


def register_shards(
    root: str | os.PathLike, names: Iterable[str], *, lock_timeout: float = 0.0
) -> dict:
    """Make the shards ``names`` (written under ``root/shards/``) part of the store at
    ``root``, creating it if needed, under the root's writer lock, by one atomic rewrite of
    ``shards.json``. Each shard is checked (committed, not being written, same layout as
    the others) and brings only the ids no registered shard holds: a shard that adds none
    is removed; one that adds some but not all is rewritten as a new shard with just
    those (the original removed). A shard registered already is left as it is. A failed
    registration changes nothing (the shards stay orphans). Returns the new listing."""
    return ShardRegistry(root).register(names, lock_timeout=lock_timeout)
