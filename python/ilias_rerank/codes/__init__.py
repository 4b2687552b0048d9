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
from collections.abc import Iterator, Mapping
from pathlib import Path

from ..features import LocalFeatures
from .features import QuantisedFeatures
from .vocabulary import Vocabulary

__all__ = [
    "DEFAULT_WORDS",
    "QuantisedFeatures",
    "QuantisedStore",
    "Vocabulary",
    "default_vocabulary",
    "quantise",
]

#: Words per feature kept (multiple assignment, read when the image is the query): 5 was
#: the best of 1 / 3 / 5 / 8 on rOxf/rPar at 4,096 features (docs/accuracy.md).
DEFAULT_WORDS = 5

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


class QuantisedStore(Mapping):
    """A read-only view of a store (any mapping of id -> ``LocalFeatures``) as codes, each
    image quantised when read: ``Reranker(QuantisedStore(store))`` re-ranks by quantised
    matching. Codes are not kept: a store of codes on disk is :mod:`.record`'s format."""

    def __init__(
        self,
        store: Mapping,
        vocabulary: Vocabulary | None = None,
        words: int = DEFAULT_WORDS,
    ) -> None:
        self.store = store
        self.vocabulary = default_vocabulary() if vocabulary is None else vocabulary
        self.words = words
        self.path = getattr(store, "path", None)

    def __getitem__(self, image_id: str) -> QuantisedFeatures:
        return quantise(self.store[image_id], self.vocabulary, self.words)

    def __iter__(self) -> Iterator[str]:
        return iter(self.store)

    def __len__(self) -> int:
        return len(self.store)

    def __contains__(self, image_id: object) -> bool:
        return image_id in self.store
