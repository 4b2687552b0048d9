"""Compact features: at most 8 KB per image, for databases too large for full features.

What is kept, per feature (22 bytes with 128-bit descriptors):

- the descriptor binarised, one bit per dimension: ``bit_k = d_k > median(d)`` (the
  per-descriptor median threshold of binary SIFT, Zhou et al. 2012; no learned weights),
  packed into ``uint64`` words and matched by Hamming distance in the core;
- the keypoint quantised to 16 bits per coordinate over the image (1/65535 of its side);
- the frame as an 8-bit log2 scale (range 2^-1 .. 2^13 px, clipped) and an 8-bit orientation.

An image keeps its ``max_features`` strongest features (360 by default: 28 header bytes +
360 x 22 = 7,948 bytes). The serialised record (:func:`encode` / :func:`decode`) carries a
magic, a version and a CRC-32, so a truncated or corrupt record raises
:class:`~ilias_rerank.errors.FormatError` instead of being used.

Accuracy against the default features is measured by ``benches/compact_accuracy.py``
(README, "Compact mode").
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from .errors import FormatError, ShapeError
from .features import LocalFeatures, as_numpy

__all__ = ["BYTES_BUDGET", "DEFAULT_MAX_FEATURES", "binarise", "compact", "decode", "encode"]

#: The size a compact record must not exceed.
BYTES_BUDGET = 8192
#: Features kept per image by default: the most that fit the budget with 128-bit words.
DEFAULT_MAX_FEATURES = 360

_MAGIC = b"IRCF"
# Version 2 stores the orientation as kornia's ``atan2(a01, a00)``; version 1 (the previous
# release) stored ``atan2(a10, a00)``, the opposite angle for the similarity frames
# extractors give, and is decoded with its angles turned back.
_VERSION = 2
_READABLE = (1, 2)
# magic, version, words per descriptor, flags (bit 0: frames), reserved, count,
# height, width (0 = unknown), x and y extent of the quantisation, CRC-32 of the payload.
_HEADER = struct.Struct("<4sBBBBIHHffI")
_HAS_FRAMES = 1
_LOG2_SCALE_MIN, _LOG2_SCALE_MAX = -1.0, 13.0


def binarise(descriptors) -> np.ndarray:
    """``(N, D)`` real descriptors -> ``(N, ceil(D / 64))`` uint64 words, bit ``k`` set when
    ``d_k`` is above the descriptor's median (bit 0 is the lowest bit of word 0)."""
    d = as_numpy(descriptors, "descriptors")
    if d.ndim != 2 or d.dtype.kind not in "fiu":
        raise ShapeError(f"descriptors: expected (N, D) real values, got {d.shape} {d.dtype}")
    d = d.astype(np.float32, copy=False)
    bits = d > np.median(d, axis=1, keepdims=True)
    words = -(-d.shape[1] // 64)
    padded = np.zeros((d.shape[0], words * 64), dtype=bool)
    padded[:, : d.shape[1]] = bits
    packed = np.packbits(padded, axis=1, bitorder="little")
    return np.ascontiguousarray(packed).view("<u8").astype(np.uint64, copy=False)


def _scale_orientation(features: LocalFeatures) -> np.ndarray | None:
    fr = features.frames
    if fr is None:
        return None
    if fr.ndim == 2:
        return fr
    a = fr[:, :, :2].astype(np.float64)
    scale = np.sqrt(np.abs(a[:, 0, 0] * a[:, 1, 1] - a[:, 0, 1] * a[:, 1, 0]))
    angle = np.degrees(np.arctan2(a[:, 0, 1], a[:, 0, 0]))  # kornia's get_laf_orientation
    return np.stack([scale, angle], axis=1).astype(np.float32)


def quantise_geometry(
    features: LocalFeatures, n: int
) -> tuple[np.ndarray, np.ndarray | None, tuple[float, float], tuple[int, int]]:
    """The first ``n`` keypoints as ``(n, 2)`` uint16 over the image (its ``image_size``, or
    the keypoints' extent when unknown), their frames as ``(n, 2)`` uint8 log2-scale and
    angle (``None`` without frames), the extent ``(x, y)`` and ``(height, width)`` (0 when
    unknown): the quantisation of :func:`encode`, shared with the store of codes."""
    kp = features.keypoints[:n].astype(np.float64)
    if features.image_size is not None:
        height, width = features.image_size
        extent = (float(width), float(height))
    else:
        height = width = 0
        extent = tuple(float(max(kp[:, i].max(initial=0.0), 1.0)) for i in (0, 1))
    if height > 65535 or width > 65535:
        raise ShapeError(f"image_size: expected sides <= 65535, got {features.image_size}")
    xy = np.clip(np.rint(kp / np.array(extent) * 65535.0), 0, 65535).astype("<u2")
    so = _scale_orientation(features)
    if so is None:
        return xy, None, extent, (height, width)
    so = so[:n].astype(np.float64)
    log2 = np.log2(np.maximum(so[:, 0], 1e-6))
    q_scale = np.rint(
        (np.clip(log2, _LOG2_SCALE_MIN, _LOG2_SCALE_MAX) - _LOG2_SCALE_MIN)
        * 255.0
        / (_LOG2_SCALE_MAX - _LOG2_SCALE_MIN)
    ).astype(np.uint8)
    q_angle = (np.rint(np.mod(so[:, 1], 360.0) * 256.0 / 360.0).astype(np.int64) % 256).astype(
        np.uint8
    )
    return xy, np.stack([q_scale, q_angle], axis=1), extent, (height, width)


def dequantise_keypoints(xy: np.ndarray, extent: tuple[float, float]) -> np.ndarray:
    """``(n, 2)`` uint16 keypoints (:func:`quantise_geometry`) -> float32 pixels."""
    return (xy.astype(np.float64) / 65535.0 * np.array(extent)).astype(np.float32)


def dequantise_frames(q: np.ndarray, version: int = _VERSION) -> np.ndarray:
    """``(n, 2)`` uint8 log2-scale and angle (:func:`quantise_geometry`) -> float32
    ``(scale, angle in degrees)`` frames."""
    log2 = q[:, 0] * (_LOG2_SCALE_MAX - _LOG2_SCALE_MIN) / 255.0 + _LOG2_SCALE_MIN
    angle = q[:, 1] if version >= 2 else (256 - q[:, 1].astype(np.int64)) % 256
    return np.stack([np.exp2(log2), angle * 360.0 / 256.0], axis=1).astype(np.float32)


def compact(features: LocalFeatures, max_features: int = DEFAULT_MAX_FEATURES) -> LocalFeatures:
    """The compact version of ``features`` as :func:`decode` would return it (binarised,
    quantised, the first ``max_features`` rows kept: extractors list the strongest first)."""
    return decode(encode(features, max_features))


def encode(features: LocalFeatures, max_features: int = DEFAULT_MAX_FEATURES) -> bytes:
    """Serialise the first ``max_features`` features compactly (see the module docs)."""
    if max_features < 0:
        raise ShapeError(f"max_features: expected >= 0, got {max_features}")
    n = min(len(features), max_features)
    desc = features.descriptors[:n]
    words = desc if desc.dtype == np.uint64 else binarise(desc)
    nwords = words.shape[1]
    xy, so, extent, (height, width) = quantise_geometry(features, n)
    parts = [xy.tobytes()]
    flags = 0
    if so is not None:
        flags |= _HAS_FRAMES
        parts.append(so.tobytes())
    parts.append(np.ascontiguousarray(words, dtype="<u8").tobytes())
    payload = b"".join(parts)
    header = _HEADER.pack(
        _MAGIC, _VERSION, nwords, flags, 0, n, height, width, *extent, zlib.crc32(payload)
    )
    return header + payload


def decode(record: bytes) -> LocalFeatures:
    """Read a record written by :func:`encode`; :class:`FormatError` when it is truncated,
    corrupt or of another version."""
    buf = memoryview(record)
    if len(buf) < _HEADER.size:
        raise FormatError(
            f"compact features: expected at least {_HEADER.size} header bytes, got {len(buf)}"
        )
    magic, version, nwords, flags, _, n, height, width, ex, ey, crc = _HEADER.unpack_from(buf)
    if magic != _MAGIC:
        raise FormatError(f"compact features: expected magic {_MAGIC!r}, got {bytes(magic)!r}")
    if version not in _READABLE:
        raise FormatError(
            f"compact features: expected format version 1 or 2, got {version} (written by "
            "another release of ilias-rerank)"
        )
    per_feature = 4 + (2 if flags & _HAS_FRAMES else 0) + 8 * nwords
    expected = _HEADER.size + n * per_feature
    if len(buf) != expected or nwords == 0:
        raise FormatError(
            f"compact features: expected {expected} bytes for {n} features of {nwords} words, "
            f"got {len(buf)} (truncated or corrupt)"
        )
    payload = buf[_HEADER.size :]
    if zlib.crc32(payload) != crc:
        raise FormatError("compact features: checksum mismatch (corrupt record)")
    offset = 0
    xy = np.frombuffer(payload, dtype="<u2", count=2 * n, offset=offset).reshape(n, 2)
    offset += 4 * n
    keypoints = dequantise_keypoints(xy, (ex, ey))
    frames = None
    if flags & _HAS_FRAMES:
        q = np.frombuffer(payload, dtype=np.uint8, count=2 * n, offset=offset).reshape(n, 2)
        offset += 2 * n
        frames = dequantise_frames(q, version)
    words = np.frombuffer(payload, dtype="<u8", count=n * nwords, offset=offset)
    descriptors = words.astype(np.uint64).reshape(n, nwords)
    size = (height, width) if height and width else None
    return LocalFeatures(keypoints, descriptors, frames=frames, image_size=size)
