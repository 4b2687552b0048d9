"""``QuantisedFeatures``: one image's features as codes (visual words + signatures) with
their keypoints and frames, matched by the core's join (never exhaustively)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ShapeError
from ..features import LocalFeatures, as_numpy, check_frames, real_float32

__all__ = ["QuantisedFeatures"]


class QuantisedFeatures:
    """Keypoints ``(N, 2)`` float32, ``words`` ``(N, K)`` uint32 (each feature's K nearest
    cells, its own first), ``signatures`` ``(N, W)`` uint64, optional frames and image size
    (as :class:`~ilias_rerank.LocalFeatures`), and ``vocabulary_id``, the 64-bit identifier
    of the vocabulary that made the codes (the core refuses to match codes of two)."""

    __slots__ = ("frames", "image_size", "keypoints", "signatures", "vocabulary_id", "words")

    def __init__(
        self,
        keypoints: Any,
        words: Any,
        signatures: Any,
        vocabulary_id: int,
        frames: Any = None,
        image_size: tuple[int, int] | None = None,
    ) -> None:
        base = LocalFeatures(keypoints, np.zeros((len(np.asarray(keypoints)), 1), np.uint8))
        kp = real_float32(base.keypoints, "keypoints", "(N, 2) float32")
        n = kp.shape[0]
        w = as_numpy(words, "words")
        if w.ndim == 1:
            w = w.reshape(-1, 1)
        if w.ndim != 2 or w.shape[0] != n or not 1 <= w.shape[1] <= 16 or w.dtype.kind not in "iu":
            raise ShapeError(
                f"words: expected ({n}, K) uint32 with K in 1..16, got {w.shape} {w.dtype}"
            )
        if w.size and (int(w.min()) < 0 or int(w.max()) >= 2**32):
            raise ShapeError(f"words: expected ids in 0..2**32, got {int(w.min())}..{int(w.max())}")
        s = as_numpy(signatures, "signatures")
        if s.ndim == 1:
            s = s.reshape(-1, 1)
        if s.ndim != 2 or s.shape[0] != n or not 1 <= s.shape[1] <= 4 or s.dtype != np.uint64:
            raise ShapeError(
                f"signatures: expected ({n}, W) uint64 with W in 1..4, got {s.shape} {s.dtype}"
            )
        if not 0 <= int(vocabulary_id) < 2**64:
            raise ShapeError(f"vocabulary_id: expected an int in 0..2**64, got {vocabulary_id}")
        self.keypoints = kp
        self.words = np.ascontiguousarray(w, np.uint32)
        self.signatures = np.ascontiguousarray(s)
        self.vocabulary_id = int(vocabulary_id)
        self.frames = None if frames is None else check_frames(frames, n, "frames")
        self.image_size = LocalFeatures(kp, base.descriptors, None, image_size).image_size

    def __len__(self) -> int:
        return int(self.keypoints.shape[0])

    def prefix(self, n: int) -> QuantisedFeatures:
        """The first ``n`` features (the strongest, as extractors list them)."""
        fr = None if self.frames is None else self.frames[:n]
        return QuantisedFeatures(
            self.keypoints[:n],
            self.words[:n],
            self.signatures[:n],
            self.vocabulary_id,
            fr,
            self.image_size,
        )

    @property
    def nbytes(self) -> int:
        frames = 0 if self.frames is None else self.frames.nbytes
        return self.keypoints.nbytes + self.words.nbytes + self.signatures.nbytes + frames

    def __repr__(self) -> str:
        return (
            f"QuantisedFeatures(n={len(self)}, words={self.words.shape[1]}, "
            f"signature_bits={64 * self.signatures.shape[1]}, "
            f"vocabulary={self.vocabulary_id:016x}, image_size={self.image_size})"
        )
