"""Images in a folder: id = the path relative to the folder without its suffix, or as a
TSV of ``id<TAB>path`` lines (paths relative to the TSV's folder) lists them."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from pathlib import Path

from ..errors import ImageReadError, InvalidInputError
from .base import IMAGE_SUFFIXES, ImageSource

__all__ = ["FolderSource"]


class FolderSource(ImageSource):
    def __init__(self, root: str | os.PathLike, *, tsv: str | os.PathLike | None = None) -> None:
        self.root = Path(root)
        self.tsv = None if tsv is None else Path(tsv)
        if not self.root.is_dir():
            raise ImageReadError(f"images: no folder {self.root}")
        self._paths = self._read_tsv() if self.tsv else self._scan()
        if not self._paths:
            raise InvalidInputError(f"images: no images in {self.describe()}")

    def _scan(self) -> dict[str, Path]:
        paths: dict[str, Path] = {}
        for p in sorted(self.root.rglob("*")):
            if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file():
                image_id = p.relative_to(self.root).with_suffix("").as_posix()
                if image_id in paths:
                    raise InvalidInputError(
                        f"images: {paths[image_id]} and {p} have the same id {image_id!r}"
                    )
                paths[image_id] = p
        return paths

    def _read_tsv(self) -> dict[str, Path]:
        assert self.tsv is not None
        paths: dict[str, Path] = {}
        with open(self.tsv, encoding="utf-8", newline="") as fh:
            for n, row in enumerate(csv.reader(fh, delimiter="\t"), 1):
                if not row or row[0].startswith("#"):
                    continue
                if len(row) != 2 or not row[0] or not row[1]:
                    raise InvalidInputError(f"{self.tsv}:{n}: expected id<TAB>path, got {row!r}")
                if row[0] in paths:
                    raise InvalidInputError(f"{self.tsv}:{n}: duplicate id {row[0]!r}")
                paths[row[0]] = self.tsv.parent / row[1]
        return paths

    def __contains__(self, image_id: object) -> bool:
        return image_id in self._paths

    def __len__(self) -> int:
        return len(self._paths)

    def path(self, image_id: str) -> Path:
        try:
            return self._paths[image_id]
        except KeyError:
            raise self.missing(image_id, self.describe()) from None

    def read(self, image_id: str) -> bytes:
        path = self.path(image_id)
        try:
            return path.read_bytes()
        except OSError as exc:
            raise ImageReadError(f"image {image_id!r}: cannot read {path} ({exc})") from exc

    def ids(self) -> Iterator[str]:
        return iter(self._paths)

    def describe(self) -> str:
        return f"the list {self.tsv}" if self.tsv else f"the folder {self.root}"
