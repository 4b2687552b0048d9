"""One store directory (a whole store, or one shard of a sharded store): local features
(and optional global vectors) of many images, built incrementally, read memory-mapped and
handed zero-copy to the Rust core.

Layout of a store directory (all numbers little-endian)::

    manifest.json     format name + version, extractor and its parameters, descriptor
                      dtype and dimension, frame width, global dimension, committed
                      counts and byte lengths, CRC-32 of the committed index and ids,
                      and its own CRC-32
    ids.txt           one image id per line (UTF-8)
    index.bin         per image: feature offset u64, count u32, height u32, width u32,
                      CRC-32 u32 of its keypoint + frame + descriptor bytes
    keypoints.bin     float32 (N, 2)        frames.bin   float32 (N, 0 | 2 | 6)
    descriptors.bin   (N, D) float32 | float16 | uint8, or (N, W) uint64 binary words
    global.bin        float32 (images, G), when the store has global vectors (its CRC-32
                      is in the manifest, checked on first use of ``global_vectors``)

Writes append to the data files and then *commit*: the files are flushed to disk and a new
``manifest.json`` replaces the old one atomically (write, fsync, rename). Bytes past the
committed lengths (an interrupted write) are ignored by readers and cut off when a writer
reopens the store, so a build killed at any point reopens at its last commit: by default
every image is committed, and a kill loses at most the image in flight.

Reading checks the format name and version, that every file holds its committed bytes
(else "truncated"), the index checksum, and, on first access to an image (``verify=
"access"``, the default) or for all images at open (``"full"``), the image's own checksum:
a corrupt store raises :class:`~ilias_rerank.errors.FormatError` and is never used silently.
Store files are data: nothing in them is executed or unpickled.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_write_json
from ..errors import (
    DimensionMismatchError,
    DTypeError,
    FormatError,
    MissingIdError,
    ShapeError,
    StoreWriteError,
)
from ..features import LocalFeatures
from .lock import writer_lock

#: The file that makes a directory a sharded store (``store/sharded.py``).
SHARDS_FILE = "shards.json"

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "FeatureStore", "StoreWriter"]

FORMAT_NAME = "ilias-rerank-store"
#: Version 2 (this release) adds ``global_crc``; version 1 stores (the previous release)
#: are read as they are (their global vectors unchecked) and upgraded to version 2 by the
#: next commit of a :class:`StoreWriter` that resumes them.
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)

_INDEX = struct.Struct("<QIIII")
_DTYPES = {"float32": "<f4", "float16": "<f2", "uint8": "u1", "binary64": "<u8"}
_FILES = ("keypoints.bin", "frames.bin", "descriptors.bin", "global.bin", "index.bin", "ids.txt")


_DTYPE_NAMES = {np.dtype(code): name for name, code in _DTYPES.items()}


def _dtype_name(desc: np.ndarray) -> str:
    if desc.dtype not in _DTYPE_NAMES:
        raise DTypeError(
            f"descriptors: expected float32, float16, uint8 or uint64, got {desc.dtype}"
        )
    return _DTYPE_NAMES[desc.dtype]


def _frame_width(features: LocalFeatures) -> int:
    if features.frames is None:
        return 0
    return 2 if features.frames.ndim == 2 else 6


def _bytes(a: np.ndarray) -> memoryview:
    """The array's bytes without a copy (a flat byte view of a contiguous array)."""
    return memoryview(np.ascontiguousarray(a).reshape(-1).view(np.uint8))


def _image_crc(kp: np.ndarray, fr: np.ndarray, desc: np.ndarray) -> int:
    crc = zlib.crc32(_bytes(kp))
    crc = zlib.crc32(_bytes(fr), crc)
    return zlib.crc32(_bytes(desc), crc)


def _manifest_crc(manifest: dict) -> int:
    body = {k: v for k, v in manifest.items() if k != "checksum"}
    return zlib.crc32(json.dumps(body, sort_keys=True).encode())


