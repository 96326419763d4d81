"""A deadline on a whole HTTP attempt, the wait for the response headers included.

`requests` applies its read timeout to each socket read, so a server that sends its status line and headers a byte
at a time, each byte just inside the read timeout, holds a request for ever. The body is bounded by
`retry._read_body`; the headers are read inside `Session.send`, where no check of ours runs. So a watchdog timer
shuts down the attempt's sockets when its deadline passes: the blocked read fails at once, and the attempt is
reported as too slow (and retried like any timeout).

The sockets are found through the session's adapters: `DeadlineAdapter` gives its pool manager connection pools
that record each connection they hand out to the thread that asked, for the duration of a `watch()` block.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_local = threading.local()


class _RecordingPool:
    """Connection pool mixin: the connections handed out inside a `watch()` block are noted for its watchdog."""

    def _get_conn(self, timeout: float | None = None) -> Any:
        conn = super()._get_conn(timeout)  # type: ignore[misc]
        taken: list[Any] | None = getattr(_local, "taken", None)
        if taken is not None:
            taken.append(conn)
        return conn


class _RecordingHTTPConnectionPool(_RecordingPool, HTTPConnectionPool):
    pass


class _RecordingHTTPSConnectionPool(_RecordingPool, HTTPSConnectionPool):
    pass


class DeadlineAdapter(HTTPAdapter):
    """An HTTPAdapter whose connections a `watch()` watchdog can cut (otherwise a plain HTTPAdapter)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        """The stock pool manager, with recording pools."""
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _RecordingHTTPConnectionPool,
            "https": _RecordingHTTPSConnectionPool,
        }


def use_deadline_adapters(session: requests.Session) -> None:
    """Mount `DeadlineAdapter` for http and https where the session still has requests' plain adapter.

    Any other adapter (a test's mock transport, a caller's own) is left alone: its requests are then bounded by
    the per-read timeout and the body deadline only.
    """
    for prefix in ("https://", "http://"):
        adapter = session.adapters.get(prefix)
        if type(adapter) is HTTPAdapter:
            session.mount(prefix, DeadlineAdapter(max_retries=adapter.max_retries))


class Watch:
    """What a `watch()` block learns: whether its deadline cut the attempt's connections."""

    def __init__(self) -> None:
        self.fired = threading.Event()
        self.taken: list[Any] = []

    def cut(self) -> None:
        """Runs in the timer thread at the deadline: shut the attempt's sockets (the blocked read then fails)."""
        self.fired.set()
        for conn in list(self.taken):
            sock = getattr(conn, "sock", None)
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def watch(seconds: float) -> Iterator[Watch]:
    """Cut the connections this thread takes inside the block if the block still runs after `seconds`."""
    state = Watch()
    outer = getattr(_local, "taken", None)
    _local.taken = state.taken
    timer = threading.Timer(seconds, state.cut)
    timer.daemon = True
    timer.start()
    try:
        yield state
    finally:
        timer.cancel()
        _local.taken = outer
