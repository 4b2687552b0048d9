"""``store check | repair | merge``: keep a sharded store healthy (SQLite's
``integrity_check`` and git's ``fsck`` are the models), through the public methods of
:class:`~ilias_rerank.store.sharded.ShardRegistry` and
:class:`~ilias_rerank.store.single.StoreDirectory`.

- :func:`check_store` changes nothing: it lists what is wrong (an unreadable
  ``shards.json``, a listed shard that is missing, damaged, changed since it was registered
  or of another layout, an image whose checksum fails, ids held by two shards, orphan
  shards, temporary files left by a killed writer). ``report.ok`` is true when it finds
  nothing.
- :func:`repair_store` makes the store openable again without losing any image that an
  intact shard holds: each id is kept in the first shard of the store's layout that holds
  it intact (registered shards by name, then orphans by name); a shard that keeps all its
  ids is registered as it is, one that keeps some is rewritten as a new shard, one that
  keeps none is removed; a shard that cannot be read at all, or holds damaged images, is
  moved to ``<root>/damaged/`` once the new ``shards.json`` is durable. A shard of another
  layout is never removed: it is left where it is, unregistered, and reported (it is a
  store of its own; move it out, or delete it, yourself). ``report.actions`` says what it
  did.
- :func:`merge_store` rewrites many small shards into few large ones (``target_bytes``
  each): the merged shards are written first, then ``shards.json`` is replaced at once,
  then the old shards are removed, so a reader sees the old store or the new one, never a
  half-merged one. A store ``store check --quick`` finds problems in is refused with
  those problems (:class:`UnhealthyStoreError`); every image merged is checked against its
  checksum as it is copied, and a failed copy leaves nothing behind.

Repair and merge hold the root's writer lock (``lock.py``) and never delete or move data
that no other registered shard holds intact; a crash in either leaves orphans that the
next repair or job resolves.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, FormatError, IliasRerankError, StoreLockedError
from .listing import SHARDS_FILE, empty_listing
from .lock import writer_lock
from .sharded import (
    ShardRegistry,
    first_owners,
    layouts_fit,
    merged_key,
    remove_shard,
)
from .single import StoreDirectory, store_layout_key

__all__ = [
    "StoreReport",
    "UnhealthyStoreError",
    "adopt_orphans",
    "check_store",
    "merge_store",
    "repair_store",
]

#: Default size of a merged shard (bytes of feature files).
MERGE_TARGET_BYTES = 1 << 30


@dataclass
class StoreReport:
    """What :func:`check_store` found, or what :func:`repair_store` / :func:`merge_store`
    did. ``findings``: problems (empty when the store is healthy); ``actions``: changes
    made; ``shards`` and ``images``: the registered counts afterwards."""

    path: str
    findings: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    shards: int = 0
    images: int = 0

    @property
    def ok(self) -> bool:
        return not self.findings

    def __str__(self) -> str:
        lines = [f"{self.path}: {self.shards} shards, {self.images} images"]
        lines += [f"  problem: {f}" for f in self.findings]
        lines += [f"  done: {a}" for a in self.actions]
        if not self.findings and not self.actions:
            lines.append("  no problems found")
        return "\n".join(lines)


class UnhealthyStoreError(FormatError):
    """``store merge`` refused a store that ``store check`` finds problems in; ``report``
    is that check's report (``ilias-rerank store repair`` fixes what it names)."""

    def __init__(self, message: str, report: StoreReport) -> None:
        super().__init__(message)
        self.report = report


def _tmp_files(registry: ShardRegistry) -> list[Path]:
    """Temporary files of atomic writes (``_io``) that a killed writer left behind, in
    the root and in the shards no one is writing."""
    found = [p for p in registry.root.glob(".*.tmp") if p.is_file()]
    for name in registry.dirs():
        tmp = [p for p in registry.path(name).glob(".*.tmp") if p.is_file()]
        if tmp:
            try:
                with writer_lock(registry.path(name)):
                    found += tmp
            except StoreLockedError:
                pass  # its writer's own temporary file
    return found


