"""The vocabulary of quantised matching: an inverted multi-index (Babenko & Lempitsky,
CVPR 2012) of two 256-word codebooks over the two 64-dimensional halves of RootSIFT, i.e.
65,536 cells, plus the Hamming-Embedding signature: the descriptor's residual to its cell
projected on 64 fixed random orthonormal directions and thresholded at the medians learned
in training (Jégou, Douze & Schmid, ECCV 2008).

A vocabulary is a small ``.npz`` (about 200 KB) with its training record; its identifier is
a digest of its arrays, so codes made with another vocabulary are refused by the core.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._io import atomic_write_npz
from ..errors import ConfigError, FormatError, ShapeError

__all__ = ["DIM", "HALF_WORDS", "SIGNATURE_BITS", "Vocabulary", "kmeans", "normalise"]

DIM = 128
HALF_WORDS = 256
SIGNATURE_BITS = 64
_FORMAT = "ilias-rerank-vocabulary-1"


def normalise(descriptors) -> np.ndarray:
    """``(N, 128)`` descriptors (float RootSIFT or its uint8 quantisation) as unit-norm
    float32 rows (all-zero rows stay zero)."""
    d = np.asarray(descriptors)
    if d.ndim != 2 or d.shape[1] != DIM or d.dtype.kind not in "fiu":
        raise ShapeError(f"descriptors: expected (N, {DIM}) real values, got {d.shape} {d.dtype}")
    d = d.astype(np.float32)
    n = np.linalg.norm(d, axis=1, keepdims=True)
    return d / np.maximum(n, 1e-12)


def _sq_dist(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    return (x * x).sum(1)[:, None] - 2.0 * x @ c.T + (c * c).sum(1)[None]


def kmeans(x: np.ndarray, k: int, iterations: int = 25, seed: int = 0) -> np.ndarray:
    """Lloyd's k-means (k-means++ seeding on a subsample), deterministic for a seed."""
    rng = np.random.default_rng(seed)
    x = np.asarray(x, np.float32)
    if len(x) < k:
        raise ShapeError(f"training descriptors: expected at least {k}, got {len(x)}")
    sub = x[rng.permutation(len(x))[: min(len(x), 20 * k)]]
    centres = [sub[rng.integers(len(sub))]]
    d2 = ((sub - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        p = d2 / d2.sum() if d2.sum() > 0 else None
        c = sub[rng.choice(len(sub), p=p)]
        centres.append(c)
        d2 = np.minimum(d2, ((sub - c) ** 2).sum(1))
    c = np.stack(centres).astype(np.float32)
    for _ in range(iterations):
        a = np.concatenate(
            [_sq_dist(x[s : s + 65536], c).argmin(1) for s in range(0, len(x), 65536)]
        )
        counts = np.bincount(a, minlength=k)
        order = np.argsort(a, kind="stable")
        empty = counts == 0
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])[~empty]
        sums = np.add.reduceat(x[order], starts, axis=0)
        c[~empty] = sums / counts[~empty, None].astype(np.float32)
        if empty.any():  # re-seed empty cells with random points
            c[empty] = x[rng.integers(len(x), size=int(empty.sum()))]
    return c


