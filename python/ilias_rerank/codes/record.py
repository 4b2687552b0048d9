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

__all__ = ["decode", "encode"]

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
