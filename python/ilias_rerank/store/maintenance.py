"""``store check | repair | merge``: keep a sharded store healthy (SQLite's
``integrity_check`` and git's ``fsck`` are the models).

- :func:`check_store` changes nothing: it lists what is wrong (an unreadable
  ``shards.json``, a listed shard that is missing, damaged, changed since it was registered
  or of another layout, an image whose checksum fails, ids held by two shards, orphan
  shards, temporary files left by a killed writer). ``report.ok`` is true when it finds
  nothing.
- :func:`repair_store` makes the store openable again without losing any image that an
  intact shard holds: each id is kept in the first shard that holds it intact (registered
  shards by name, then orphans by name); a shard that keeps all its ids is registered as
  it is, one that keeps some is rewritten as a new shard, one that keeps none is removed;
  a shard that cannot be read at all is moved to ``<root>/damaged/``. ``report.actions``
  says what it did.
- :func:`merge_store` rewrites many small shards into few large ones (``target_bytes``
  each): the merged shards are written first, then ``shards.json`` is replaced at once,
  then the old shards are removed, so a reader sees the old store or the new one, never a
  half-merged one. (A reader opened before the merge that later needs a removed shard
  gets a :class:`~ilias_rerank.errors.FormatError` asking it to reopen the store.)

Repair and merge hold the root's writer lock (``lock.py``); a crash in either leaves
orphans that the next repair or job resolves.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, FormatError, IliasRerankError, StoreLockedError
from .lock import writer_lock
from .sharded import (
    SHARDS_FILE,
    _empty,
    _entry,
    _layout,
    _manifest_crc,
    _read,
    _remove,
    _rewrite,
    _write,
    copy_images,
    new_shard_name,
    shard_dirs,
    shard_path,
)
from .single import FeatureStore, StoreWriter

__all__ = ["StoreReport", "adopt_orphans", "check_store", "merge_store", "repair_store"]

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


def _tmp_files(root: Path) -> list[Path]:
    """Temporary files of atomic writes (``_io``) that a killed writer left behind, in
    the root and in the shards no one is writing."""
    found = [p for p in root.glob(".*.tmp") if p.is_file()]
    for name in shard_dirs(root):
        tmp = [p for p in shard_path(root, name).glob(".*.tmp") if p.is_file()]
        if tmp:
            try:
                with writer_lock(shard_path(root, name)):
                    found += tmp
            except StoreLockedError:
                pass  # its writer's own temporary file
    return found


def _shard_bytes(store: FeatureStore) -> int:
    return sum(int(v) for v in store.manifest["bytes"].values())


def _bad_images(store: FeatureStore) -> list[str]:
    """Ids of ``store`` whose features fail their checksum (the global vectors' CRC
    failing marks every image)."""
    bad = []
    for i, image_id in enumerate(store.ids):
        try:
            store._features_at(i)
        except FormatError:
            bad.append(image_id)
    try:
        _ = store.global_vectors
    except FormatError:
        bad = list(store.ids)
    store.release()
    return bad


class _Scan:
    """Every shard directory of a store, read once: registered first (by name), orphans."""

    def __init__(self, root: Path, verify_images: bool, skip_locked: bool) -> None:
        self.root = root
        self.findings: list[str] = []
        self.listing_error: str | None = None
        try:
            self.m = _read(root) if (root / SHARDS_FILE).is_file() else None
        except FormatError as exc:
            self.m, self.listing_error = None, str(exc)
            self.findings.append(str(exc))
        listed = {e["name"]: e for e in self.m["shards"]} if self.m else {}
        on_disk = set(shard_dirs(root))
        self.order = sorted(listed) + sorted(on_disk - set(listed))
        self.listed = listed
        self.stores: dict[str, FeatureStore] = {}
        self.unreadable: dict[str, str] = {}
        self.changed: set[str] = set()
        self.bad: dict[str, list[str]] = {}
        self.locked: set[str] = set()
        for name in self.order:
            path = shard_path(root, name)
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
                store = FeatureStore(path, verify="access")
            except (FormatError, FileNotFoundError, NotADirectoryError) as exc:
                self.unreadable[name] = str(exc)
                continue
            self.stores[name] = store
            if name in listed and (
                _manifest_crc(path) != listed[name]["manifest_crc"]
                or len(store) != listed[name]["images"]
            ):
                self.changed.add(name)
            if verify_images:
                bad = _bad_images(store)
                if bad:
                    self.bad[name] = bad
        self.layout = self.m["layout"] if self.m and self.m.get("layout") else None
        if self.layout is None and self.stores:
            self.layout = _layout(next(iter(self.stores.values())))

    def owners(self) -> dict[str, str]:
        """id -> the first shard (in ``order``) holding it intact, of the store's layout."""
        owner: dict[str, str] = {}
        for name in self.order:
            store = self.stores.get(name)
            if store is None or _layout(store) != self.layout:
                continue
            bad = set(self.bad.get(name, ()))
            for image_id in store.ids:
                if image_id not in bad:
                    owner.setdefault(image_id, name)
        return owner


