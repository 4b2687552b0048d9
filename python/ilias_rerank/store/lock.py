"""The writer lock of a store directory: ``<dir>/.lock``, held with ``flock`` by every
writer of that directory (a :class:`~ilias_rerank.store.StoreWriter` on a store or shard
directory; a ``rerank-shortlists`` job, :func:`~ilias_rerank.store.register_shards`,
``store repair`` and ``store merge`` on a sharded store's root).

A second writer does not wait by default: it gets a
:class:`~ilias_rerank.errors.StoreLockedError` at once; with ``timeout`` seconds it waits
that long first. The kernel releases the lock when its holder exits, however it exits
(SIGKILL included), so a crash never locks a store out. Readers take no lock.

Within one thread the root lock is re-entrant (a job that holds it registers, repairs and
merges without taking it again); the lock of a store directory being written is not. The
lock keeps nothing about the store: what a holder needs, it reads from the store's files.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from ..errors import ConfigError, StoreLockedError, StoreWriteError

__all__ = ["LOCK_FILE", "check_timeout", "writer_lock"]

LOCK_FILE = ".lock"

_GUARD = threading.Lock()
# real path -> [thread id, open lock file, depth]
_HELD: dict[str, list] = {}


def _key(path: Path) -> str:
    return os.path.realpath(path)


def check_timeout(timeout: float) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise ConfigError(f"lock timeout: expected seconds >= 0, got {timeout!r}")
    if not 0 <= timeout <= 7 * 86400:
        raise ConfigError(f"lock timeout: expected 0..=604800 seconds, got {timeout!r}")
    return float(timeout)


@contextlib.contextmanager
def writer_lock(
    path: str | os.PathLike, *, timeout: float = 0.0, reentrant: bool = False
) -> Iterator[None]:
    """Hold the writer lock of the store directory ``path`` (created if needed) for the
    ``with`` block. Another holder: wait up to
    ``timeout`` seconds, then :class:`~ilias_rerank.errors.StoreLockedError`."""
    timeout = check_timeout(timeout)
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreWriteError(f"{path}: cannot create the store ({exc})") from exc
    key = _key(path)
    me = threading.get_ident()
    with _GUARD:
        held = _HELD.get(key)
        if held is not None and reentrant and held[0] == me:
            held[2] += 1
            nested = True
        else:
            nested = False
    if nested:
        try:
            yield
        finally:
            with _GUARD:
                held[2] -= 1
        return
    try:
        fh = open(path / LOCK_FILE, "a+b")  # noqa: SIM115 (held until the block ends)
    except OSError as exc:
        raise StoreWriteError(f"{path}: cannot open its writer lock ({exc})") from exc
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise StoreWriteError(f"{path}: cannot lock the store ({exc})") from exc
                if time.monotonic() >= deadline:
                    waited = f" after waiting {timeout:g} s" if timeout else ""
                    raise StoreLockedError(
                        f"{path}: another writer holds the store's lock{waited} (a job, a "
                        "StoreWriter, store repair or store merge); expected no other writer. "
                        "Wait for it to finish, or pass a lock timeout to wait"
                    ) from None
                time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        with _GUARD:
            _HELD[key] = [me, fh, 1]
        try:
            yield
        finally:
            with _GUARD:
                _HELD.pop(key, None)
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    finally:
        fh.close()
