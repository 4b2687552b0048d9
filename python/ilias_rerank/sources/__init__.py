"""Image sources: where the bytes of an image id come from, read where they are.

- :class:`FolderSource`: a folder (id = path relative to it, without suffix) or a TSV of
  ``id<TAB>path`` lines;
- :class:`TarSource`: tar shards read in place (the ILIAS / YFCC100M layout: ``*.tar``
  files of images named by id), members found through an index built once per tar and
  cached (no unpacking);
- :class:`CallableSource`: any ``id -> bytes`` function (a key-value store, a database);
- :class:`ChainSource`: several of them, looked up in order.

Every source answers ``id in source``, ``source.read(id) -> bytes`` (an
:class:`~ilias_rerank.errors.ImageReadError` naming the id and where it was looked for when
it is missing or unreadable) and ``source.ids()``. :func:`open_source` picks one from a
path.
"""

from __future__ import annotations

from .base import ImageSource
from .callable import CallableSource
from .chain import ChainSource
from .factory import open_source
from .folder import FolderSource
from .tar import TarSource

__all__ = [
    "CallableSource",
    "ChainSource",
    "FolderSource",
    "ImageSource",
    "TarSource",
    "open_source",
]