@dataclass(frozen=True)
class Vocabulary:
    """Two codebooks ``(2, 256, 64)``, the signature projection ``(64, 128)`` and medians
    ``(64,)``; ``trained_on`` says what it was learned from."""

    codebooks: np.ndarray
    projection: np.ndarray
    medians: np.ndarray
    trained_on: str

    def __post_init__(self) -> None:
        k, bits = self.codebooks.shape[1], self.projection.shape[0]
        if not (2 <= k <= HALF_WORDS and bits in (64, 128)):
            raise FormatError(
                f"vocabulary: expected 2..{HALF_WORDS} words a half and 64 or 128 signature "
                f"bits, got {k} and {bits}"
            )
        shapes = {
            "codebooks": (self.codebooks, (2, k, DIM // 2)),
            "projection": (self.projection, (bits, DIM)),
            "medians": (self.medians, (bits,)),
        }
        for name, (arr, shape) in shapes.items():
            if arr.shape != shape or arr.dtype != np.float32 or not np.isfinite(arr).all():
                raise FormatError(
                    f"vocabulary {name}: expected {shape} finite float32, got {arr.shape} "
                    f"{arr.dtype}"
                )

    @property
    def id(self) -> int:
        """64-bit identifier: a digest of the arrays (the training record excluded)."""
        h = hashlib.sha256()
        for a in (self.codebooks, self.projection, self.medians):
            h.update(np.ascontiguousarray(a, "<f4").tobytes())
        return int.from_bytes(h.digest()[:8], "little")

    @property
    def half_words(self) -> int:
        return int(self.codebooks.shape[1])

    @property
    def bits(self) -> int:
        return int(self.projection.shape[0])

    @property
    def name(self) -> str:
        return f"{self.id:016x}"

    # --- training -----------------------------------------------------------------------

    @classmethod
    def train(
        cls,
        descriptors,
        trained_on: str,
        seed: int = 0,
        iterations: int = 25,
        half_words: int = HALF_WORDS,
        bits: int = SIGNATURE_BITS,
    ) -> Vocabulary:
        """Learn a vocabulary from ``(N, 128)`` RootSIFT descriptors (N >= half_words)."""
        x = normalise(descriptors)
        if len(x) < half_words:
            raise ShapeError(f"descriptors: expected at least {half_words} rows, got {len(x)}")
        books = np.stack(
            [kmeans(x[:, h * 64 : h * 64 + 64], half_words, iterations, seed + h) for h in (0, 1)]
        )
        rng = np.random.default_rng(seed + 2)
        q, _ = np.linalg.qr(rng.standard_normal((DIM, DIM)))
        projection = np.ascontiguousarray(q[:bits], np.float32)
        partial = cls(books, projection, np.zeros(bits, np.float32), trained_on)
        (w1, w2), _ = partial._nearest(x, 1)
        medians = np.median(partial._projected(x, w1[:, 0], w2[:, 0]), axis=0)
        return cls(books, projection, medians.astype(np.float32), trained_on)

    # --- encoding -----------------------------------------------------------------------

    def _nearest(self, x: np.ndarray, a: int):
        """Per half: the ``a`` nearest words and their squared distances, nearest first."""
        out = []
        for h in (0, 1):
            d = _sq_dist(x[:, h * 64 : h * 64 + 64], self.codebooks[h])
            if a == 1:
                idx = d.argmin(1)[:, None]
            else:
                part = np.argpartition(d, a - 1, axis=1)[:, :a]
                pd = np.take_along_axis(d, part, 1)
                idx = np.take_along_axis(part, np.argsort(pd, axis=1, kind="stable"), 1)
            out.append((idx, np.take_along_axis(d, idx, 1)))
        return (out[0][0], out[1][0]), (out[0][1], out[1][1])

    def _projected(self, x, w1, w2) -> np.ndarray:
        residual = x - np.concatenate([self.codebooks[0][w1], self.codebooks[1][w2]], axis=1)
        return residual @ self.projection.T

    def encode(self, descriptors, words: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """``(words (N, words) uint32, signatures (N, bits / 64) uint64)``: each feature's
        ``words`` nearest cells (the first its own; the cell id is ``k * w1 + w2`` with ``k``
        words a half) and its signature (from its own cell's residual)."""
        if not 1 <= words <= 16:
            raise ConfigError(f"words: expected an int in 1..16, got {words!r}")
        x = normalise(descriptors)
        n, k, sw = len(x), self.half_words, self.bits // 64
        if n == 0:
            return np.zeros((0, words), np.uint32), np.zeros((0, sw), np.uint64)
        a = min(words, k)
        (i1, i2), (d1, d2) = self._nearest(x, a)
        total = (d1[:, :, None] + d2[:, None, :]).reshape(n, a * a)
        best = np.argsort(total, axis=1, kind="stable")[:, :words]
        rows = np.arange(n)[:, None]
        cells = i1[rows, best // a] * k + i2[rows, best % a]
        bits = self._projected(x, i1[:, 0], i2[:, 0]) > self.medians
        packed = np.packbits(bits, axis=1, bitorder="little")
        sig = np.ascontiguousarray(packed).view("<u8").astype(np.uint64).reshape(n, sw)
        return np.ascontiguousarray(cells, np.uint32), sig

    # --- files --------------------------------------------------------------------------

    def save(self, path) -> None:
        atomic_write_npz(
            Path(path),
            format=np.array(_FORMAT),
            codebooks=self.codebooks,
            projection=self.projection,
            medians=self.medians,
            trained_on=np.array(self.trained_on),
        )

    @classmethod
    def load(cls, path) -> Vocabulary:
        try:
            with np.load(path, allow_pickle=False) as z:
                if str(z["format"]) != _FORMAT:
                    raise FormatError(f"{path}: expected a {_FORMAT} file, got {z['format']}")
                return cls(
                    z["codebooks"].astype(np.float32),
                    z["projection"].astype(np.float32),
                    z["medians"].astype(np.float32),
                    str(z["trained_on"]),
                )
        except (OSError, KeyError, ValueError) as exc:
            raise FormatError(f"{path}: not a readable vocabulary ({exc})") from exc

    def describe(self) -> dict:
        return {
            "id": self.name,
            "trained_on": json.loads(self.trained_on)
            if self.trained_on.startswith("{")
            else self.trained_on,
        }
