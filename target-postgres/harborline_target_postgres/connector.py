"""PostgreSQL connections, introspection and DDL.

Decisions about names and types come from the shared rule engine (`harborline_singer_shared.rules`); this module only
speaks PostgreSQL: it reads back what a table has, turns a `TablePlan` into quoted DDL, and opens connections with the
configured TLS settings. psycopg2 is used directly (no SQLAlchemy) because the load path is COPY.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import stat
import tempfile
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

import psycopg2
import psycopg2.extensions

from harborline_singer_shared.rules import (
    ColumnPlan,
    ColumnType,
    DialectRules,
    ExistingColumn,
    Kind,
    TablePlan,
    decode_source,
    encode_source,
    is_null_only,
)

MAX_IDENTIFIER_BYTES = 63

_PG_TYPES: dict[Kind, str] = {
    Kind.BOOLEAN: "boolean",
    Kind.INTEGER: "bigint",
    Kind.NUMBER: "numeric",
    Kind.DATE: "date",
    Kind.TIME: "time",
    Kind.TIMESTAMP: "timestamptz",
    Kind.STRING: "text",
    Kind.JSON: "jsonb",
    Kind.NULL: "text",  # only NULLs so far; the column comment keeps the kind (see rules.plan.encode_source)
}

_FROM_PG: dict[str, Kind] = {
    "boolean": Kind.BOOLEAN,
    "smallint": Kind.INTEGER,
    "integer": Kind.INTEGER,
    "bigint": Kind.INTEGER,
    "numeric": Kind.NUMBER,
    "double precision": Kind.NUMBER,
    "real": Kind.NUMBER,
    "date": Kind.DATE,
    "time without time zone": Kind.TIME,
    "timestamp with time zone": Kind.TIMESTAMP,
    "timestamp without time zone": Kind.TIMESTAMP,
    "text": Kind.STRING,
    "character varying": Kind.STRING,
    "character": Kind.STRING,
    "jsonb": Kind.JSON,
    "json": Kind.JSON,
}


def _normalize_type(column_type: ColumnType) -> ColumnType:
    """PostgreSQL stores every string as text, so string lengths play no part in widening."""
    return ColumnType(column_type.kind)


RULES = DialectRules(max_identifier_bytes=MAX_IDENTIFIER_BYTES, normalize_type=_normalize_type)


def quote(identifier: str) -> str:
    """Quote an identifier for PostgreSQL: always, so reserved words and odd characters are safe."""
    if "\x00" in identifier:
        raise ValueError("identifiers cannot contain NUL")
    return '"' + identifier.replace('"', '""') + '"'


def qualified(schema: str, table: str) -> str:
    """`"schema"."table"`."""
    return f"{quote(schema)}.{quote(table)}"


def pg_type(column_type: ColumnType) -> str:
    """The PostgreSQL type for a logical type."""
    return _PG_TYPES[column_type.kind]


def literal(value: str) -> str:
    """A SQL string literal (for comments, which cannot take bind parameters in DDL)."""
    return "'" + value.replace("'", "''") + "'"


class ConnectionSettingsError(ValueError):
    """The connection settings cannot work (no host, an unparsable `sqlalchemy_url`): one line naming the setting."""


class ConnectionCheckError(ConnectionError):
    """The server could not be reached or refused the login: one line naming the settings to check."""


class PemFiles:
    """Certificates given as PEM text, written to private temporary files once per run and removed at exit."""

    def __init__(self) -> None:
        self._paths: dict[str, str] = {}
        self._lock = threading.Lock()
        atexit.register(self.remove)

    def path_for(self, value: str | None, label: str) -> str | None:
        """The path libpq reads: `value` itself when it is a path, else the temporary file holding the PEM text."""
        if not value:
            return None
        if "-----BEGIN" not in value:
            return value
        with self._lock:
            if label not in self._paths:
                fd, path = tempfile.mkstemp(prefix=f"target-postgres-{label}-", suffix=".pem")
                with os.fdopen(fd, "w") as fh:
                    fh.write(value)
                Path(path).chmod(stat.S_IRUSR | stat.S_IWUSR)
                self._paths[label] = path
            return self._paths[label]

    def remove(self) -> None:
        """Delete the files (at the end of the run; also registered with atexit)."""
        with self._lock:
            paths, self._paths = list(self._paths.values()), {}
        for path in paths:
            with contextlib.suppress(OSError):
                Path(path).unlink()


def _split_url(url: str) -> tuple[str, str, str, str]:
    """(user info, host part, path, query) of a `postgresql://` URL whose password may hold raw `/ # ? @ :`.

    The user info ends at the last `@` before the query string (which starts at the first `?` after the first `@`):
    a password need not be percent-encoded, and no part of it ever lands in the host or database name.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme.lower().startswith("postgres"):
        msg = "sqlalchemy_url must look like postgresql://user:password@host:port/database"
        raise ConnectionSettingsError(msg)
    first_at = rest.find("@")
    query = ""
    if first_at >= 0:
        q = rest.find("?", first_at)
        if q >= 0:
            rest, query = rest[:q], rest[q + 1 :]
        userinfo, _, location = rest.rpartition("@")
    else:
        location, _, query = rest.partition("?")
        userinfo = ""
    host, _, path = location.partition("/")
    return userinfo, host, path, query