class ShardScan:
    """Every shard directory of a store, read once: registered first (by name), then
    orphans; which are unreadable, changed, damaged, being written, of another layout."""

    def __init__(self, registry: ShardRegistry, verify_images: bool, skip_locked: bool) -> None:
        self.registry = registry
        self.findings: list[str] = []
        self.listing_error: str | None = None
        try:
            self.listing = registry.read() if registry.exists else None
        except FormatError as exc:
            self.listing, self.listing_error = None, str(exc)
            self.findings.append(str(exc))
        listed = {e["name"]: e for e in self.listing["shards"]} if self.listing else {}
        self.listed = listed
        self.order = sorted(listed) + sorted(set(registry.dirs()) - set(listed))
        self.stores: dict[str, StoreDirectory] = {}
        self.unreadable: dict[str, str] = {}
        self.changed: set[str] = set()
        self.bad: dict[str, list[str]] = {}
        self.locked: set[str] = set()
        for name in self.order:
            path = registry.path(name)
            if name in listed and not path.is_dir():
                self.unreadable[name] = "missing"
                continue
            if skip_locked and name not in listed:
                try:
                    with writer_lock(path):
                        pass
                except StoreLockedError:
                    self.locked.add(name)
                    continue
            try:
                store = StoreDirectory(path, verify="access")
            except (FormatError, FileNotFoundError, NotADirectoryError) as exc:
                self.unreadable[name] = str(exc)
                continue
            self.stores[name] = store
            if name in listed and (
                registry.entry(store)["manifest_crc"] != listed[name]["manifest_crc"]
                or len(store) != listed[name]["images"]
            ):
                self.changed.add(name)
            if verify_images:
                bad = store.damaged_ids()
                if bad:
                    self.bad[name] = bad
        # The store's key: the one shards.json declares, else its shards' (in order).
        recorded = self.listing.get("layout") if self.listing else None
        self.key: dict[str, Any] | None = None
        if recorded is not None and "layout" in recorded:
            self.key = {k: recorded[k] for k in ("extractor", "layout", "global_dim")}
        else:
            for name in self.order:
                if name in self.stores and layouts_fit(self.key, self.fit_key(name)):
                    self.key = merged_key(self.key, self.fit_key(name))

    def fit_key(self, name: str) -> dict[str, Any]:
        return store_layout_key(self.stores[name])

    def fits(self, name: str) -> bool:
        """Whether shard ``name`` (readable) has the store's extractor and layout."""
        return layouts_fit(self.key, self.fit_key(name))

    def owners(self) -> dict[str, str]:
        """id -> the first shard (in ``order``) of the store's layout holding it intact."""
        return first_owners(
            (name, [i for i in store.ids if i not in set(self.bad.get(name, ()))])
            for name, store in ((n, self.stores.get(n)) for n in self.order)
            if store is not None and self.fits(name)
        )


def check_store(root: str | os.PathLike, *, verify_images: bool = True) -> StoreReport:
    """List what is wrong with the sharded store at ``root`` without changing anything
    (module docstring); ``verify_images=False`` skips the per-image checksums."""
    registry = ShardRegistry(root)
    report = StoreReport(str(registry.root))
    if not registry.exists and not registry.dirs():
        report.findings.append(
            f"{registry.root}: not a sharded store (no {SHARDS_FILE}, no shards)"
        )
        return report
    scan = ShardScan(registry, verify_images, skip_locked=False)
    report.findings += scan.findings
    if scan.listing is None and scan.listing_error is None:
        report.findings.append(f"{SHARDS_FILE} missing: {len(scan.order)} shards unlisted")
    owner = first_owners(
        (name, scan.stores[name].ids)
        for name in scan.order
        if name in scan.listed and name in scan.stores
    )
    intact = first_owners(
        (name, [i for i in scan.stores[name].ids if i not in set(scan.bad.get(name, ()))])
        for name in scan.order
        if name in scan.listed and name in scan.stores
    )
    twice = 0
    example = ""
    for name in scan.order:
        where = "shard" if name in scan.listed else "orphan shard"
        if name in scan.unreadable:
            report.findings.append(f"{where} {name}: unreadable ({scan.unreadable[name]})")
            continue
        store = scan.stores[name]
        if name in scan.changed:
            report.findings.append(
                f"shard {name}: its manifest changed since it was registered (CRC mismatch)"
            )
        if not scan.fits(name):
            report.findings.append(f"{where} {name}: layout differs from the store's")
        if name in scan.bad:
            bad = scan.bad[name]
            report.findings.append(
                f"{where} {name}: {len(bad)} images fail their checksum (e.g. {bad[0]!r})"
            )
        if name in scan.listed:
            report.shards += 1
            for image_id in store.ids:
                if owner[image_id] != name:
                    twice += 1
                    example = example or f"{image_id!r} in shards {owner[image_id]} and {name}"
        else:
            # Ids a registered shard holds only damaged count as held by nobody: this
            # orphan's copy may be the only intact one.
            new = sum(1 for i in store.ids if intact.get(i) is None)
            report.findings.append(
                f"orphan shard {name}: {len(store)} images, {new} not held intact by a "
                "registered shard"
            )
    if twice:
        report.findings.append(f"{twice} ids are registered in more than one shard ({example})")
    report.images = len(owner)
    tmp = _tmp_files(registry)
    if tmp:
        report.findings.append(
            f"{len(tmp)} temporary files left by killed writers "
            f"(e.g. {tmp[0].relative_to(registry.root)})"
        )
    return report


