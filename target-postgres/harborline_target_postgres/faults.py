"""Which PostgreSQL errors are the connection's or the server's (redo the batch) and which are the batch's own.

Also how a server error is told in one line: its primary message, with quoted parts (values, names) masked.
"""

from __future__ import annotations

import contextlib
import re

import psycopg2
import psycopg2.extensions


def rollback(conn: psycopg2.extensions.connection | None) -> None:
    """Roll back; a connection that is gone has nothing left to roll back (the server did it)."""
    if conn is not None and not conn.closed:
        with contextlib.suppress(psycopg2.Error):
            conn.rollback()


def close_quietly(conn: psycopg2.extensions.connection | None) -> None:
    """Roll back and close, whatever state the connection is in (it may be gone already)."""
    if conn is not None and not conn.closed:
        rollback(conn)
        with contextlib.suppress(psycopg2.Error):
            conn.close()


#: SQLSTATEs after which the same batch, sent again on a new connection, can succeed: the server shut down or is
#: restarting (57P01-57P03), a serialization failure or deadlock (40001, 40P01), a connection exception (08...).
TRANSIENT_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "40001", "40P01"})


def is_transient(exc: BaseException, conn: psycopg2.extensions.connection | None) -> bool:
    """A fault of the connection or server, not of the batch: redoing it on a new connection may succeed."""
    if not isinstance(exc, psycopg2.Error):
        return False
    code = exc.pgcode or ""
    if code in TRANSIENT_SQLSTATES or code.startswith("08"):
        return True
    if conn is None:  # opening a connection: no server answer (refused, unreachable); not a login or SQL error
        return isinstance(exc, (psycopg2.OperationalError, psycopg2.InterfaceError)) and not code
    # Connection lost (terminated backend, server crash, network): psycopg2 marks the connection closed.
    return isinstance(exc, (psycopg2.OperationalError, psycopg2.InterfaceError)) and bool(conn.closed)


def reason(exc: BaseException | None) -> str:
    """The first line of a server or connection error, quoted parts (values, names) masked."""
    if exc is None:
        return "unknown error"
    diag = getattr(exc, "diag", None)
    text = str(exc).strip()
    primary = (diag.message_primary if diag is not None else None) or (
        text.splitlines()[0] if text else type(exc).__name__
    )
    return QUOTED.sub('"…"', primary)


#: Quoted parts of a server message (values, names): never logged.
QUOTED = re.compile(r'"[^"]*"')
