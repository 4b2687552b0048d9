""":class:`StoreWriter`: the writer of one store directory (a whole store or one shard),
in the format ``single.py`` reads, in the layout its extractor declares (``layout.py``)."""

from __future__ import annotations

import contextlib
import json
import os
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_write_json
from ..errors import DimensionMismatchError, FormatError, StoreLayoutError, StoreWriteError
from ..features import LocalFeatures
from .layout import CODES, StoreLayout, descriptors_of
from .listing import registered_in
from .lock import writer_lock
from .single import (
    FORMAT_NAME,
    FORMAT_VERSION,
    INDEX_RECORD,
    STORE_FILES,
    StoreDirectory,
    image_crc,
    manifest_checksum,
    read_manifest,
)

__all__ = ["StoreWriter", "as_layout"]


def as_layout(value: StoreLayout | Mapping[str, Any] | None) -> StoreLayout | None:
    """A declared layout: a :class:`StoreLayout`, its dict, or ``None`` (not declared)."""
    if value is None or isinstance(value, StoreLayout):
        return value
    try:
        return StoreLayout.from_dict(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"layout: expected a store layout, got {value!r} ({exc})") from None


def _feature_arrays(
    image_id: str, features: Any, layout: StoreLayout | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The keypoint, frame and descriptor arrays stored for one image of ``layout``: a
    store of codes holds ``codes.record.to_rows``'s (16-bit keypoints, one row a feature)."""
    n = len(features.keypoints)
    if layout is not None and layout.kind == CODES:
        from ..codes.record import to_rows

        try:
            kp, rows = to_rows(features)
        except FormatError as exc:
            raise StoreLayoutError(f"{image_id}: {exc}") from None
        return kp, np.zeros((n, 0), "<f4"), rows
    kp = np.ascontiguousarray(features.keypoints, dtype="<f4")
    fw = layout.frame_width if layout is not None else 0
    fr = (
        np.zeros((n, fw), "<f4")
        if features.frames is None
        else np.ascontiguousarray(features.frames, dtype="<f4").reshape(n, fw)
    )
    desc = np.ascontiguousarray(features.descriptors)
    if layout is not None:
        desc = desc.astype(layout.descriptor_numpy, copy=False)
    return kp, fr, desc


class StoreWriter:
    """Append images to a store, committing after every ``commit_every`` images (and on
    :meth:`close` / leaving a ``with`` block). Opening an existing store resumes it: ids
    already committed are reported by ``in``; its extractor must equal ``extractor``.

    The store's layout (descriptor kind, dtype and dimension, frame width, keypoint dtype:
    ``store/layout.py``) is declared when the writer is created: by ``layout``, or by
    ``extractor`` when it is an extractor (``extractor.store_layout()``). Every image, an
    empty one included, is stored in it; an image whose arrays disagree is refused with a
    :class:`~ilias_rerank.errors.StoreLayoutError` naming it, and the store stays as it
    was (that image's failure, never the store's). Without a declared layout the first
    image with features fixes it.

    The writer holds the directory's writer lock (``store/lock.py``) until :meth:`close`:
    a second writer of the same directory gets a
    :class:`~ilias_rerank.errors.StoreLockedError` at once, or after waiting up to
    ``lock_timeout`` seconds. A shard that a sharded store has registered is never written
    again (:class:`~ilias_rerank.errors.StoreWriteError`): write a new shard instead.

    Parameters
    ----------
    path : str or os.PathLike
        The store directory; made if absent, resumed if it holds a store.
    extractor : Extractor, Mapping or None
        The extractor (its ``params()`` and ``store_layout()`` are used), or its manifest
        entry (``Extractor.params()``); must equal the one of a store being resumed (a
        store never mixes extractors).
    layout : StoreLayout, Mapping or None
        The layout every image must have (default: the extractor's, if it declares one).
        A store being resumed must have this layout, or none yet.
    commit_every : int
        Images between commits (>= 1); a crash loses at most the uncommitted ones.
    lock_timeout : float
        Seconds to wait for another writer's lock (0: fail at once).

    Raises
    ------
    StoreLockedError
        Another writer holds the directory.
    StoreWriteError
        The directory is a registered shard, is unwritable, or the disk is full (the last
        commit stays intact).
    FormatError
        The directory holds a damaged store, or one of another extractor or layout.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        extractor: Any = None,
        *,
        layout: StoreLayout | Mapping[str, Any] | None = None,
        commit_every: int = 1,
        lock_timeout: float = 0.0,
    ) -> None:
        if isinstance(commit_every, bool) or not isinstance(commit_every, int):
            raise ValueError(f"commit_every: expected an int >= 1, got {commit_every!r}")
        if commit_every < 1:
            raise ValueError(f"commit_every: expected >= 1, got {commit_every}")
        if layout is None and callable(getattr(extractor, "store_layout", None)):
            layout = extractor.store_layout()
        if callable(getattr(extractor, "params", None)):
            extractor = extractor.params()
        declared = as_layout(layout)
        self.path = Path(path)
        self._broken: str | None = None
        self._files: dict = {}
        self._lock = contextlib.ExitStack()
        self._lock.enter_context(writer_lock(self.path, timeout=lock_timeout))
        try:
            self._open(extractor, declared, commit_every)
        except BaseException:
            self._lock.close()
            raise

    def _open(
        self, extractor: Mapping[str, Any] | None, declared: StoreLayout | None, commit_every: int
    ) -> None:
        registered = registered_in(self.path)
        if registered is not None:
            raise StoreWriteError(
                f"{self.path}: shard {self.path.name!r} is registered in the sharded store "
                f"{registered}; a registered shard is never written again (write a new shard)"
            )
        self.extractor = dict(extractor or {})
        self.commit_every = commit_every
        self._pending = 0
        self.layout: StoreLayout | None = declared
        if (self.path / "manifest.json").exists():
            m = read_manifest(self.path)
            if m.get("extractor", {}) != json.loads(json.dumps(self.extractor)):
                raise FormatError(
                    f"{self.path}: store built with extractor {m.get('extractor')!r}, "
                    f"this writer uses {self.extractor!r} (mixed extractors)"
                )
            held = StoreDirectory(self.path, verify="none").layout  # the commit is sound
            if declared is not None and held is not None and held != declared:
                raise FormatError(
                    f"{self.path}: store of layout {held}, this writer declares {declared} "
                    "(a store never mixes layouts: write another store)"
                )
            self.layout = declared or held
            if m["global_crc"] is None:  # version 1: its global vectors' CRC, now
                with open(self.path / "global.bin", "rb") as fh:
                    m["global_crc"] = zlib.crc32(fh.read(m["bytes"]["global.bin"]))
            m["version"] = FORMAT_VERSION  # the next commit upgrades a version 1 store
        else:
            m = {
                "format": FORMAT_NAME,
                "version": FORMAT_VERSION,
                "extractor": self.extractor,
                "global_dim": None,
                "images": 0,
                "features": 0,
                "bytes": {name: 0 for name in STORE_FILES},
                "index_crc": 0,
                "ids_crc": 0,
                "global_crc": 0,
            }
        self._manifest = m
        ids_raw = (
            (self.path / "ids.txt").read_bytes()[: m["bytes"]["ids.txt"]] if m["images"] else b""
        )
        self._ids = set(ids_raw.decode("utf-8").split("\n")[:-1]) if ids_raw else set()
        self._index_crc = m["index_crc"]
        self._ids_crc = m["ids_crc"]
        self._global_crc = m["global_crc"]
        # Cut off anything past the committed lengths (an interrupted write).
        try:
            for name in STORE_FILES:
                f = open(self.path / name, "a+b")  # noqa: SIM115 (open until close())
                self._files[name] = f
                f.truncate(m["bytes"][name])
                f.seek(0, os.SEEK_END)
        except OSError as exc:
            for f in self._files.values():
                f.close()
            raise StoreWriteError(
                f"{self.path}: cannot open the store for writing ({exc})"
            ) from exc

    def __contains__(self, image_id: object) -> bool:
        return image_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, image_id: str, features: LocalFeatures, global_vector: Any = None) -> None:
        """Append one image (its ``LocalFeatures``, or its ``QuantisedFeatures`` in a store
        of codes); committed when ``commit_every`` images are pending. An image
        the store cannot hold (arrays of another layout, a repeated id, a global vector of
        another dimension) is refused with an error naming it; the store is unchanged."""
        if self._broken:
            raise StoreWriteError(f"{self.path}: writer stopped after an error: {self._broken}")
        if not isinstance(image_id, str) or not image_id or "\n" in image_id or "\r" in image_id:
            raise ValueError(
                f"image id: expected a non-empty string without newlines, got {image_id!r}"
            )
        if image_id in self._ids:
            raise ValueError(f"image id {image_id!r} is already in the store {self.path}")
        m = self._manifest
        n = len(features.keypoints)
        layout = self.layout
        if layout is not None:
            layout.check(image_id, features)
        elif n:  # no declared layout: the first image with features fixes it
            layout = StoreLayout.of_features(features)
        g = None
        if global_vector is not None:
            g = np.asarray(global_vector, dtype=np.float32).reshape(-1)
            if not np.isfinite(g).all():
                raise ValueError(f"{image_id}: global vector has NaN or infinity")
        gdim = 0 if g is None else len(g)
        if m["images"] == 0:  # the first image fixes the global dimension
            m["global_dim"] = gdim
        if gdim != m["global_dim"]:
            raise DimensionMismatchError(
                f"{image_id}: expected a global vector of dimension {m['global_dim']} (this "
                f"store), got {gdim}"
            )
        kp, fr, desc = _feature_arrays(image_id, features, layout)
        height, width = features.image_size or (0, 0)
        record = INDEX_RECORD.pack(m["features"], n, height, width, image_crc(kp, fr, desc))
        line = (image_id + "\n").encode("utf-8")
        chunks = (
            ("keypoints.bin", kp.tobytes()),
            ("frames.bin", fr.tobytes()),
            ("descriptors.bin", desc.tobytes() if n else b""),
            ("global.bin", b"" if g is None else g.astype("<f4").tobytes()),
            ("index.bin", record),
            ("ids.txt", line),
        )
        try:
            for name, data in chunks:
                self._files[name].write(data)
        except OSError as exc:
            self._fail(exc)
        self.layout = layout
        for name, data in chunks:
            m["bytes"][name] += len(data)
        self._index_crc = zlib.crc32(record, self._index_crc)
        self._ids_crc = zlib.crc32(line, self._ids_crc)
        self._global_crc = zlib.crc32(chunks[3][1], self._global_crc)
        m["images"] += 1
        m["features"] += n
        self._ids.add(image_id)
        self._pending += 1
        if self._pending >= self.commit_every:
            self.commit()

    def _fail(self, exc: OSError) -> None:
        self._broken = str(exc)
        raise StoreWriteError(
            f"{self.path}: write failed ({exc}); the store keeps its last commit"
        ) from exc

    def commit(self) -> None:
        """Make every added image durable and visible (atomic manifest replacement)."""
        if self._broken:
            raise StoreWriteError(f"{self.path}: writer stopped after an error: {self._broken}")
        try:
            self._commit()
        except OSError as exc:
            self._fail(exc)

    def _commit(self) -> None:
        for f in self._files.values():
            f.flush()
            os.fsync(f.fileno())
        m = self._manifest
        m["index_crc"] = self._index_crc
        m["ids_crc"] = self._ids_crc
        m["global_crc"] = self._global_crc
        layout = self.layout
        m["layout"] = layout.as_dict() if layout is not None else None
        # The same layout as the fields that readers of earlier releases read.
        dtype, dim = descriptors_of(layout)
        m["descriptors"] = {"dtype": dtype, "dim": dim}
        m["frame_width"] = layout.frame_width if layout else 0
        if m["global_dim"] is None:  # nothing added yet
            m["global_dim"] = 0
        m["checksum"] = manifest_checksum(m)
        atomic_write_json(self.path / "manifest.json", m, indent=1)
        self._pending = 0

    def close(self) -> None:
        """Commit what is pending, close the files and release the writer lock."""
        try:
            if self._files:
                try:
                    if not self._broken and (
                        self._pending or not (self.path / "manifest.json").exists()
                    ):
                        self.commit()
                finally:
                    for f in self._files.values():
                        with contextlib.suppress(OSError):  # a failed flush was reported
                            f.close()
                    self._files = {}
        finally:
            self._lock.close()

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