def repair_store(root: str | os.PathLike, *, lock_timeout: float = 0.0) -> StoreReport:
    """Make the sharded store at ``root`` openable again without losing an image that an
    intact shard holds, and say what was done (module docstring)."""
    registry = ShardRegistry(root)
    report = StoreReport(str(registry.root))
    with writer_lock(registry.root, timeout=lock_timeout, reentrant=True):
        scan = ShardScan(registry, verify_images=True, skip_locked=True)
        if scan.listing_error:
            report.actions.append(
                f"{SHARDS_FILE} was unreadable ({scan.listing_error}): rebuilt from the shards"
            )
        listing = scan.listing or empty_listing()
        owner = scan.owners()
        key = scan.key
        entries: list[dict] = []
        remove: list[Path] = []
        set_aside: list[tuple[Path, str]] = []
        for name in scan.order:
            path = registry.path(name)
            where = "shard" if name in scan.listed else "orphan shard"
            if name in scan.locked:
                report.actions.append(f"left {where} {name} alone: it is being written")
                continue
            store = scan.stores.get(name)
            if store is None:
                reason = scan.unreadable.get(name, "unreadable")
                if path.is_dir():
                    set_aside.append(
                        (path, f"moved unreadable {where} {name} to damaged/{name} ({reason})")
                    )
                else:
                    report.actions.append(f"dropped missing shard {name} from the list")
                continue
            if not scan.fits(name):
                alone = sum(1 for i in store.ids if i not in owner)
                report.actions.append(
                    f"left {where} {name} where it is, unregistered: its layout "
                    f"{scan.fit_key(name)} differs from the store's {scan.key}; its "
                    f"{len(store)} images ({alone} held by no other shard) are kept (it is a "
                    f"store of its own: move it out of {registry.root / 'shards'}, or delete it)"
                )
                continue
            keep = [i for i in store.ids if owner.get(i) == name]
            if keep:
                key = merged_key(key, scan.fit_key(name))
            if len(keep) == len(store) and keep:
                entries.append(registry.entry(store))
                if name not in scan.listed:
                    report.actions.append(f"registered orphan shard {name} ({len(keep)} images)")
                elif name in scan.changed:
                    report.actions.append(
                        f"registered shard {name} again: its manifest had changed, its "
                        f"{len(keep)} images are intact"
                    )
                continue
            if keep:
                new = registry.rewrite(store, keep)
                entries.append(registry.entry(new))
                report.actions.append(
                    f"rewrote {where} {name} as {new.path.name}: kept {len(keep)} of "
                    f"{len(store)} images (the others are held by another shard or damaged)"
                )
            elif not scan.bad.get(name):
                report.actions.append(
                    f"removed {where} {name}: each of its {len(store)} images is held by "
                    "another shard"
                )
            if scan.bad.get(name):
                set_aside.append(
                    (path, f"moved {name} ({len(scan.bad[name])} damaged images) to damaged/{name}")
                )
            else:
                remove.append(path)
        listing["shards"] = entries
        registry.write(listing, key)
        # Only after the new list is durable: a crash before leaves the old list and every
        # shard it names, never a list that names a shard moved away.
        for path, action in set_aside:
            registry.set_aside(path)
            report.actions.append(action)
        for path in remove:
            remove_shard(path)
        for tmp in _tmp_files(registry):
            tmp.unlink(missing_ok=True)
            report.actions.append(f"removed temporary file {tmp.relative_to(registry.root)}")
        report.shards = len(entries)
        report.images = sum(e["images"] for e in entries)
    return report