def check_store(root: str | os.PathLike, *, verify_images: bool = True) -> StoreReport:
    """List what is wrong with the sharded store at ``root`` without changing anything
    (module docstring); ``verify_images=False`` skips the per-image checksums."""
    root = Path(root)
    report = StoreReport(str(root))
    if not (root / SHARDS_FILE).is_file() and not shard_dirs(root):
        report.findings.append(f"{root}: not a sharded store (no {SHARDS_FILE}, no shards)")
        return report
    scan = _Scan(root, verify_images, skip_locked=False)
    report.findings += scan.findings
    if scan.m is None and scan.listing_error is None:
        report.findings.append(f"{SHARDS_FILE} missing: {len(scan.order)} shards unlisted")
    seen: dict[str, str] = {}
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
        if scan.layout is not None and _layout(store) != scan.layout:
            report.findings.append(f"{where} {name}: layout differs from the store's")
        if name in scan.bad:
            bad = scan.bad[name]
            report.findings.append(
                f"{where} {name}: {len(bad)} images fail their checksum (e.g. {bad[0]!r})"
            )
        if name in scan.listed:
            report.shards += 1
            for image_id in store.ids:
                if image_id in seen:
                    twice += 1
                    example = example or f"{image_id!r} in shards {seen[image_id]} and {name}"
                else:
                    seen[image_id] = name
        else:
            new = sum(1 for i in store.ids if i not in seen)
            report.findings.append(
                f"orphan shard {name}: {len(store)} images, {new} not in a registered shard"
            )
    if twice:
        report.findings.append(f"{twice} ids are registered in more than one shard ({example})")
    report.images = len(seen)
    tmp = _tmp_files(root)
    if tmp:
        report.findings.append(
            f"{len(tmp)} temporary files left by killed writers (e.g. {tmp[0].relative_to(root)})"
        )
    return report


def repair_store(root: str | os.PathLike, *, lock_timeout: float = 0.0) -> StoreReport:
    """Make the sharded store at ``root`` openable again without losing an image that an
    intact shard holds, and say what was done (module docstring)."""
    root = Path(root)
    report = StoreReport(str(root))
    with writer_lock(root, timeout=lock_timeout, reentrant=True) as state:
        scan = _Scan(root, verify_images=True, skip_locked=True)
        if scan.listing_error:
            report.actions.append(
                f"{SHARDS_FILE} was unreadable ({scan.listing_error}): rebuilt from the shards"
            )
        m = scan.m or _empty()
        m["layout"] = scan.layout
        owner = scan.owners()
        entries: list[dict] = []
        remove: list[Path] = []
        set_aside: list[Path] = []
        for name in scan.order:
            path = shard_path(root, name)
            where = "shard" if name in scan.listed else "orphan shard"
            if name in scan.locked:
                report.actions.append(f"left {where} {name} alone: it is being written")
                continue
            store = scan.stores.get(name)
            if store is None:
                reason = scan.unreadable.get(name, "unreadable")
                if path.is_dir():
                    _set_aside(root, path)
                    report.actions.append(
                        f"moved unreadable {where} {name} to damaged/{name} ({reason})"
                    )
                else:
                    report.actions.append(f"dropped missing shard {name} from the list")
                continue
            keep = [i for i in store.ids if owner.get(i) == name]
            if len(keep) == len(store) and keep:
                entries.append(_entry(path, store))
                if name not in scan.listed:
                    report.actions.append(f"registered orphan shard {name} ({len(keep)} images)")
                elif name in scan.changed:
                    report.actions.append(
                        f"registered shard {name} again: its manifest had changed, its "
                        f"{len(keep)} images are intact"
                    )
                continue
            if keep:
                new = _rewrite(root, store, keep)
                entries.append(_entry(new, FeatureStore(new, verify="none")))
                report.actions.append(
                    f"rewrote {where} {name} as {new.name}: kept {len(keep)} of {len(store)} "
                    "images (the others are held by another shard or damaged)"
                )
            else:
                report.actions.append(
                    f"removed {where} {name}: none of its {len(store)} images is needed "
                    "(held by another shard, or damaged)"
                )
            if scan.bad.get(name):
                set_aside.append(path)
                report.actions.append(
                    f"moved {name} ({len(scan.bad[name])} damaged images) to damaged/{name}"
                )
            else:
                remove.append(path)
        m["shards"] = entries
        _write(root, m)
        state.pop("ids", None)
        # Only after the new list is durable: a crash before leaves the old list and every
        # shard it names, never a list that names a shard moved away.
        for path in set_aside:
            _set_aside(root, path)
        for path in remove:
            _remove(path)
        for tmp in _tmp_files(root):
            tmp.unlink(missing_ok=True)
            report.actions.append(f"removed temporary file {tmp.relative_to(root)}")
        report.shards = len(entries)
        report.images = sum(e["images"] for e in entries)
    return report