def _map(path: Path, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    if 0 in shape:
        return np.zeros(shape, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=shape)


def _read_manifest(root: Path) -> dict:
    path = root / "manifest.json"
    if not path.is_file():
        raise FormatError(f"{root}: no committed store (manifest.json missing)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"{path}: corrupt manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise FormatError(
            f"{path}: expected format {FORMAT_NAME!r}, got {manifest.get('format')!r}"
        )
    version = manifest.get("version")
    if isinstance(version, bool) or version not in READABLE_VERSIONS:
        raise FormatError(
            f"{path}: expected format version {' or '.join(map(str, READABLE_VERSIONS))}, "
            f"got {version!r} (written by another release of ilias-rerank)"
        )
    keys = (
        "images",
        "features",
        "descriptors",
        "frame_width",
        "global_dim",
        "bytes",
        "index_crc",
        "ids_crc",
        "checksum",
    )
    for key in (*keys, "global_crc") if version >= 2 else keys:
        if key not in manifest:
            raise FormatError(f"{path}: manifest lacks {key!r}")
    if manifest["checksum"] != _manifest_crc(manifest):
        raise FormatError(f"{path}: checksum mismatch (corrupt manifest)")
    manifest.setdefault("global_crc", None)  # version 1: global vectors without a CRC
    return manifest


class FeatureStore(Mapping):
    """A committed store, read-only and memory-mapped: a mapping of image id to that
    image's :class:`LocalFeatures` (views of the mapped files).

    A directory with a ``shards.json`` is a sharded store: ``FeatureStore(path)`` then
    returns a :class:`~ilias_rerank.store.sharded.ShardedStore`, which reads the same way.

    Parameters
    ----------
    path : str or os.PathLike
        The store directory (as :class:`StoreWriter` or ``rerank-shortlists`` wrote it).
    verify : {"access", "full", "none"}
        When checksums are checked: each image's on first access (default), every file
        now, or never.

    Attributes
    ----------
    ids : list of str
        The image ids, in insertion order.
    extractor : dict
        The manifest's extractor entry (name and parameters).
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

    #: The class that opens a directory with a ``shards.json`` (``store/sharded.py`` sets
    #: it when the package is imported; this module never imports that one).
    sharded_class: type | None = None

    def __new__(cls, path: str | os.PathLike, *args: Any, **kwargs: Any) -> FeatureStore:
        sharded = FeatureStore.sharded_class
        if cls is FeatureStore and sharded is not None and (Path(path) / SHARDS_FILE).is_file():
            return super().__new__(sharded)
        return super().__new__(cls)

    def __init__(self, path: str | os.PathLike, verify: str = "access") -> None:
        if verify not in ("access", "full", "none"):
            raise ValueError(f"verify: expected 'access', 'full' or 'none', got {verify!r}")
        self.path = Path(path)
        self.manifest = m = _read_manifest(self.path)
        self.extractor = m.get("extractor", {})
        desc = m["descriptors"]
        self.descriptor_dtype = desc["dtype"]
        self.dim = int(desc["dim"])
        if self.descriptor_dtype not in _DTYPES:
            raise FormatError(f"{self.path}: unknown descriptor dtype {self.descriptor_dtype!r}")
        n, total, fw, gdim = m["images"], m["features"], m["frame_width"], m["global_dim"]
        expected = {
            "keypoints.bin": total * 8,
            "frames.bin": total * fw * 4,
            "descriptors.bin": total * self.dim * np.dtype(_DTYPES[self.descriptor_dtype]).itemsize,
            "global.bin": n * gdim * 4,
            "index.bin": n * _INDEX.size,
        }
        for name, size in expected.items():
            if m["bytes"].get(name, 0) != size:
                raise FormatError(
                    f"{self.path}: manifest says {m['bytes'].get(name, 0)} bytes of {name}, "
                    f"its counts need {size}"
                )
            have = (self.path / name).stat().st_size if (self.path / name).exists() else 0
            if have < size:
                raise FormatError(
                    f"{self.path / name}: truncated: expected at least {size} bytes, got {have}"
                )
        index_bytes = (self.path / "index.bin").read_bytes()[: n * _INDEX.size]
        if zlib.crc32(index_bytes) != m["index_crc"]:
            raise FormatError(f"{self.path / 'index.bin'}: checksum mismatch (corrupt index)")
        self._index = np.frombuffer(
            index_bytes,
            dtype=np.dtype(
                [
                    ("offset", "<u8"),
                    ("count", "<u4"),
                    ("height", "<u4"),
                    ("width", "<u4"),
                    ("crc", "<u4"),
                ]
            ),
        )
        ids_raw = (self.path / "ids.txt").read_bytes()[: m["bytes"]["ids.txt"]]
        if zlib.crc32(ids_raw) != m["ids_crc"]:
            raise FormatError(f"{self.path / 'ids.txt'}: checksum mismatch (corrupt ids)")
        try:
            ids = ids_raw.decode("utf-8").split("\n")[:-1] if ids_raw else []
        except UnicodeDecodeError:
            raise FormatError(f"{self.path / 'ids.txt'}: not UTF-8") from None
        if len(ids) != n:
            raise FormatError(f"{self.path / 'ids.txt'}: expected {n} ids, got {len(ids)}")
        self.ids = ids
        self._position = {image_id: i for i, image_id in enumerate(ids)}
        if len(self._position) != n:
            raise FormatError(f"{self.path / 'ids.txt'}: duplicate ids")
        ends = self._index["offset"].astype(np.int64) + self._index["count"]
        if n and (
            ends.max() > total or (np.diff(self._index["offset"].astype(np.int64)) < 0).any()
        ):
            raise FormatError(f"{self.path / 'index.bin'}: offsets outside the feature files")

        self._maps: tuple | None = None  # mapped on first use, see _mapped()
        self._global: np.ndarray | None = None
        self._global_verified = False
        self._verify = verify
        self._verified = np.zeros(n, dtype=bool)
        if verify == "full":
            for i in range(n):
                self._features_at(i)
            _ = self.global_vectors

    def _mapped(self) -> tuple:
        """The feature files, memory-mapped on first use (one descriptor and one map each,
        kept until :meth:`release`): keypoints, frames or ``None``, descriptors."""
        if self._maps is None:
            m = self.manifest
            total, fw = m["features"], m["frame_width"]
            self._maps = (
                _map(self.path / "keypoints.bin", "<f4", (total, 2)),
                _map(self.path / "frames.bin", "<f4", (total, fw)) if fw else None,
                _map(
                    self.path / "descriptors.bin",
                    _DTYPES[self.descriptor_dtype],
                    (total, self.dim),
                ),
            )
        return self._maps

    def release(self) -> None:
        """Drop this store's maps of its files (reopened on the next access). Features
        handed out before keep their own reference and stay valid."""
        self._maps = None
        self._global = None

    def close(self) -> None:
        """Unmap the store's files (see :meth:`release`)."""
        self.release()

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def is_mapped(self) -> bool:
        """Whether the feature files are mapped now."""
        return self._maps is not None or self._global is not None

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids)

    def __contains__(self, image_id: object) -> bool:
        return image_id in self._position

    def __getitem__(self, image_id: str) -> LocalFeatures:
        return self._features_at(self.position(image_id))

    def position(self, image_id: str) -> int:
        """Row of ``image_id`` in ``ids`` and ``global_vectors``; an unknown id is a
        :class:`~ilias_rerank.errors.MissingIdError` (also a ``KeyError``)."""
        try:
            return self._position[image_id]
        except (KeyError, TypeError):
            raise MissingIdError(f"{image_id!r} is not in the store {self.path}") from None

    @property
    def global_vectors(self) -> np.ndarray | None:
        """``(images, G)`` float32 rows in ``ids`` order, or ``None``; their checksum is
        verified on first use (unless the store was opened with ``verify="none"``)."""
        gdim = self.manifest["global_dim"]
        if not gdim:
            return None
        if self._global is None:
            self._global = _map(self.path / "global.bin", "<f4", (len(self), gdim))
        expected = self.manifest["global_crc"]
        if self._verify != "none" and not self._global_verified and expected is not None:
            if zlib.crc32(_bytes(self._global)) != expected:
                raise FormatError(
                    f"{self.path / 'global.bin'}: checksum mismatch (corrupt global vectors)"
                )
            self._global_verified = True
        return self._global

    def _features_at(self, i: int, maps: tuple | None = None) -> LocalFeatures:
        """Image ``i``, read from ``maps`` (what :meth:`_mapped` returned) or this store's."""
        rec = self._index[i]
        lo, hi = int(rec["offset"]), int(rec["offset"]) + int(rec["count"])
        keypoints, frames_map, descriptors = maps if maps is not None else self._mapped()
        kp = keypoints[lo:hi]
        fr = frames_map[lo:hi] if frames_map is not None else np.zeros((hi - lo, 0), "<f4")
        desc = descriptors[lo:hi]
        if self._verify != "none" and not self._verified[i]:
            if _image_crc(kp, fr, desc) != int(rec["crc"]):
                raise FormatError(
                    f"{self.path}: image {self.ids[i]!r}: checksum mismatch (corrupt feature files)"
                )
            self._verified[i] = True
        frames = None
        if frames_map is not None:
            frames = fr if fr.shape[1] == 2 else fr.reshape(-1, 2, 3)
        size = (int(rec["height"]), int(rec["width"])) if rec["height"] and rec["width"] else None
        return LocalFeatures(kp, desc, frames=frames, image_size=size)

    def __repr__(self) -> str:
        return (
            f"FeatureStore({str(self.path)!r}, images={len(self)}, "
            f"descriptors={self.descriptor_dtype}x{self.dim}, "
            f"global_dim={self.manifest['global_dim']})"
        )


def _registered_in(path: Path) -> Path | None:
    """The sharded store whose ``shards.json`` lists the directory ``path`` as a shard."""
    if path.parent.name != "shards":
        return None
    listing = path.parent.parent / "shards.json"
    try:
        shards = json.loads(listing.read_text(encoding="utf-8")).get("shards")
    except FileNotFoundError:
        return None
    except (OSError, ValueError, AttributeError) as exc:
        raise FormatError(f"{listing}: unreadable shard list ({exc})") from None
    if isinstance(shards, list) and any(
        isinstance(e, dict) and e.get("name") == path.name for e in shards
    ):
        return path.parent.parent
    return None


class StoreWriter:
    """Append images to a store, committing after every ``commit_every`` images (and on
    :meth:`close` / leaving a ``with`` block). Opening an existing store resumes it: ids
    already committed are reported by ``in``; its extractor must equal ``extractor``.

    The writer holds the directory's writer lock (``store/lock.py``) until :meth:`close`:
    a second writer of the same directory gets a
    :class:`~ilias_rerank.errors.StoreLockedError` at once, or after waiting up to
    ``lock_timeout`` seconds. A shard that a sharded store has registered is never written
    again (:class:`~ilias_rerank.errors.StoreWriteError`): write a new shard instead.

    Parameters
    ----------
    path : str or os.PathLike
        The store directory; made if absent, resumed if it holds a store.
    extractor : Mapping or None
        The extractor's manifest entry (``Extractor.params()``); must equal the one of a
        store being resumed (a store never mixes extractors).
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
        The directory holds a damaged store, or one of another extractor.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        extractor: Mapping[str, Any] | None = None,
        *,
        commit_every: int = 1,
        lock_timeout: float = 0.0,
    ) -> None:
        if isinstance(commit_every, bool) or not isinstance(commit_every, int):
            raise ValueError(f"commit_every: expected an int >= 1, got {commit_every!r}")
        if commit_every < 1:
            raise ValueError(f"commit_every: expected >= 1, got {commit_every}")
        self.path = Path(path)
        self._broken: str | None = None
        self._files: dict = {}
        self._lock = contextlib.ExitStack()
        self._lock.enter_context(writer_lock(self.path, timeout=lock_timeout))
        try:
            self._open(extractor, commit_every)
        except BaseException:
            self._lock.close()
            raise

    def _open(self, extractor: Mapping[str, Any] | None, commit_every: int) -> None:
        registered = _registered_in(self.path)
        if registered is not None:
            raise StoreWriteError(
                f"{self.path}: shard {self.path.name!r} is registered in the sharded store "
                f"{registered}; a registered shard is never written again (write a new shard)"
            )
        self.extractor = dict(extractor or {})
        self.commit_every = commit_every
        self._pending = 0
        if (self.path / "manifest.json").exists():
            m = _read_manifest(self.path)
            if m.get("extractor", {}) != json.loads(json.dumps(self.extractor)):
                raise FormatError(
                    f"{self.path}: store built with extractor {m.get('extractor')!r}, "
                    f"this writer uses {self.extractor!r} (mixed extractors)"
                )
            FeatureStore(self.path, verify="none")  # the committed state must be sound
            if m["global_crc"] is None:  # version 1: its global vectors' CRC, now
                with open(self.path / "global.bin", "rb") as fh:
                    m["global_crc"] = zlib.crc32(fh.read(m["bytes"]["global.bin"]))
            m["version"] = FORMAT_VERSION  # the next commit upgrades a version 1 store
        else:
            m = {
                "format": FORMAT_NAME,
                "version": FORMAT_VERSION,
                "extractor": self.extractor,
                "descriptors": None,
                "frame_width": None,
                "global_dim": None,
                "images": 0,
                "features": 0,
                "bytes": {name: 0 for name in _FILES},
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
            for name in _FILES:
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
        """Append one image; committed when ``commit_every`` images are pending."""
        if self._broken:
            raise StoreWriteError(f"{self.path}: writer stopped after an error: {self._broken}")
        if not isinstance(image_id, str) or not image_id or "\n" in image_id or "\r" in image_id:
            raise ValueError(
                f"image id: expected a non-empty string without newlines, got {image_id!r}"
            )
        if image_id in self._ids:
            raise ValueError(f"image id {image_id!r} is already in the store {self.path}")
        m = self._manifest
        desc = np.ascontiguousarray(features.descriptors)
        dtype, dim, fw = _dtype_name(desc), desc.shape[1], _frame_width(features)
        g = None
        if global_vector is not None:
            g = np.asarray(global_vector, dtype=np.float32).reshape(-1)
            if not np.isfinite(g).all():
                raise ValueError(f"{image_id}: global vector has NaN or infinity")
        gdim = 0 if g is None else len(g)
        if m["images"] == 0:  # the first image fixes the store's layout
            m["descriptors"] = {"dtype": dtype, "dim": int(dim)}
            m["frame_width"], m["global_dim"] = fw, gdim
        if m["descriptors"] != {"dtype": dtype, "dim": int(dim)}:
            raise DimensionMismatchError(
                f"{image_id}: expected {m['descriptors']['dtype']} descriptors of dimension "
                f"{m['descriptors']['dim']} (this store), got {dtype} of dimension {dim}"
            )
        if fw != m["frame_width"]:
            raise ShapeError(
                f"{image_id}: expected frames of width {m['frame_width']} (this store), got {fw}"
            )
        if gdim != m["global_dim"]:
            raise DimensionMismatchError(
                f"{image_id}: expected a global vector of dimension {m['global_dim']} (this "
                f"store), got {gdim}"
            )
        kp = np.ascontiguousarray(features.keypoints, dtype="<f4")
        fr = (
            np.zeros((len(kp), 0), "<f4")
            if features.frames is None
            else np.ascontiguousarray(features.frames, dtype="<f4").reshape(len(kp), fw)
        )
        desc = desc.astype(_DTYPES[dtype], copy=False)
        height, width = features.image_size or (0, 0)
        record = _INDEX.pack(m["features"], len(kp), height, width, _image_crc(kp, fr, desc))
        line = (image_id + "\n").encode("utf-8")
        chunks = (
            ("keypoints.bin", kp.tobytes()),
            ("frames.bin", fr.tobytes()),
            ("descriptors.bin", desc.tobytes()),
            ("global.bin", b"" if g is None else g.astype("<f4").tobytes()),
            ("index.bin", record),
            ("ids.txt", line),
        )
        try:
            for name, data in chunks:
                self._files[name].write(data)
        except OSError as exc:
            self._fail(exc)
        for name, data in chunks:
            m["bytes"][name] += len(data)
        self._index_crc = zlib.crc32(record, self._index_crc)
        self._ids_crc = zlib.crc32(line, self._ids_crc)
        self._global_crc = zlib.crc32(chunks[3][1], self._global_crc)
        m["images"] += 1
        m["features"] += len(kp)
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
        if m["descriptors"] is None:  # nothing added yet: a valid empty store
            m["descriptors"] = {"dtype": "uint8", "dim": 0}
            m["frame_width"], m["global_dim"] = 0, 0
        m["checksum"] = _manifest_crc(m)
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
