"""The run's connections to PostgreSQL: at most `max_connections` at once, however many streams there are.

Who holds a connection, and for how long:

* a stream's table setup (DDL), for the length of it;
* a handed-off batch (finish COPY, merge, commit), until it has committed;
* an open batch that streams its COPY while the input is read (so the server works while Python parses). This is an
  optimisation only: at most `max_connections - 1` open batches stream at once, and only when a connection is free
  right away. The other open batches keep their COPY data (which every batch keeps until its commit anyway) and
  send it when they are handed off.

Waiting for a connection therefore never waits on the input: at least one connection is always free or held by a
setup or a commit, which end on their own. A connection lost to a fault is replaced in place (same slot).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from typing import Any

import psycopg2
import psycopg2.extensions

from harborline_target_postgres import connector

#: Default of the `max_connections` setting.
DEFAULT_MAX_CONNECTIONS = 4


class ConnectionPool:
    """At most `size` connections, shared by every stream of the run; idle ones are reused."""

    def __init__(self, config: Mapping[str, Any], size: int = DEFAULT_MAX_CONNECTIONS) -> None:
        self.size = max(1, int(size))
        self.pem = connector.PemFiles()
        #: Computed once: PEM text is written to one temporary file per run (removed by `close`).
        self.kwargs = connector.connection_kwargs(config, self.pem)
        self.from_url = bool(config.get("sqlalchemy_url"))
        self._cond = threading.Condition()
        self._held = 0  # slots in use (a connection open or being opened for each)
        self._streaming = 0  # of which: open batches streaming their COPY
        self._idle: list[psycopg2.extensions.connection] = []
        #: The most slots ever in use at once (for tests and the end-of-run log).
        self.peak = 0

    # -- opening -----------------------------------------------------------------------------------------------

    def open(self) -> psycopg2.extensions.connection:
        """A new connection for a slot the caller holds (also: a replacement after a fault)."""
        return connector.open_connection(self.kwargs)

    def check(self) -> None:
        """Connect once, at start-up: wrong settings fail here, in seconds, with one line naming what to check."""
        conn = self.acquire()
        try:
            if conn is None:
                conn = self.open()
        except psycopg2.Error as exc:
            self.release(None)
            raise connector.ConnectionCheckError(self.describe(exc)) from None
        self.release(conn)

    def describe(self, exc: BaseException) -> str:
        """One line for a failed connection (no password in it)."""
        return connector.describe_connect_error(exc, self.kwargs, from_url=self.from_url)

    # -- slots ---------------------------------------------------------------------------------------------------

    def _take(self) -> psycopg2.extensions.connection | None:
        self._held += 1
        self.peak = max(self.peak, self._held)
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed:
                return conn
        return None

    def acquire(self) -> psycopg2.extensions.connection | None:
        """Take a slot, waiting for one; returns an idle connection, or None (then the caller opens one)."""
        with self._cond:
            while self._held >= self.size:
                self._cond.wait()
            return self._take()

    def try_acquire(self) -> tuple[bool, psycopg2.extensions.connection | None]:
        """Take a slot if one is free right away: (taken, idle connection or None)."""
        with self._cond:
            if self._held >= self.size:
                return False, None
            return True, self._take()

    def try_acquire_streaming(self) -> tuple[bool, psycopg2.extensions.connection | None]:
        """A slot for an open batch to stream into, only if one is free now and one stays for setups and commits."""
        with self._cond:
            if self._held >= self.size or self._streaming >= self.size - 1:
                return False, None
            self._streaming += 1
            return True, self._take()

    def streaming_ended(self) -> None:
        """An open batch was handed off: its slot now belongs to the commit."""
        with self._cond:
            self._streaming -= 1

    def release(self, conn: psycopg2.extensions.connection | None, *, streaming: bool = False) -> None:
        """Give a slot back; a healthy connection (rolled back) is kept for the next user, a broken one closed."""
        if conn is not None and not conn.closed:
            with contextlib.suppress(psycopg2.Error):
                conn.rollback()
            if conn.closed or conn.get_transaction_status() != psycopg2.extensions.TRANSACTION_STATUS_IDLE:
                with contextlib.suppress(psycopg2.Error):
                    conn.close()
        with self._cond:
            if streaming:
                self._streaming -= 1
            self._held -= 1
            if conn is not None and not conn.closed:
                self._idle.append(conn)
            self._cond.notify()

    def close(self) -> None:
        """Close the idle connections and remove the PEM files (end of the run, or after a failure)."""
        with self._cond:
            idle, self._idle = self._idle, []
        for conn in idle:
            with contextlib.suppress(psycopg2.Error):
                conn.close()
        self.pem.remove()
