"""Quantised matching (issue 22): visual words + binary signatures per feature, so that a
pair's tentative correspondences are a linear join in the core instead of exact mutual
nearest neighbours (quadratic), and a feature is stored in a few bytes.

- :class:`Vocabulary`: an inverted multi-index (2 x 256 words over RootSIFT halves) and the
  signature projection; :func:`default_vocabulary` is the one that ships (trained on
  images in no evaluation set, its record in ``trained_on``);
- :func:`quantise`: ``LocalFeatures`` (RootSIFT) -> :class:`QuantisedFeatures`, which
  :func:`ilias_rerank.rerank` and the rest of the API accept like ``LocalFeatures``.
"""

from __future__ import annotations

import functools
from pathlib import Path

from ..features import LocalFeatures
from .features import QuantisedFeatures
from .vocabulary import Vocabulary

__all__ = [
    "DEFAULT_WORDS",
    "QuantisedFeatures",
    "Vocabulary",
    "default_vocabulary",
    "quantise",
]

#: Words per feature kept (multiple assignment, read when the image is the query).
DEFAULT_WORDS = 3

_SHIPPED = Path(__file__).with_name("vocabulary.npz")


@functools.cache
def default_vocabulary() -> Vocabulary:
    """The vocabulary that ships with the package (see ``trained_on``)."""
    return Vocabulary.load(_SHIPPED)


def quantise(
    features: LocalFeatures, vocabulary: Vocabulary | None = None, words: int = DEFAULT_WORDS
) -> QuantisedFeatures:
    """Codes of ``features`` (128-d RootSIFT, float32 or uint8) under ``vocabulary`` (the
    shipped one by default), keypoints, frames and image size kept."""
    voc = default_vocabulary() if vocabulary is None else vocabulary
    w, s = voc.encode(features.descriptors, words)
    return QuantisedFeatures(features.keypoints, w, s, voc.id, features.frames, features.image_size)
