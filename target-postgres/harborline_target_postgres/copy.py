"""COPY ... FROM STDIN with psycopg2: fed from the reading thread while the server consumes, memory bounded.

psycopg2's `copy_expert` pulls from a file-like object in the thread that runs it; `CopyStream` runs it in a thread of
its own, fed through a small queue, so rows stream to the server while the input is still being read.
"""

from __future__ import annotations

import contextlib
import queue
import sys
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

import psycopg2
import psycopg2.extensions

if TYPE_CHECKING:
    from types import TracebackType


class _QueueReader:
    """A file-like object psycopg2's copy_expert pulls from; the parser thread pushes bytes into it."""

    def __init__(self, q: queue.Queue[bytes | None]) -> None:
        self._q = q
        self.done = False

    def read(self, size: int = -1) -> bytes:  # noqa: ARG002 - chunks are pre-sized by the producer
        if self.done:
            return b""
        chunk = self._q.get()
        if chunk is None:
            self.done = True
            return b""
        return chunk

    readline = read


_in_copy = threading.local()


def _excepthook_quiet_during_copy() -> None:
    """Keep psycopg2's own report of a COPY whose connection was lost out of the log.

    When the connection dies during `copy_expert`, psycopg2 hands the error to `sys.excepthook` (the SDK's logs it at
    ERROR level, with a traceback) and then raises it: the raised error is the one the sink reports or recovers from.
    """
    hook = sys.excepthook
    if getattr(hook, "harborline_quiet_during_copy", False):
        return

    def excepthook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if not getattr(_in_copy, "active", False):
            hook(kind, exc, tb)

    excepthook.harborline_quiet_during_copy = True  # type: ignore[attr-defined]
    sys.excepthook = excepthook


@contextlib.contextmanager
def copying() -> Iterator[None]:
    """Around a psycopg2 COPY in this thread (see `_excepthook_quiet_during_copy`)."""
    _excepthook_quiet_during_copy()
    _in_copy.active = True
    try:
        yield
    except SystemError as exc:
        # psycopg2 may report a lost connection mid-COPY as "returned a result with an exception set", the real
        # error being its cause: raise that one, so it is recognised (and recovered from, or reported clearly).
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, psycopg2.Error):
            raise cause from None
        raise
    finally:
        _in_copy.active = False


class CopyStream:
    """COPY ... FROM STDIN fed from this thread while the server consumes in another, with a bounded buffer."""

    def __init__(self, conn: psycopg2.extensions.connection, sql: str) -> None:
        self._q: queue.Queue[bytes | None] = queue.Queue(maxsize=8)
        self.error: BaseException | None = None
        self._conn = conn
        self._sql = sql
        self._thread = threading.Thread(target=self._run, name="copy", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        reader = _QueueReader(self._q)
        try:
            with copying(), self._conn.cursor() as cur:
                cur.copy_expert(self._sql, reader, size=1 << 20)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the producer thread
            self.error = exc
            # Unblock the producer until it closes, unless the reader already saw the end (the server refused the
            # data only at the end of the COPY): then nothing more will be put.
            while not reader.done and self._q.get() is not None:
                pass

    def write(self, data: bytes) -> None:
        """Queue one chunk (blocks while the server is behind: memory stays bounded)."""
        if self.error is None:
            self._q.put(data)

    def close(self) -> None:
        """End the COPY and wait for the server; raise what the server said, if anything."""
        self._q.put(None)
        self._thread.join()
        if self.error is not None:
            raise self.error


class ChunkReader:
    """A file-like object over an iterator of COPY data chunks, for psycopg2's copy_expert."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks

    def read(self, size: int = -1) -> bytes:  # noqa: ARG002 - chunks are pre-sized
        """The next chunk (b"" at the end)."""
        return next(self._chunks, b"")

    readline = read


def chunked(rows: list[str]) -> Iterator[bytes]:
    """COPY text rows, encoded 2,048 at a time (never one copy of the whole list)."""
    step = 2048
    for start in range(0, len(rows), step):
        yield "".join(rows[start : start + step]).encode("utf-8")
