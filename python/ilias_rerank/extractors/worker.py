"""Isolated extraction processes (``isolate=True`` of :mod:`~ilias_rerank.extractors.pool`).

Each worker is started as ``python -m ilias_rerank.extractors.worker <parent pid>``: a
fresh interpreter that imports this package and nothing of the caller's (the caller's
script is never run again, whatever it looks like). It dies with its parent: Linux's
``PR_SET_PDEATHSIG`` (SIGKILL when the parent goes, even by SIGKILL), a watch of the
parent's pid elsewhere, and the end of its input (the parent closed the pipe).

The parent and a worker exchange length-prefixed pickles over the worker's stdin and
stdout (the worker's own prints go to stderr): first the settings (the parent's
``sys.path``, the extractor's ``spec``, the pickled ``read`` function, the thread count),
answered ``("ready",)`` or ``("error", why)``; then one ``(index, item)`` at a time,
answered with the image's outcome under the pool's failure rule. A worker that stops
mid-image (a decoder crash, an out-of-memory kill) is seen as the end of its output: the
image it held is run again in a fresh worker, and fails when it is in flight at a
second death.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import selectors
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import ConfigError, IliasRerankError

__all__ = ["Processes", "die_with_parent"]

_HEADER = struct.Struct("<Q")


def _send(stream: BinaryIO, message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _recv(stream: BinaryIO) -> Any:
    """The next message, or ``None`` at the end of the stream (the other side is gone)."""
    head = stream.read(_HEADER.size)
    if len(head) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(head)
    data = stream.read(size)
    if len(data) < size:
        return None
    return pickle.loads(data)


def die_with_parent(parent: int) -> None:
    """Make this process end when ``parent`` does: ``PR_SET_PDEATHSIG`` on Linux, and a
    daemon thread watching the parent's pid (any platform)."""
    import signal

    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent went before the signal was armed
        os._exit(1)

    def watch() -> None:
        import time

        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


