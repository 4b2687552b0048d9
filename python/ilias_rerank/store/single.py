"""One store directory (a whole store, or one shard of a sharded store): its format and
:class:`StoreDirectory`, the reader of one directory.

Layout of a store directory (all numbers little-endian)::

    manifest.json     format name + version, extractor and its parameters, the layout
                      (``layout.py``: descriptor kind, dtype and dimension, frame width,
                      keypoint dtype; also as ``descriptors`` and ``frame_width`` for
                      older readers), global dimension, committed counts and byte
                      lengths, CRC-32 of the committed index and ids, and its own CRC-32
    ids.txt           one image id per line (UTF-8)
    index.bin         per image: feature offset u64, count u32, height u32, width u32,
                      CRC-32 u32 of its keypoint + frame + descriptor bytes
    keypoints.bin     float32 (N, 2)        frames.bin   float32 (N, 0 | 2 | 6)
    descriptors.bin   (N, D) float32 | float16 | uint8, or (N, W) uint64 binary words
    global.bin        float32 (images, G), when the store has global vectors (its CRC-32
                      is in the manifest, checked on first use of ``global_vectors``)

Writes (``writer.py``) append to the data files and then *commit*: the files are flushed
to disk and a new ``manifest.json`` replaces the old one atomically (write, fsync,
rename). Bytes past the committed lengths (an interrupted write) are ignored by readers
and cut off when a writer reopens the store, so a build killed at any point reopens at its
last commit.

Reading checks the format name and version, that every file holds its committed bytes
(else "truncated"), the index checksum, and, on first access to an image (``verify=
"access"``, the default) or for all images at open (``"full"``), the image's own checksum:
a corrupt store raises :class:`~ilias_rerank.errors.FormatError` and is never used silently.
Store files are data: nothing in them is executed or unpickled.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FormatError, MissingIdError
from ..features import LocalFeatures
from .layout import CODES, LaidOut, StoreLayout, layout_of_manifest

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "INDEX_RECORD",
    "STORE_FILES",
    "StoreDirectory",
    "image_crc",
    "manifest_checksum",
    "read_ids",
    "read_manifest",
]

FORMAT_NAME = "ilias-rerank-store"
#: Version 2 adds ``global_crc``; version 1 stores (an earlier release) are read as they
#: are (their global vectors unchecked) and upgraded to version 2 by the next commit of a
#: writer that resumes them. A declared ``layout`` is an optional key of version 2 (older
#: readers ignore it; ``layout.py`` says how a manifest without one is read).
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)

INDEX_RECORD = struct.Struct("<QIIII")
_INDEX_DTYPE = np.dtype(
    [("offset", "<u8"), ("count", "<u4"), ("height", "<u4"), ("width", "<u4"), ("crc", "<u4")]
)
STORE_FILES = (
    "keypoints.bin",
    "frames.bin",
    "descriptors.bin",
    "global.bin",
    "index.bin",
    "ids.txt",
)
_MANIFEST_KEYS = (
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


def as_bytes(a: np.ndarray) -> memoryview:
    """The array's bytes without a copy (a flat byte view of a contiguous array)."""
    return memoryview(np.ascontiguousarray(a).reshape(-1).view(np.uint8))


def image_crc(kp: np.ndarray, fr: np.ndarray, desc: np.ndarray) -> int:
    """The CRC-32 of one image's keypoint, frame and descriptor bytes (its index record)."""
    crc = zlib.crc32(as_bytes(kp))
    crc = zlib.crc32(as_bytes(fr), crc)
    return zlib.crc32(as_bytes(desc), crc)


def manifest_checksum(manifest: dict) -> int:
    """The CRC-32 a manifest records of itself (over every other key)."""
    body = {k: v for k, v in manifest.items() if k != "checksum"}
    return zlib.crc32(json.dumps(body, sort_keys=True).encode())


_manifest_crc = manifest_checksum  # the name the version-1 fixtures of the tests use