def _url_kwargs(url: str) -> dict[str, Any]:
    """psycopg2.connect() arguments from a `postgresql://` URL; its query parameters go to libpq as they are."""
    userinfo, hostport, path, query = _split_url(url)
    user, has_password, password = userinfo.partition(":")
    kwargs: dict[str, Any] = {
        "user": unquote(user) or None,
        "password": unquote(password) if has_password else None,
        "dbname": unquote(path) or None,
    }
    if hostport.startswith("["):  # [IPv6]:port
        host, _, port = hostport[1:].partition("]")
        port = port.lstrip(":")
    else:
        host, _, port = hostport.rpartition(":") if hostport.count(":") == 1 else (hostport, "", "")
    kwargs["host"] = unquote(host) or None
    if port:
        if not port.isdigit():
            msg = "sqlalchemy_url: the port after the host is not a number"
            raise ConnectionSettingsError(msg)
        kwargs["port"] = int(port)
    # sslmode, sslrootcert, connect_timeout, options, ...: libpq knows them.
    kwargs.update(parse_qsl(query, keep_blank_values=True))
    return kwargs


#: Seconds libpq waits for a server that does not answer, unless `connect_timeout` is given in sqlalchemy_url.
CONNECT_TIMEOUT = 10


def connection_kwargs(config: Mapping[str, Any], pem: PemFiles | None = None) -> dict[str, Any]:
    """psycopg2.connect() arguments from the target's settings (a DSN URL wins over the separate fields).

    A configuration without a host is refused (libpq would silently try a local Unix socket): give `host` (a path
    starting with `/` names a socket directory, which is how a socket is asked for).
    """
    url = config.get("sqlalchemy_url")
    kwargs: dict[str, Any]
    if url:
        kwargs = _url_kwargs(str(url))
        if not kwargs.get("host"):
            msg = (
                "sqlalchemy_url has no host: give one (postgresql://user:password@HOST:port/database), or "
                "?host=/path/to/socket-directory for a Unix socket"
            )
            raise ConnectionSettingsError(msg)
    else:
        if not config.get("host"):
            msg = (
                "host is not set: give the PostgreSQL server's host name or address (or a Unix socket directory, "
                "a path starting with /), or sqlalchemy_url"
            )
            raise ConnectionSettingsError(msg)
        kwargs = {
            "host": config.get("host"),
            "port": config.get("port"),
            "user": config.get("user"),
            "password": config.get("password"),
            "dbname": config.get("database"),
        }
    pem = pem or PemFiles()
    if config.get("ssl_enable") or config.get("ssl_mode") not in (None, "", "prefer"):
        kwargs["sslmode"] = config.get("ssl_mode") or "verify-full"
    if root := pem.path_for(config.get("ssl_certificate_authority"), "ca"):
        kwargs["sslrootcert"] = root
    if cert := pem.path_for(config.get("ssl_client_certificate"), "cert"):
        kwargs["sslcert"] = cert
    if key := pem.path_for(config.get("ssl_client_private_key"), "key"):
        kwargs["sslkey"] = key
    kwargs.setdefault("application_name", "target-postgres")
    kwargs.setdefault("connect_timeout", CONNECT_TIMEOUT)
    return {k: v for k, v in kwargs.items() if v not in (None, "")}


