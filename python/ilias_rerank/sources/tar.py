"""Tar shards read in place: the ILIAS / YFCC100M layout, ``*.tar`` files of images named
by id (a member ``a/b/123.jpg`` is the image ``a/b/123``). Nothing is unpacked.

Each tar gets a member index, built once by scanning its headers and cached (``index_dir``,
by default beside the tar): ``<name>.<hash>.idx.npz`` with the ids sorted, the data offset
and the size of each member, and the tar's size and modification time (a changed tar is
indexed again). Looking many ids up is one vectorised search per tar; reading one is a
``pread`` of its bytes, safe from many threads and after ``fork``.

A member that is missing, or whose bytes run past the end of the tar (a truncated file),
is an :class:`~ilias_rerank.errors.ImageReadError` naming the id and the tar; a member that
is there but not an image fails when decoded, naming the id the same way.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tarfile
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from .._io import atomic_write_npz
from ..errors import FormatError, ImageReadError, InvalidInputError
from .base import IMAGE_SUFFIXES, ImageSource

__all__ = ["TarSource", "tar_index"]

INDEX_VERSION = 2  # 2: sizes past the end are -1, a repeated name is the last
#: Tar files a source keeps open at once (per process).
MAX_OPEN = 64


def _index_path(tar: Path, index_dir: Path | None) -> Path:
    digest = hashlib.sha1(str(tar.resolve()).encode()).hexdigest()[:12]
    folder = index_dir if index_dir is not None else tar.parent
    return Path(folder) / f"{tar.name}.{digest}.idx.npz"


def _scan(tar: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image members: ids sorted, data offsets, sizes. Headers are not trusted: a member
    that declares bytes past the end of the tar gets size -1 (read as an error naming it);
    a name that appears twice (``tar -r``) is the last one, as tar reads it."""
    ids, offsets, sizes = [], [], []
    end = tar.stat().st_size
    try:
        with tarfile.open(tar, mode="r:") as tf:
            for member in tf:
                if not member.isfile() or Path(member.name).suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                name = member.name[2:] if member.name.startswith("./") else member.name
                ids.append(str(Path(name).with_suffix("").as_posix()))
                offset, size = int(member.offset_data), int(member.size)
                offsets.append(offset)
                sizes.append(size if size >= 0 and offset + size <= end else -1)
    except (tarfile.TarError, OSError, EOFError, ValueError, OverflowError) as exc:
        if not ids:
            raise FormatError(f"{tar}: not a readable tar file ({exc})") from None
        # A damaged tail: the members before it stay readable.
    last = {image_id: k for k, image_id in enumerate(ids)}  # the last of a repeated name
    keep = sorted(last, key=str)
    rows = [last[i] for i in keep]
    id_arr = np.array(keep, dtype=np.str_) if keep else np.array([], dtype="<U1")
    return (
        id_arr,
        np.array([offsets[r] for r in rows], np.int64),
        np.array([sizes[r] for r in rows], np.int64),
    )


def _sound(ids: np.ndarray, offsets: np.ndarray, sizes: np.ndarray, end: int) -> bool:
    """Whether a cached index fits the tar: one row per id, sorted and distinct, every
    member inside the file."""
    n = len(ids)
    if len(offsets) != n or len(sizes) != n or offsets.dtype != np.int64:
        return False
    if n and ((offsets < 0).any() or (sizes < -1).any() or (offsets + sizes.clip(0) > end).any()):
        return False
    return not (n > 1 and (ids[1:] <= ids[:-1]).any())


def tar_index(tar: str | os.PathLike, index_dir: str | os.PathLike | None = None):
    """``(ids sorted, data offsets, sizes)`` of a tar's image members, from the cached
    index when it matches the tar's size and modification time, else scanned and cached."""
    tar = Path(tar)
    try:
        st = tar.stat()
    except OSError as exc:
        raise ImageReadError(f"images: cannot open the tar {tar} ({exc})") from exc
    path = _index_path(tar, None if index_dir is None else Path(index_dir))
    stamp = np.array([INDEX_VERSION, st.st_size, st.st_mtime_ns], dtype=np.int64)
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                ids, offsets, sizes = z["ids"], z["offsets"], z["sizes"]
                if np.array_equal(z["stamp"], stamp) and _sound(ids, offsets, sizes, st.st_size):
                    return ids, offsets, sizes
        except Exception:  # a damaged cache (bad zip, missing keys, ...) is rebuilt
            pass
    ids, offsets, sizes = _scan(tar)
    with contextlib.suppress(OSError):  # a read-only place: the index stays in memory
        atomic_write_npz(path, stamp=stamp, ids=ids, offsets=offsets, sizes=sizes)
    return ids, offsets, sizes