def _map(path: Path, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    if 0 in shape:
        return np.zeros(shape, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=shape)


def read_manifest(root: Path) -> dict:
    """The committed manifest of the store directory ``root``, checked (format, version,
    keys, its checksum); anything else is a :class:`~ilias_rerank.errors.FormatError`."""
    path = root / "manifest.json"
    if not path.is_file():
        raise FormatError(f"{root}: no committed store (manifest.json missing)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"{path}: corrupt manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise FormatError(
            f"{path}: expected format {FORMAT_NAME!r}, got "
            f"{manifest.get('format') if isinstance(manifest, dict) else manifest!r}"
        )
    version = manifest.get("version")
    if isinstance(version, bool) or version not in READABLE_VERSIONS:
        raise FormatError(
            f"{path}: expected format version {' or '.join(map(str, READABLE_VERSIONS))}, "
            f"got {version!r} (written by another release of ilias-rerank)"
        )
    for key in (*_MANIFEST_KEYS, "global_crc") if version >= 2 else _MANIFEST_KEYS:
        if key not in manifest:
            raise FormatError(f"{path}: manifest lacks {key!r}")
    if manifest["checksum"] != manifest_checksum(manifest):
        raise FormatError(f"{path}: checksum mismatch (corrupt manifest)")
    manifest.setdefault("global_crc", None)  # version 1: global vectors without a CRC
    return manifest


def read_ids(root: Path, m: dict | None = None) -> list[str]:
    """The committed ids of the store directory ``root`` (its manifest ``m``, read if not
    given, and ``ids.txt``, checked against its checksum): what id ownership needs, without
    the index."""
    m = read_manifest(root) if m is None else m
    raw = (root / "ids.txt").read_bytes()[: m["bytes"]["ids.txt"]]
    if zlib.crc32(raw) != m["ids_crc"]:
        raise FormatError(f"{root / 'ids.txt'}: checksum mismatch (corrupt ids)")
    try:
        ids = raw.decode("utf-8").split("\n")[:-1] if raw else []
    except UnicodeDecodeError:
        raise FormatError(f"{root / 'ids.txt'}: not UTF-8") from None
    if len(ids) != m["images"]:
        raise FormatError(f"{root / 'ids.txt'}: expected {m['images']} ids, got {len(ids)}")
    return ids


class StoreDirectory(LaidOut):
    """The reader of one committed store directory (a whole store or one shard): its ids,
    its layout, and each image's features as views of its memory-mapped files. Users open
    stores with :class:`~ilias_rerank.store.FeatureStore`, which reads one directory or
    many shards through this class.

    ``verify``: when checksums are checked: each image's on first access (``"access"``),
    every file now (``"full"``), or never (``"none"``).
    """

    def __init__(self, path: str | Path, verify: str = "access") -> None:
        if verify not in ("access", "full", "none"):
            raise ValueError(f"verify: expected 'access', 'full' or 'none', got {verify!r}")
        self.path = Path(path)
        self.verify = verify
        self.manifest = m = read_manifest(self.path)
        self.extractor: dict = m.get("extractor", {})
        #: The layout of every image (``None``: not fixed yet, every image is featureless).
        self.layout: StoreLayout | None = layout_of_manifest(m, self.path / "manifest.json")
        n, total, gdim = m["images"], m["features"], m["global_dim"]
        if self.layout is None and total:
            raise FormatError(f"{self.path}: {total} features but no layout")
        kp_b, fr_b, desc_b = self.layout.feature_bytes if self.layout else (8, 0, 0)
        expected = {
            "keypoints.bin": total * kp_b,
            "frames.bin": total * fr_b,
            "descriptors.bin": total * desc_b,
            "global.bin": n * gdim * 4,
            "index.bin": n * INDEX_RECORD.size,
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
        index_bytes = (self.path / "index.bin").read_bytes()[: n * INDEX_RECORD.size]
        if zlib.crc32(index_bytes) != m["index_crc"]:
            raise FormatError(f"{self.path / 'index.bin'}: checksum mismatch (corrupt index)")
        self.index = np.frombuffer(index_bytes, dtype=_INDEX_DTYPE)
        ids = read_ids(self.path, m)
        self.ids: list[str] = ids
        self._position = {image_id: i for i, image_id in enumerate(ids)}
        if len(self._position) != n:
            raise FormatError(f"{self.path / 'ids.txt'}: duplicate ids")
        ends = self.index["offset"].astype(np.int64) + self.index["count"]
        if n and (ends.max() > total or (np.diff(self.index["offset"].astype(np.int64)) < 0).any()):
            raise FormatError(f"{self.path / 'index.bin'}: offsets outside the feature files")
        self._maps: tuple | None = None  # mapped on first use, see mapped()
        self._global: np.ndarray | None = None
        self._global_verified = False
        self._verified = np.zeros(n, dtype=bool)
        if verify == "full":
            for i in range(n):
                self.features_at(i)
            _ = self.global_vectors

    @property
    def global_dim(self) -> int:
        return int(self.manifest["global_dim"])

    @property
    def byte_size(self) -> int:
        """Bytes of its committed files."""
        return sum(int(v) for v in self.manifest["bytes"].values())

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, image_id: object) -> bool:
        return image_id in self._position

    def __getitem__(self, image_id: str) -> LocalFeatures:
        return self.features_at(self.position(image_id))

    def position(self, image_id: str) -> int:
        """Row of ``image_id`` in ``ids``; an unknown id is a :class:`MissingIdError`."""
        try:
            return self._position[image_id]
        except (KeyError, TypeError):
            raise MissingIdError(f"{image_id!r} is not in the store {self.path}") from None

    def mapped(self) -> tuple:
        """The feature files, memory-mapped on first use (one descriptor and one map each,
        kept until :meth:`release`): keypoints, frames or ``None``, descriptors."""
        if self._maps is None:
            total = self.manifest["features"]
            fw = self.layout.frame_width if self.layout else 0
            desc = self.layout.descriptor_numpy if self.layout else "u1"
            kp_dtype = self.layout.keypoint_numpy if self.layout else "<f4"
            self._maps = (
                _map(self.path / "keypoints.bin", kp_dtype, (total, 2)),
                _map(self.path / "frames.bin", "<f4", (total, fw)) if fw else None,
                _map(self.path / "descriptors.bin", desc, (total, self.dim)),
            )
        return self._maps

    def release(self) -> None:
        """Drop the maps of its files (reopened on the next access). Features handed out
        before keep their own reference and stay valid."""
        self._maps = None
        self._global = None

    @property
    def is_mapped(self) -> bool:
        """Whether its files are mapped now."""
        return self._maps is not None or self._global is not None

    @property
    def global_vectors(self) -> np.ndarray | None:
        """``(images, G)`` float32 rows in ``ids`` order, or ``None``; their checksum is
        verified on first use (unless opened with ``verify="none"``)."""
        gdim = self.global_dim
        if not gdim:
            return None
        if self._global is None:
            self._global = _map(self.path / "global.bin", "<f4", (len(self), gdim))
        expected = self.manifest["global_crc"]
        if self.verify != "none" and not self._global_verified and expected is not None:
            if zlib.crc32(as_bytes(self._global)) != expected:
                raise FormatError(
                    f"{self.path / 'global.bin'}: checksum mismatch (corrupt global vectors)"
                )
            self._global_verified = True
        return self._global

    def features_at(self, i: int, maps: tuple | None = None) -> LocalFeatures:
        """Image ``i``, read from ``maps`` (what :meth:`mapped` returned) or its own."""
        rec = self.index[i]
        lo, hi = int(rec["offset"]), int(rec["offset"]) + int(rec["count"])
        keypoints, frames_map, descriptors = maps if maps is not None else self.mapped()
        kp = keypoints[lo:hi]
        fr = frames_map[lo:hi] if frames_map is not None else np.zeros((hi - lo, 0), "<f4")
        desc = descriptors[lo:hi]
        if self.verify != "none" and not self._verified[i]:
            if image_crc(kp, fr, desc) != int(rec["crc"]):
                raise FormatError(
                    f"{self.path}: image {self.ids[i]!r}: checksum mismatch (corrupt feature files)"
                )
            self._verified[i] = True
        frames = None
        if frames_map is not None:
            frames = fr if fr.shape[1] == 2 else fr.reshape(-1, 2, 3)
        size = (int(rec["height"]), int(rec["width"])) if rec["height"] and rec["width"] else None
        if self.layout is not None and self.layout.kind == CODES:
            return _codes_of(self.layout, kp, desc, size)
        return LocalFeatures(kp, desc, frames=frames, image_size=size)

    def damaged_ids(self) -> list[str]:
        """Ids whose features fail their checksum (all of them when the global vectors'
        checksum fails); reads every byte once, then releases the maps."""
        bad = []
        for i, image_id in enumerate(self.ids):
            try:
                self.features_at(i)
            except FormatError:
                bad.append(image_id)
        try:
            _ = self.global_vectors
        except FormatError:
            bad = list(self.ids)
        self.release()
        return bad

    def __repr__(self) -> str:
        return f"StoreDirectory({str(self.path)!r}, images={len(self)}, layout={self.layout})"


def _codes_of(layout: StoreLayout, kp: np.ndarray, rows: np.ndarray, size: Any) -> Any:
    """One image of a store of codes as ``QuantisedFeatures`` (``codes.record.from_rows``)."""
    from ..codes.record import from_rows

    extra = dict(layout.extra)
    return from_rows(
        kp,
        rows,
        int(extra["words"]),
        int(extra["signature_words"]),
        bool(extra["frames"]),
        int(extra["vocabulary"], 16),
        size,
    )


def store_layout_key(store: StoreDirectory) -> dict[str, Any]:
    """What two directories must share to be shards of one store: extractor, layout (its
    dict, or ``None`` while not fixed) and global dimension."""
    return {
        "extractor": store.extractor,
        "layout": store.layout.as_dict() if store.layout else None,
        "global_dim": store.global_dim,
    }