class _Connection(psycopg2.extensions.connection):  # type: ignore[misc]
    """A psycopg2 connection that can carry the pool's notes (which staging tables it has)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hl_prepared: dict[str, int] = {}


def open_connection(kwargs: Mapping[str, Any]) -> psycopg2.extensions.connection:
    """A new connection: UTC session time zone (timestamptz text is unambiguous), and memory for one batch.

    A batch's staging rows and its DISTINCT ON sort fit in memory with these session settings (the defaults, 8 MB
    of temp buffers and 4 MB of work_mem, would spill a 100,000-row batch to disk). Durability settings are left
    alone: a commit must be durable before the STATE after it is written.
    """
    conn = psycopg2.connect(connection_factory=_Connection, **kwargs)
    with conn.cursor() as cur:
        cur.execute("SET TIME ZONE 'UTC'")
        cur.execute("SET temp_buffers = '64MB'")
        cur.execute("SET work_mem = '64MB'")
    conn.commit()
    return conn


def connect(config: Mapping[str, Any]) -> psycopg2.extensions.connection:
    """A new connection from the settings (PEM text is written to a temporary file: prefer a `ConnectionPool`)."""
    return open_connection(connection_kwargs(config))


#: (what the server or libpq said, lower case) -> the settings to check; the first match wins.
_CHECKS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("password authentication failed", "no password supplied", "password is required"), ("user", "password")),
    (("pg_hba.conf",), ("host", "user", "database", "ssl_mode")),
    (("invalid connection option", "invalid sslmode", "invalid integer value", "invalid value for parameter"),
     ("sqlalchemy_url",)),
    (("could not translate host name", "name or service not known", "nodename nor servname"), ("host",)),
    (("ssl", "certificate", "tls"), ("ssl_mode", "ssl_certificate_authority", "ssl_client_certificate",
                                     "ssl_client_private_key")),
    (("connection refused", "timeout expired", "no route to host", "network is unreachable", "could not connect",
      "no such file or directory"), ("host", "port")),
)  # fmt: skip


def _settings_to_check(reason: str) -> tuple[str, ...]:
    lower = reason.lower()
    if "does not exist" in lower and lower.startswith("role "):
        return ("user",)
    if "does not exist" in lower and lower.startswith("database "):
        return ("database",)
    for needles, names in _CHECKS:
        if any(n in lower for n in needles):
            return names
    return ("host", "port", "user", "password", "database")


def describe_connect_error(exc: BaseException, kwargs: Mapping[str, Any], *, from_url: bool) -> str:
    """One line for a failed connection: where to, what the server said, which settings to check; no password."""
    text = " ".join(str(exc).split())
    reasons = re.findall(r"failed: (?:FATAL:\s*)?(.+?)(?= connection to server (?:at|on) |$)", text) or [text]
    reason = "; ".join(dict.fromkeys(r.strip().rstrip(".") for r in reasons if r.strip())) or type(exc).__name__
    settings = _settings_to_check(reason)
    if from_url and settings != ("sqlalchemy_url",) and not all(s.startswith("ssl") for s in settings):
        check = "check the " + ", ".join(settings) + " in `sqlalchemy_url`"
    else:
        check = "check " + " and ".join(f"`{s}`" for s in settings)
    where = (
        f"host {kwargs.get('host')!r}, port {kwargs.get('port', 5432)}, database {kwargs.get('dbname')!r}, "
        f"user {kwargs.get('user')!r}"
    )
    return redact(f"cannot connect to PostgreSQL ({where}): {reason}; {check}", kwargs.get("password"))


def redact(text: str, password: str | None) -> str:
    """`text` without the password, nor any piece of it between URL delimiters (a misparsed URL may echo one)."""
    if not password:
        return text
    pieces = {password, *(p for p in re.split(r"[/#?@:]", password) if len(p) >= 3)}
    for piece in sorted(pieces, key=len, reverse=True):
        text = text.replace(piece, "***")
    return text


def read_columns(cur: psycopg2.extensions.cursor, schema: str, table: str) -> list[ExistingColumn] | None:
    """The table's columns with their logical types and recorded sources, or None when it does not exist."""
    cur.execute(
        """
        SELECT a.attname, format_type(a.atttypid, NULL), col_description(a.attrelid, a.attnum)
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped
          AND c.relkind IN ('r', 'p')
        ORDER BY a.attnum
        """,
        (schema, table),
    )
    rows = cur.fetchall()
    if not rows:
        cur.execute(
            "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = %s",
            (schema, table),
        )
        if cur.fetchone() is None:
            return None
    return [
        ExistingColumn(
            name,
            ColumnType(Kind.NULL if is_null_only(comment) else _FROM_PG.get(type_name, Kind.STRING)),
            decode_source(comment),
        )
        for name, type_name, comment in rows
    ]


