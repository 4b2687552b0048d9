"""One image's codes as bytes, for a store of codes: a small header (magic, version,
words per feature, bytes per word, the vocabulary's id, CRC-32 of the words) followed by
the word ids and then a compact record (:mod:`ilias_rerank.compact`: 16-bit keypoints,
8-bit log-scale and angle, the signatures as its binary words, its own CRC). Per feature:
``6 + 8 W + K b`` bytes (``W`` signature words, ``K`` words of ``b`` = 2 bytes when the
vocabulary has at most 65,536 cells).

:func:`decode` refuses a record of another vocabulary when one is given, and a truncated
or corrupt record (:class:`~ilias_rerank.errors.FormatError`).
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from .. import compact
from ..errors import FormatError
from ..features import LocalFeatures
from .features import QuantisedFeatures

__all__ = ["decode", "encode", "from_rows", "row_bytes", "to_rows"]

_MAGIC = b"IRQC"
_VERSION = 1
# magic, version, words per feature, bytes per word, reserved, vocabulary id, count, CRC-32
# of the word ids.
_HEADER = struct.Struct("<4sBBBBQII")


def encode(features: QuantisedFeatures) -> bytes:
    """Serialise every feature of ``features`` (cap them before: extractors list the
    strongest first)."""
    n, per = features.words.shape
    wide = int(features.words.max(initial=0)) > 0xFFFF
    words = features.words.astype("<u4" if wide else "<u2").tobytes()
    geometry = compact.encode(
        LocalFeatures(
            features.keypoints, features.signatures, features.frames, features.image_size
        ),
        max_features=n,
    )
    header = _HEADER.pack(
        _MAGIC, _VERSION, per, 4 if wide else 2, 0, features.vocabulary_id, n, zlib.crc32(words)
    )
    return header + words + geometry


def decode(record: bytes, vocabulary_id: int | None = None) -> QuantisedFeatures:
    """Read a record written by :func:`encode`; with ``vocabulary_id``, refuse codes of any
    other vocabulary."""
    buf = memoryview(record)
    if len(buf) < _HEADER.size:
        raise FormatError(f"codes: expected at least {_HEADER.size} header bytes, got {len(buf)}")
    magic, version, per, width, _, vocab, n, crc = _HEADER.unpack_from(buf)
    if magic != _MAGIC or version != _VERSION:
        raise FormatError(
            f"codes: expected magic {_MAGIC!r} version {_VERSION}, got {bytes(magic)!r} "
            f"version {version}"
        )
    if vocabulary_id is not None and vocab != vocabulary_id:
        raise FormatError(
            f"codes: expected codes of vocabulary {vocabulary_id:016x}, got {vocab:016x}"
        )
    end = _HEADER.size + n * per * width
    if per == 0 or width not in (2, 4) or len(buf) < end:
        raise FormatError(f"codes: truncated or corrupt record ({len(buf)} bytes)")
    raw = buf[_HEADER.size : end]
    if zlib.crc32(raw) != crc:
        raise FormatError("codes: checksum mismatch (corrupt record)")
    words = np.frombuffer(raw, "<u2" if width == 2 else "<u4").astype(np.uint32).reshape(n, per)
    geo = compact.decode(bytes(buf[end:]))
    if len(geo) != n:
        raise FormatError(f"codes: expected {n} features in the geometry, got {len(geo)}")
    return QuantisedFeatures(
        geo.keypoints, words, geo.descriptors, vocab, geo.frames, geo.image_size
    )


# --- one row a feature, for a store of codes (``store/layout.py``, kind "codes") ----------


def row_bytes(words: int, signature_words: int, frames: bool) -> int:
    """Bytes of one feature's row in a store of codes: its word ids (uint16 each), its
    signature words (uint64 each) and, with frames, the quantised log2-scale and angle."""
    return 2 * words + 8 * signature_words + (2 if frames else 0)


def to_rows(features: QuantisedFeatures) -> tuple[np.ndarray, np.ndarray]:
    """``(N, 2)`` uint16 keypoints over the image and ``(N, row_bytes)`` uint8 rows of
    ``features``, quantised as :mod:`ilias_rerank.compact` quantises (one encoder). An image
    with features must know its size (the keypoints are read back over it)."""
    n = len(features)
    if n and features.image_size is None:
        raise FormatError(
            "codes: expected an image_size for a store of codes (its keypoints are stored "
            "as 16 bits over the image), got None"
        )
    if int(features.words.max(initial=0)) > 0xFFFF:
        raise FormatError(
            "codes: expected word ids < 65536 for a store of codes, got "
            f"{int(features.words.max())}"
        )
    geo = LocalFeatures(
        features.keypoints, features.signatures, features.frames, features.image_size
    )
    xy, so, _, _ = compact.quantise_geometry(geo, n)
    k, w = features.words.shape[1], features.signatures.shape[1]
    parts = [np.ascontiguousarray(features.words, "<u2").view(np.uint8).reshape(n, 2 * k)]
    parts.append(np.ascontiguousarray(features.signatures, "<u8").view(np.uint8).reshape(n, 8 * w))
    if so is not None:
        parts.append(so)
    return xy, np.ascontiguousarray(np.concatenate(parts, axis=1), np.uint8)


def from_rows(
    keypoints: np.ndarray,
    rows: np.ndarray,
    words: int,
    signature_words: int,
    frames: bool,
    vocabulary_id: int,
    image_size: tuple[int, int] | None,
) -> QuantisedFeatures:
    """The :class:`QuantisedFeatures` of rows written by :func:`to_rows`."""
    n = len(rows)
    if rows.shape != (n, row_bytes(words, signature_words, frames)) or keypoints.shape != (n, 2):
        raise FormatError(
            f"codes: expected ({n}, {row_bytes(words, signature_words, frames)}) rows and "
            f"({n}, 2) keypoints, got {rows.shape} and {keypoints.shape}"
        )
    if n and image_size is None:
        raise FormatError("codes: stored codes without an image size (corrupt store)")
    height, width = image_size or (1, 1)
    kp = compact.dequantise_keypoints(keypoints, (float(width), float(height)))
    w_end = 2 * words
    s_end = w_end + 8 * signature_words
    rows = np.ascontiguousarray(rows)
    ids = rows[:, :w_end].copy().view("<u2").astype(np.uint32)
    sig = rows[:, w_end:s_end].copy().view("<u8").astype(np.uint64)
    fr = compact.dequantise_frames(rows[:, s_end:]) if frames else None
    return QuantisedFeatures(kp, ids, sig, vocabulary_id, fr, image_size)