def adopt_orphans(root: str | os.PathLike, *, lock_timeout: float = 0.0) -> list[str]:
    """Resolve the orphan shards of ``root`` (committed, never registered: a job that was
    killed or failed): register the ids they add (:meth:`ShardRegistry.register`), remove
    those that never committed anything, set aside the unreadable ones, leave alone those
    being written or of another layout; and remove the temporary files killed writers left.
    Returns what was done. The job runs this first."""
    registry = ShardRegistry(root)
    actions: list[str] = []
    with writer_lock(registry.root, timeout=lock_timeout, reentrant=True):
        key = registry.key(registry.read()) if registry.exists else None
        good = []
        for name in registry.orphans():
            path = registry.path(name)
            try:
                with writer_lock(path):
                    shard = StoreDirectory(path, verify="none")
            except StoreLockedError:
                actions.append(f"left orphan shard {name} alone: it is being written")
                continue
            except (FormatError, FileNotFoundError) as exc:
                if (path / "manifest.json").exists():
                    registry.set_aside(path)
                    actions.append(f"moved unreadable orphan shard {name} to damaged/ ({exc})")
                else:
                    remove_shard(path)
                    actions.append(f"removed orphan shard {name}: nothing was committed")
                continue
            if not layouts_fit(key, store_layout_key(shard)):
                actions.append(
                    f"left orphan shard {name} alone: its layout differs from the store's"
                )
                continue
            key = merged_key(key, store_layout_key(shard))
            good.append(name)
        if good:
            registry.register(good)
            actions.append(f"registered the new ids of {len(good)} orphan shards")
        for tmp in _tmp_files(registry):
            tmp.unlink(missing_ok=True)
    return actions


def check_target_bytes(target_bytes: Any) -> int:
    """``target_bytes`` of a merge, range-checked (1 KiB to 16 TiB)."""
    if isinstance(target_bytes, bool) or not isinstance(target_bytes, int):
        raise ConfigError(f"target_bytes: expected an int, got {target_bytes!r}")
    if not 1 << 10 <= target_bytes <= 1 << 44:
        raise ConfigError(f"target_bytes: expected 1 KiB ..= 16 TiB, got {target_bytes}")
    return target_bytes


def merge_store(
    root: str | os.PathLike,
    *,
    target_bytes: int = MERGE_TARGET_BYTES,
    lock_timeout: float = 0.0,
) -> StoreReport:
    """Rewrite the small shards of the sharded store at ``root`` (under half of
    ``target_bytes``) into shards of about ``target_bytes``, atomically (module
    docstring). A store ``store check --quick`` finds problems in is refused with an
    :class:`UnhealthyStoreError` naming them: repair it first."""
    check_target_bytes(target_bytes)
    registry = ShardRegistry(root)
    report = StoreReport(str(registry.root))
    with writer_lock(registry.root, timeout=lock_timeout, reentrant=True):
        health = check_store(registry.root, verify_images=False)
        if not health.ok:
            raise UnhealthyStoreError(
                f"store merge: {registry.root} has problems `store check` finds: "
                + "; ".join(health.findings)
                + f"; run `ilias-rerank store repair {registry.root}` before merging",
                health,
            )
        listing = registry.read()
        key = registry.key(listing)
        stores = {name: registry.open(name) for name in registry.names(listing)}
        small = [n for n in sorted(stores) if stores[n].byte_size < target_bytes // 2]
        groups: list[list[str]] = [[]]
        size = 0
        for name in small:
            if groups[-1] and size + stores[name].byte_size > target_bytes:
                groups.append([])
                size = 0
            groups[-1].append(name)
            size += stores[name].byte_size
        groups = [g for g in groups if len(g) > 1]
        entries = {e["name"]: e for e in listing["shards"]}
        old: list[Path] = []
        written: list[Path] = []
        try:
            for group in groups:
                merged = registry.write_shard(
                    [(stores[name], stores[name].ids) for name in group], "m"
                )
                written.append(merged.path)
                expected = sum(len(stores[n]) for n in group)
                if len(merged) != expected:
                    raise IliasRerankError(
                        f"merge: expected {expected} images in {merged.path}, got {len(merged)}"
                    )
                for name in group:
                    del entries[name]
                    old.append(registry.path(name))
                entries[merged.path.name] = registry.entry(merged)
                report.actions.append(
                    f"merged {len(group)} shards into {merged.path.name} ({expected} images)"
                )
            if groups:
                listing["shards"] = list(entries.values())
                registry.write(listing, key)  # the one moment the merge becomes visible
        except BaseException:
            for path in written:  # nothing lists them: the store is as it was
                remove_shard(path)
            raise
        for path in old:
            remove_shard(path)
        report.shards = len(entries)
        report.images = sum(e["images"] for e in entries.values())
    return report