def read_primary_key(cur: psycopg2.extensions.cursor, schema: str, table: str) -> list[str]:
    """Primary key column names of a table, in key order."""
    cur.execute(
        """
        SELECT a.attname
        FROM pg_index i
        JOIN pg_class c ON c.oid = i.indrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON true
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
        WHERE n.nspname = %s AND c.relname = %s AND i.indisprimary
        ORDER BY k.ord
        """,
        (schema, table),
    )
    return [r[0] for r in cur.fetchall()]


def read_table_owners(cur: psycopg2.extensions.cursor, schema: str) -> dict[str, str]:
    """Table name -> stream name it holds (from table comments), for collision-free table naming."""
    cur.execute(
        """
        SELECT c.relname, obj_description(c.oid, 'pg_class')
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = %s AND c.relkind IN ('r', 'p')
        """,
        (schema,),
    )
    owners = {}
    for name, comment in cur.fetchall():
        source = decode_source(comment)
        owners[name] = source[0] if source and len(source) == 1 else name
    return owners


def _column_ddl(col: ColumnPlan, timestamp_column: str) -> str:
    ddl = f"{quote(col.name)} {pg_type(col.type)}"
    if col.is_key:
        ddl += " NOT NULL"
    if col.source is None and col.name == timestamp_column:
        ddl += " NOT NULL DEFAULT now()"
    return ddl


def plan_ddl(
    plan: TablePlan, schema: str, table: str, stream: str, timestamp_column: str, *, primary_key: bool = True
) -> list[str]:
    """DDL statements that bring the table to the plan (run them in one transaction)."""
    target = qualified(schema, table)
    stmts: list[str] = []
    comments: Iterable[ColumnPlan]
    if plan.create:
        cols = [_column_ddl(c, timestamp_column) for c in plan.columns]
        if plan.key_columns and primary_key:
            cols.append("PRIMARY KEY (" + ", ".join(quote(k) for k in plan.key_columns) + ")")
        stmts.append(f"CREATE TABLE {target} (\n  " + ",\n  ".join(cols) + "\n)")
        stmts.append(f"COMMENT ON TABLE {target} IS {literal(_table_comment(stream))}")
        comments = plan.columns
    else:
        stmts.extend(f"ALTER TABLE {target} ADD COLUMN {_column_ddl(col, timestamp_column)}" for col in plan.add)
        stmts.extend(
            f"ALTER TABLE {target} ALTER COLUMN {quote(c.name)} TYPE {pg_type(c.type)} USING {quote(c.name)}::"
            f"{pg_type(c.type)}"
            for c, _old in plan.widen
        )
        comments = [*plan.add, *(c for c, old in plan.widen if old.kind is Kind.NULL)]  # no longer NULL-only
    stmts.extend(f"COMMENT ON COLUMN {target}.{quote(c.name)} IS {literal(c.comment)}" for c in comments if c.comment)
    return stmts


def _table_comment(stream: str) -> str:
    return encode_source([stream])
