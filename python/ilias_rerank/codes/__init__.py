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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..features import LocalFeatures
from .features import QuantisedFeatures
from .vocabulary import Vocabulary

__all__ = [
    "DEFAULT_WORDS",
    "Coder",
    "QuantisedFeatures",
    "QuantisedStore",
    "Vocabulary",
    "default_vocabulary",
    "load_coder",
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


@dataclass(frozen=True)
class Coder:
    """What turns an extractor's features into codes as they are stored (a store of codes:
    ``--codes`` / ``ExtractorSpec(codes=...)``): the vocabulary and the words kept a
    feature. ``params()`` goes into the store's extractor entry, so a store of exact
    features and one of codes (or codes of two vocabularies) are never one store."""

    vocabulary: Vocabulary
    words: int = DEFAULT_WORDS

    def __post_init__(self) -> None:
        if isinstance(self.words, bool) or not isinstance(self.words, int):
            raise ConfigError(f"codes words: expected an int in 1..16, got {self.words!r}")
        if not 1 <= self.words <= 16:
            raise ConfigError(f"codes words: expected an int in 1..16, got {self.words}")

    def __call__(self, features: LocalFeatures) -> QuantisedFeatures:
        return quantise(features, self.vocabulary, self.words)

    def params(self) -> dict[str, Any]:
        return {"vocabulary": self.vocabulary.name, "words": self.words}

    def store_layout(self, frames: bool):
        """The layout of the store of these codes (``store.layout.codes_layout``)."""
        from ..store.layout import codes_layout

        return codes_layout(self.vocabulary.id, self.words, self.vocabulary.bits // 64, frames)


def load_coder(codes: str | Path, words: int = DEFAULT_WORDS) -> Coder:
    """``codes``: ``"shipped"`` (the vocabulary that ships) or the path of a vocabulary
    ``.npz`` (``ilias-rerank vocabulary train``)."""
    if str(codes) == "shipped":
        return Coder(default_vocabulary(), words)
    path = Path(codes)
    if not path.is_file():
        raise ConfigError(
            f"codes: expected 'shipped' or a vocabulary .npz file, got {str(codes)!r} "
            "(no such file)"
        )
    return Coder(Vocabulary.load(path), words)