class TarSource(ImageSource):
    """Images inside tar files (see the module docstring)."""

    def __init__(
        self,
        tars: Sequence[str | os.PathLike],
        *,
        index_dir: str | os.PathLike | None = None,
    ) -> None:
        self.tars = [Path(t) for t in tars]
        if not self.tars:
            raise InvalidInputError("images: expected at least one .tar file")
        self.index_dir = None if index_dir is None else Path(index_dir)
        self._indexes = [tar_index(t, self.index_dir) for t in self.tars]
        self._located: dict[str, tuple[int, int, int]] = {}
        # tar -> (pid, fd), most recently used last; at most MAX_OPEN open at once. The
        # lock makes "find the descriptor, read through it" one step: another thread may
        # otherwise evict (close) it in between, and a reused number would read another
        # file. It belongs to the process that made it (a forked child makes its own).
        self._fds: OrderedDict[int, tuple[int, int]] = OrderedDict()
        self._lock, self._lock_pid = threading.Lock(), os.getpid()

    def _find(self, image_id: str) -> tuple[int, int, int] | None:
        hit = self._located.get(image_id)
        if hit is not None:
            return hit
        for t, (ids, offsets, sizes) in enumerate(self._indexes):
            k = int(np.searchsorted(ids, image_id))
            if k < len(ids) and ids[k] == image_id:
                return t, int(offsets[k]), int(sizes[k])
        return None

    def prepare(self, ids: Iterable[str]) -> None:
        wanted = np.array(sorted(set(ids)), dtype=np.str_)
        for t, (tar_ids, offsets, sizes) in enumerate(self._indexes):
            if not len(wanted) or not len(tar_ids):
                continue
            k = np.searchsorted(tar_ids, wanted).clip(0, len(tar_ids) - 1)
            hit = tar_ids[k] == wanted
            for image_id, j in zip(wanted[hit].tolist(), k[hit].tolist(), strict=True):
                self._located.setdefault(image_id, (t, int(offsets[j]), int(sizes[j])))

    def __contains__(self, image_id: object) -> bool:
        return isinstance(image_id, str) and self._find(image_id) is not None

    def __len__(self) -> int:
        return sum(len(ids) for ids, _, _ in self._indexes)

    def _fd(self, t: int) -> int:
        pid = os.getpid()
        held = self._fds.get(t)
        if held is not None and held[0] == pid:
            self._fds.move_to_end(t)
            return held[1]
        # Not open yet, or inherited through fork. Keep few open: thousands of tars
        # would exhaust the process's file descriptors.
        while len(self._fds) >= MAX_OPEN:
            owner, fd = self._fds.popitem(last=False)[1]
            if owner == pid:
                with contextlib.suppress(OSError):
                    os.close(fd)
        try:
            fd = os.open(self.tars[t], os.O_RDONLY)
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE):
                raise  # the process is out of file descriptors: not this image's fault
            raise ImageReadError(f"images: cannot open the tar {self.tars[t]} ({exc})") from exc
        self._fds[t] = (pid, fd)
        return fd

    def read(self, image_id: str) -> bytes:
        where = self._find(image_id)
        if where is None:
            raise self.missing(image_id, self.describe())
        t, offset, size = where
        if size < 0:
            raise ImageReadError(
                f"image {image_id!r}: its member in {self.tars[t]} declares more bytes than "
                "the tar holds (the tar is truncated, or the header corrupt)"
            )
        if self._lock_pid != os.getpid():
            self._lock, self._lock_pid = threading.Lock(), os.getpid()
        with self._lock:
            fd = self._fd(t)
            try:
                data = os.pread(fd, size, offset)
            except OSError as exc:
                raise ImageReadError(
                    f"image {image_id!r}: cannot read {self.tars[t]} ({exc})"
                ) from exc
        if len(data) != size:
            raise ImageReadError(
                f"image {image_id!r}: {self.tars[t]} is truncated (expected {size} bytes at "
                f"{offset}, got {len(data)})"
            )
        return data

    def ids(self) -> Iterator[str]:
        for ids, _, _ in self._indexes:
            yield from ids.tolist()

    def describe(self) -> str:
        if len(self.tars) == 1:
            return f"the tar {self.tars[0]}"
        return f"{len(self.tars)} tar files ({self.tars[0].parent})"

    def __getstate__(self) -> dict:
        """Picklable for worker processes: no open files; after :meth:`prepare`, only the
        prepared ids' places (not every tar's full member index)."""
        state = self.__dict__.copy()
        if self._located:
            empty = (np.array([], dtype="<U1"), np.array([], np.int64), np.array([], np.int64))
            state["_indexes"] = [empty for _ in self._indexes]
        state["_fds"] = OrderedDict()
        state["_lock"], state["_lock_pid"] = None, None  # made anew on the first read
        return state

    def __del__(self) -> None:
        pid = os.getpid()
        for owner, fd in getattr(self, "_fds", {}).values():
            if owner == pid:
                with contextlib.suppress(OSError):
                    os.close(fd)
