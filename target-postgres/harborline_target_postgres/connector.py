"""PostgreSQL connections, introspection and DDL.

Decisions about names and types come from the shared rule engine (`harborline_singer_shared.rules`); this module only
speaks PostgreSQL: it reads back what a table has, turns a `TablePlan` into quoted DDL, and opens connections with the
configured TLS settings. psycopg2 is used directly (no SQLAlchemy) because the load path is COPY.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

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


def _materialize_pem(value: str | None, label: str) -> str | None:
    """Certificates may be given inline (PEM text, as in a .env) or as a path; libpq wants a path."""
    if not value:
        return None
    if "-----BEGIN" not in value:
        return value
    fd, path = tempfile.mkstemp(prefix=f"target-postgres-{label}-", suffix=".pem")
    with os.fdopen(fd, "w") as fh:
        fh.write(value)
    Path(path).chmod(stat.S_IRUSR | stat.S_IWUSR)
    return path


def connection_kwargs(config: Mapping[str, Any]) -> dict[str, Any]:
    """psycopg2.connect() arguments from the target's settings (a DSN URL wins over the separate fields)."""
    url = config.get("sqlalchemy_url")
    kwargs: dict[str, Any]
    if url:
        parsed = urlparse(str(url))
        kwargs = {
            "host": parsed.hostname,
            "port": parsed.port,
            "user": unquote(parsed.username) if parsed.username else None,
            "password": unquote(parsed.password) if parsed.password else None,
            "dbname": parsed.path.lstrip("/") or None,
        }
    else:
        kwargs = {
            "host": config.get("host"),
            "port": config.get("port"),
            "user": config.get("user"),
            "password": config.get("password"),
            "dbname": config.get("database"),
        }
    if config.get("ssl_enable") or config.get("ssl_mode") not in (None, "", "prefer"):
        kwargs["sslmode"] = config.get("ssl_mode") or "verify-full"
    if root := _materialize_pem(config.get("ssl_certificate_authority"), "ca"):
        kwargs["sslrootcert"] = root
    if cert := _materialize_pem(config.get("ssl_client_certificate"), "cert"):
        kwargs["sslcert"] = cert
    if key := _materialize_pem(config.get("ssl_client_private_key"), "key"):
        kwargs["sslkey"] = key
    kwargs["application_name"] = "target-postgres"
    return {k: v for k, v in kwargs.items() if v not in (None, "")}


def connect(config: Mapping[str, Any]) -> psycopg2.extensions.connection:
    """A new connection: UTC session time zone (timestamptz text is unambiguous), and memory for one batch.

    A batch's staging rows and its DISTINCT ON sort fit in memory with these session settings (the defaults, 8 MB
    of temp buffers and 4 MB of work_mem, would spill a 100,000-row batch to disk). Durability settings are left
    alone: a commit must be durable before the STATE after it is written.
    """
    conn = psycopg2.connect(**connection_kwargs(config))
    with conn.cursor() as cur:
        cur.execute("SET TIME ZONE 'UTC'")
        cur.execute("SET temp_buffers = '64MB'")
        cur.execute("SET work_mem = '64MB'")
    conn.commit()
    return conn


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
        ExistingColumn(name, ColumnType(_FROM_PG.get(type_name, Kind.STRING)), decode_source(comment))
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
        comments = plan.add
    stmts.extend(f"COMMENT ON COLUMN {target}.{quote(c.name)} IS {literal(c.comment)}" for c in comments if c.comment)
    return stmts


def _table_comment(stream: str) -> str:
    return encode_source([stream])