class _Worker:
    """One worker process: its pipes and the image it holds."""

    def __init__(self, hello: bytes) -> None:
        package = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [package, *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])]
        )
        env.setdefault("OMP_NUM_THREADS", "1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ilias_rerank.extractors.worker", str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            close_fds=True,
        )
        self.holding: int | None = None
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout
        try:
            self.stdin.write(hello)
            self.stdin.flush()
        except OSError:
            pass  # seen as a failed start by ready()

    def ready(self) -> None:
        """Wait for the worker's answer to the settings (workers start side by side)."""
        answer = _recv(self.stdout)
        if answer is None or answer[0] != "ready":
            self.stop()
            why = answer[1] if answer else f"it exited with status {self.proc.returncode}"
            raise IliasRerankError(f"an isolated extraction worker could not start: {why}")

    def stop(self) -> None:
        for stream in (self.stdin, self.stdout):
            with contextlib.suppress(OSError):
                stream.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Processes:
    """The isolated executor of the pool's scheduler: ``submit(index)`` hands an image to
    an idle worker, ``wait()`` returns what finished (``None``: run it again)."""

    def __init__(
        self, extractor, items: Sequence, read: Callable | None, workers: int, on_start
    ) -> None:
        if not extractor.spec:
            raise ConfigError(
                "isolate=True: expected an extractor made by make_extractor (its settings "
                "rebuild it in a worker process)"
            )
        self.extractor, self.items, self.read, self.on_start = extractor, items, read, on_start
        self.count = workers
        self.workers: list[_Worker] = []
        self.deaths: dict[int, list[int]] = {}
        self.selector = selectors.DefaultSelector()

    def start(self, threads: int) -> None:
        try:
            read = pickle.dumps(self.read)
        except Exception as exc:
            raise ConfigError(
                "isolate=True: the image source must be picklable and importable (a "
                f"module-level function or class, not a lambda or one of __main__): {exc}"
            ) from None
        hello = {
            "sys_path": [p for p in sys.path if p],
            "spec": self.extractor.spec,
            "read": read,
            "threads": threads,
        }
        data = pickle.dumps(hello, protocol=pickle.HIGHEST_PROTOCOL)
        self.hello = _HEADER.pack(len(data)) + data
        started = [_Worker(self.hello) for _ in range(self.count)]
        try:
            for worker in started:
                worker.ready()
        except BaseException:
            for worker in started:
                worker.stop()
            raise
        for worker in started:
            self._register(worker)

    def _add(self) -> _Worker:
        worker = _Worker(self.hello)
        worker.ready()
        return self._register(worker)

    def _register(self, worker: _Worker) -> _Worker:
        self.workers.append(worker)
        self.selector.register(worker.stdout, selectors.EVENT_READ, worker)
        return worker

    def _remove(self, worker: _Worker) -> None:
        self.selector.unregister(worker.stdout)
        self.workers.remove(worker)
        worker.stop()

    def submit(self, index: int) -> None:
        worker = next(w for w in self.workers if w.holding is None)
        worker.holding = index
        if self.on_start is not None:
            self.on_start(index)
        item = self.items[index]
        if isinstance(item, (memoryview, bytearray)):
            item = bytes(item)
        with contextlib.suppress(OSError):  # it died: its output ends, and wait() sees it
            _send(worker.stdin, (index, item))

    def wait(self) -> list[tuple[int, Any]]:
        finished: list[tuple[int, Any]] = []
        while not finished:
            for key, _ in self.selector.select():
                worker: _Worker = key.data
                message = _recv(worker.stdout)
                index = worker.holding
                worker.holding = None
                if message is not None and message[0] == "raise":
                    raise message[1]
                if message is not None:
                    finished.append((index, message))
                    continue
                self._remove(worker)  # it died (with or without an image)
                self._add()
                if index is None:
                    continue
                status = worker.proc.returncode
                self.deaths.setdefault(index, []).append(status)
                from .outcome import DEATHS_PER_IMAGE, describe

                if len(self.deaths[index]) < DEATHS_PER_IMAGE:
                    finished.append((index, None))  # once more, in a fresh worker
                    continue
                name = describe(self.items[index], index, self.read)
                how = ", ".join(_status(s) for s in self.deaths[index])
                reason = (
                    f"{name}: killed its worker process {len(self.deaths[index])} times "
                    f"({how}: a crash in the decoder or detector, or out of memory)"
                )
                finished.append((index, (index, None, (name, reason))))
        return finished

    def close(self) -> None:
        for worker in list(self.workers):
            self._remove(worker)
        self.selector.close()


def _status(code: int | None) -> str:
    import signal

    if code is not None and code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit status {code}"


def main() -> int:
    import signal

    die_with_parent(int(sys.argv[1]))
    # Ctrl-C reaches the whole process group: the parent decides (it stops handing out
    # images and closes the pipes), so a worker never dies of it mid-answer.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # the worker's prints go to stderr, never into the answers
    inp = sys.stdin.buffer
    hello = _recv(inp)
    if hello is None:
        return 0
    sys.path.extend(p for p in hello["sys_path"] if p not in sys.path)
    try:
        from . import make_extractor
        from .outcome import extract_one, set_threads

        read = pickle.loads(hello["read"])
        method, backend, args, kwargs = hello["spec"]
        extractor = make_extractor(method, *args, backend=backend, **dict(kwargs))
        set_threads(extractor, hello["threads"])
    except Exception as exc:
        _send(out, ("error", f"{type(exc).__name__}: {exc}"))
        return 1
    _send(out, ("ready",))
    while (message := _recv(inp)) is not None:
        index, item = message
        try:
            _send(out, extract_one(extractor, index, item, read))
        except Exception as exc:
            try:
                _send(out, ("raise", exc))
            except Exception:
                _send(out, ("raise", RuntimeError(f"{type(exc).__name__}: {exc}")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
