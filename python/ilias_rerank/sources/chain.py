"""Several sources as one: an id is read from the first source that has it (the ILIAS
queries and positives in a folder, the YFCC100M distractors in tar shards)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from .base import ImageSource

__all__ = ["ChainSource"]


class ChainSource(ImageSource):
    def __init__(self, sources: Sequence[ImageSource]) -> None:
        self.sources = list(sources)

    def __contains__(self, image_id: object) -> bool:
        return any(image_id in s for s in self.sources)

    def prepare(self, ids: Iterable[str]) -> None:
        ids = list(ids)
        for s in self.sources:
            s.prepare(ids)

    def read(self, image_id: str) -> bytes:
        for s in self.sources:
            if image_id in s:
                return s.read(image_id)
        raise self.missing(image_id, self.describe())

    def ids(self) -> Iterator[str]:
        for s in self.sources:
            yield from s.ids()

    def describe(self) -> str:
        return " or ".join(s.describe() for s in self.sources)
