"""The run's connections to Snowflake: at most `max_connections` at once, however many streams there are.

Who holds a connection, and for how long: a stream's table setup (DDL), a batch being committed (PUT, COPY,
MERGE, COMMIT), an ACTIVATE_VERSION retirement and the end-of-run overwrite swap, each for the length of it. Nothing
holds one while the input is read, so waiting for a connection never waits on the input. Idle connections are kept
for the next user (a login costs a round trip and a session); a connection that failed is closed, never reused.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import snowflake.connector
from snowflake.connector import errors as sf_errors

from harborline_target_snowflake import connector

#: Default of the `max_connections` setting.
DEFAULT_MAX_CONNECTIONS = 4


@dataclass
class PooledConnection:
    """One connection and what this session already has: the current schema, the sinks' staging tables."""

    conn: Any
    #: The schema made current on this session (`USE SCHEMA`), once it exists.
    schema: str | None = None
    #: Staging table name -> token of the sink that created it (a new SCHEMA needs a new staging table).
    staged: dict[str, int] = field(default_factory=dict)

    @property
    def closed(self) -> bool:
        """Closed by us or found broken."""
        return bool(getattr(self.conn, "is_closed", lambda: False)())


class ConnectionPool:
    """At most `size` connections, shared by every stream of the run."""

    def __init__(self, config: Mapping[str, Any], size: int = DEFAULT_MAX_CONNECTIONS) -> None:
        self.size = max(1, int(size))
        self.config = config
        #: Computed once: the private key is decoded here, and a settings error surfaces before any input.
        self.kwargs = connector.connect_kwargs(config)
        self._cond = threading.Condition()
        self._held = 0
        self._idle: list[PooledConnection] = []
        #: The most connections ever in use at once (for tests and the end-of-run log).
        self.peak = 0

    def open(self) -> PooledConnection:
        """A new connection (login); a refused login is `SnowflakeConnectError`, one line without secrets."""
        try:
            conn = snowflake.connector.connect(**self.kwargs)
        except sf_errors.Error as exc:
            raise connector.SnowflakeConnectError(connector.describe_connect_error(exc, self.config)) from None
        return PooledConnection(conn)

    def acquire(self) -> PooledConnection:
        """A connection for the caller alone, waiting for a free slot; an idle one if there is one, else a new one."""
        with self._cond:
            while self._held >= self.size:
                self._cond.wait()
            idle = self._take()
        return idle if idle is not None else self._open_for_slot()

    def try_acquire(self) -> PooledConnection | None:
        """A connection if a slot is free right away, else None (never waits)."""
        with self._cond:
            if self._held >= self.size:
                return None
            idle = self._take()
        return idle if idle is not None else self._open_for_slot()

    def _take(self) -> PooledConnection | None:
        """Hold a slot (the lock is held); an idle connection for it, if one is left."""
        self._held += 1
        self.peak = max(self.peak, self._held)
        while self._idle:
            candidate = self._idle.pop()
            if not candidate.closed:
                return candidate
        return None

    def _open_for_slot(self) -> PooledConnection:
        try:
            return self.open()
        except BaseException:
            self.release(None)
            raise

    def release(self, pooled: PooledConnection | None, *, broken: bool = False) -> None:
        """Give the slot back; a healthy connection is kept for the next user, a broken one closed."""
        if pooled is not None and (broken or pooled.closed):
            _close_quietly(pooled)
            pooled = None
        with self._cond:
            self._held -= 1
            if pooled is not None:
                self._idle.append(pooled)
            self._cond.notify()

    def close(self) -> None:
        """Close the idle connections (end of the run, or after a failure)."""
        with self._cond:
            idle, self._idle = self._idle, []
        for pooled in idle:
            _close_quietly(pooled)


def _close_quietly(pooled: PooledConnection) -> None:
    """Log out; a connection that is already gone has nothing left to close."""
    with contextlib.suppress(Exception):
        pooled.conn.close()