def adopt_orphans(root: str | os.PathLike, *, lock_timeout: float = 0.0) -> list[str]:
    """Resolve the orphan shards of ``root`` (committed, never registered: a job that was
    killed or failed): register the ids they add
    (:func:`~ilias_rerank.store.sharded.register_shards`), remove those
    that add none or never committed anything, set aside the unreadable ones; and remove
    the temporary files killed writers left. Shards being written are left alone. Returns
    what was done. The job runs this first."""
    from .sharded import orphan_shards, register_shards

    root = Path(root)
    actions: list[str] = []
    with writer_lock(root, timeout=lock_timeout, reentrant=True):
        good = []
        for name in orphan_shards(root):
            path = shard_path(root, name)
            try:
                with writer_lock(path):
                    FeatureStore(path, verify="none")
                good.append(name)
            except StoreLockedError:
                actions.append(f"left orphan shard {name} alone: it is being written")
            except (FormatError, FileNotFoundError) as exc:
                if (path / "manifest.json").exists():
                    _set_aside(root, path)
                    actions.append(f"moved unreadable orphan shard {name} to damaged/ ({exc})")
                else:
                    _remove(path)
                    actions.append(f"removed orphan shard {name}: nothing was committed")
        if good:
            register_shards(root, good)
            actions.append(f"registered the new ids of {len(good)} orphan shards")
        for tmp in _tmp_files(root):
            tmp.unlink(missing_ok=True)
    return actions


def _set_aside(root: Path, path: Path) -> None:
    target = root / "damaged" / path.name
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        target = target.with_name(new_shard_name(path.name[:100]))
    os.replace(path, target)


def check_target_bytes(target_bytes) -> int:
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
    docstring). A store ``store check`` finds problems in is refused: repair it first."""
    check_target_bytes(target_bytes)
    root = Path(root)
    report = StoreReport(str(root))
    with writer_lock(root, timeout=lock_timeout, reentrant=True) as state:
        m = _read(root)
        stores = {e["name"]: FeatureStore(shard_path(root, e["name"])) for e in m["shards"]}
        for e in m["shards"]:
            if _manifest_crc(shard_path(root, e["name"])) != e["manifest_crc"]:
                raise FormatError(
                    f"shard {e['name']}: its manifest changed since it was registered; run "
                    f"`ilias-rerank store repair {root}` before merging"
                )
        small = [n for n in sorted(stores) if _shard_bytes(stores[n]) < target_bytes // 2]
        groups: list[list[str]] = [[]]
        size = 0
        for name in small:
            if groups[-1] and size + _shard_bytes(stores[name]) > target_bytes:
                groups.append([])
                size = 0
            groups[-1].append(name)
            size += _shard_bytes(stores[name])
        groups = [g for g in groups if len(g) > 1]
        entries = {e["name"]: e for e in m["shards"]}
        old: list[Path] = []
        for group in groups:
            path = shard_path(root, new_shard_name("m"))
            first = stores[group[0]]
            with StoreWriter(path, first.extractor, commit_every=1 << 30) as writer:
                for name in group:
                    _copy_all(stores[name], writer)
            merged = FeatureStore(path, verify="none")
            expected = sum(len(stores[n]) for n in group)
            if len(merged) != expected:
                raise IliasRerankError(
                    f"merge: expected {expected} images in {path}, got {len(merged)}"
                )
            for name in group:
                del entries[name]
                old.append(shard_path(root, name))
            entries[path.name] = _entry(path, merged)
            report.actions.append(
                f"merged {len(group)} shards into {path.name} ({expected} images)"
            )
        if groups:
            m["shards"] = list(entries.values())
            _write(root, m)  # the one moment the merge becomes visible
            state.pop("ids", None)
            for path in old:
                _remove(path)
        report.shards = len(entries)
        report.images = sum(e["images"] for e in entries.values())
    return report


def _copy_all(store: FeatureStore, writer: StoreWriter) -> None:
    copy_images(store, store.ids, writer)
    store.release()
