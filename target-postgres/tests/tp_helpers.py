"""Helpers for the target-postgres tests: the session's PostgreSQL server, message builders, run and read-back.

The server starts when this module is first imported (not in a fixture) because the SDK's standard target suite needs
its config when the test module is collected. Every test gets its own database, so tests never see each other's
tables.
"""

from __future__ import annotations

import datetime
import io
import json
import os
import subprocess
import sys
import uuid
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from harborline_singer_shared.rules import Kind, is_null_only
from harborline_singer_shared.testing.postgres import PostgresServer
from harborline_singer_shared.testing.warehouse import (  # noqa: F401 - the message builders, for the tests
    Messages,
    WarehouseProbe,
    lines_of,
    record_msg,
    schema_msg,
    state_msg,
)
from harborline_singer_shared.testing.warehouse import RunResult as ProbeRunResult
from harborline_singer_shared.testing.zygote import ForkedProcess, Zygote
from harborline_target_postgres.target import TargetPostgres

SERVER = PostgresServer().start()  # stopped by its atexit hook
_DATABASES: dict[str, str] = {}


def shared_database() -> str:
    """One database for the session's tests; each test works in a schema of its own (cheaper than a database)."""
    if "shared" not in _DATABASES:
        _DATABASES["shared"] = new_database("tp_tests")
    return _DATABASES["shared"]


def new_schema() -> str:
    return f"s_{uuid.uuid4().hex[:12]}"


def new_database(prefix: str = "t") -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    SERVER.create_database(name)
    return name


def base_config(dbname: str, schema: str = "tap_test", **overrides: Any) -> dict[str, Any]:
    kwargs = SERVER.connect_kwargs(dbname)
    config: dict[str, Any] = {
        "host": kwargs["host"],
        "port": kwargs["port"],
        "user": kwargs["user"],
        "database": dbname,
        "default_target_schema": schema,
    }
    if "password" in kwargs:
        config["password"] = kwargs["password"]
    config.update(overrides)
    return {k: v for k, v in config.items() if v is not None}


class RunResult:
    def __init__(self, stdout: str, stderr: str, returncode: int = 0) -> None:
        self.stdout = stdout
        self.stderr = stderr
        self.returncode = returncode

    @property
    def states(self) -> list[Any]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]


class Db:
    """One test's database, with helpers to run the target against it and read tables back."""

    def __init__(self, dbname: str, schema: str, tmp_path: Path) -> None:
        self.dbname = dbname
        self.tmp_path = tmp_path
        self.schema = schema
        self._conn: Any = None

    # -- configuration and runs -------------------------------------------------------------------------------

    def config(self, **overrides: Any) -> dict[str, Any]:
        return base_config(self.dbname, self.schema, **overrides)

    def target(self, **overrides: Any) -> TargetPostgres:
        return TargetPostgres(config=self.config(**overrides), validate_config=True)

    def run(self, messages: list[Any] | str, **overrides: Any) -> RunResult:
        """Run the target in-process to the end of input (raises what the target raises)."""
        text = messages if isinstance(messages, str) else lines_of(messages)
        target = self.target(**overrides)
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            target.listen(io.StringIO(text))
        return RunResult(out.getvalue(), err.getvalue())

    def config_file(self, **overrides: Any) -> Path:
        path = self.tmp_path / f"config-{uuid.uuid4().hex[:6]}.json"
        path.write_text(json.dumps(self.config(**overrides)))
        return path

    def cli(
        self,
        messages: list[Any] | str | bytes,
        *,
        args: list[str] | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 120,
        **overrides: Any,
    ) -> RunResult:
        """Run the real CLI as a subprocess with the input on stdin."""
        if isinstance(messages, bytes):
            data = messages
        else:
            data = (messages if isinstance(messages, str) else lines_of(messages)).encode("utf-8")
        args = ["--config", str(self.config_file(**overrides)), *(args or [])]
        proc = CLI.run(args, input=data, timeout=timeout, env=cli_env(env))
        return RunResult(
            proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace"), proc.returncode
        )

    # -- reading back -------------------------------------------------------------------------------------------

    @property
    def conn(self) -> Any:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg2.connect(**SERVER.connect_kwargs(self.dbname))
            self._conn.autocommit = True
        return self._conn

    def query(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        with self.conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def execute(self, sql: str, params: Any = None) -> None:
        with self.conn.cursor() as cur:
            cur.execute(sql, params)

    def tables(self, schema: str | None = None) -> list[str]:
        return [
            r[0]
            for r in self.query(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s ORDER BY 1",
                (schema or self.schema,),
            )
        ]

    def columns(self, table: str, schema: str | None = None) -> dict[str, str]:
        """Column name -> PostgreSQL type, in table order."""
        rows = self.query(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            (schema or self.schema, table),
        )
        return dict(rows)

    def comments(self, table: str) -> dict[str, str | None]:
        rows = self.query(
            "SELECT a.attname, col_description(a.attrelid, a.attnum) FROM pg_attribute a "
            "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            (f'"{self.schema}"."{table}"',),
        )
        return dict(rows)

    def primary_key(self, table: str) -> list[str]:
        rows = self.query(
            "SELECT a.attname FROM pg_index i JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON true "
            "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
            "WHERE i.indrelid = %s::regclass AND i.indisprimary ORDER BY k.ord",
            (f'"{self.schema}"."{table}"',),
        )
        return [r[0] for r in rows]

    def rows(self, table: str, columns: str = "*", order: str = "1") -> list[tuple[Any, ...]]:
        return self.query(f'SELECT {columns} FROM "{self.schema}"."{table}" ORDER BY {order}')

    def dicts(self, table: str, order: str = "1", *, exclude: tuple[str, ...] = ("__loaded_at",)) -> list[dict]:
        with self.conn.cursor() as cur:
            cur.execute(f'SELECT * FROM "{self.schema}"."{table}" ORDER BY {order}')
            names = [d.name for d in cur.description]
            return [{n: v for n, v in zip(names, row, strict=True) if n not in exclude} for row in cur.fetchall()]

    def count(self, table: str) -> int:
        return int(self.query(f'SELECT count(*) FROM "{self.schema}"."{table}"')[0][0])

    def close(self) -> None:
        if self._conn is not None and not self._conn.closed:
            self._conn.close()


#: `python -m harborline_target_postgres` runs, forked from one interpreter that imported the target once (about
#: 1 s saved per run; see the zygote module). test_docs runs the installed console script.
CLI = Zygote("harborline_target_postgres")


def cli_argv() -> list[str]:
    return [sys.executable, "-m", "harborline_target_postgres"]


def cli_popen(argv: list[str], **kwargs: Any) -> ForkedProcess | subprocess.Popen[bytes]:
    """`subprocess.Popen(argv, **kwargs)` for `argv = [*cli_argv(), ...]` (bytes pipes), forked by `CLI`."""
    prefix = cli_argv()
    assert argv[: len(prefix)] == prefix, argv
    return CLI.popen(argv[len(prefix) :], **kwargs)


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TARGET_POSTGRES_", "MELTANO_"))}
    env["PYTHONWARNINGS"] = "ignore"
    env.update(extra or {})
    return env


# -- the shared warehouse suite's probe (issue 11) ---------------------------------------------------------------------

# Before any test module imports the suite, so its assertions get pytest's messages (conftest imports this module).
pytest.register_assert_rewrite("harborline_singer_shared.testing.warehouse_suite")

#: The PostgreSQL types target-postgres creates, and their logical kinds. Any other type is a failure, not a guess:
#: a kind read back therefore pins the exact PostgreSQL type (NUMBER is `numeric`, never `double precision`).
PG_TYPE_KINDS: dict[str, Kind] = {
    "boolean": Kind.BOOLEAN,
    "bigint": Kind.INTEGER,
    "numeric": Kind.NUMBER,
    "date": Kind.DATE,
    "time without time zone": Kind.TIME,
    "timestamp with time zone": Kind.TIMESTAMP,
    "text": Kind.STRING,
    "jsonb": Kind.JSON,
}


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _plain(value: Any) -> Any:
    """psycopg2's values as the probe promises them: aware datetimes in UTC, everything else as psycopg2 gives it."""
    if isinstance(value, datetime.datetime) and value.tzinfo is not None:
        return value.astimezone(datetime.UTC)
    return value


class PostgresProbe(WarehouseProbe):
    """The shared warehouse suite's view of one test's schema in PostgreSQL (names are stored as the engine gave)."""

    dialect = "postgres"
    max_identifier_bytes = 63

    def __init__(self, db: Db) -> None:
        self.db = db
        self.schema = db.schema

    def _table(self, table: str, schema: str | None) -> str:
        return f"{_quote(schema or self.schema)}.{_quote(table)}"

    def run(self, messages: Messages, **config_overrides: Any) -> ProbeRunResult:
        result = self.db.run(messages, **config_overrides)
        return ProbeRunResult(result.stdout, result.stderr, result.returncode)

    def cli(self, messages: Messages | bytes, **config_overrides: Any) -> ProbeRunResult:
        result = self.db.cli(messages, **config_overrides)
        return ProbeRunResult(result.stdout, result.stderr, result.returncode)

    def new_target(self, **config_overrides: Any) -> TargetPostgres:
        return self.db.target(**config_overrides)

    def tables(self, schema: str | None = None) -> list[str]:
        return self.db.tables(schema or self.schema)

    def columns(self, table: str, schema: str | None = None) -> dict[str, Kind]:
        rows = self.db.query(
            "SELECT column_name, data_type, col_description(format('%%I.%%I', table_schema, table_name)::regclass, "
            "ordinal_position) FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            (schema or self.schema, table),
        )
        out: dict[str, Kind] = {}
        for name, data_type, comment in rows:
            if data_type not in PG_TYPE_KINDS:
                raise AssertionError(f"column {name!r} of {table!r} is {data_type}, a type target-postgres never makes")
            kind = PG_TYPE_KINDS[data_type]
            out[name] = Kind.NULL if kind is Kind.STRING and is_null_only(comment) else kind
        return out

    def comments(self, table: str, schema: str | None = None) -> dict[str, str | None]:
        rows = self.db.query(
            "SELECT a.attname, col_description(a.attrelid, a.attnum) FROM pg_attribute a "
            "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            (self._table(table, schema),),
        )
        return dict(rows)

    def table_comment(self, table: str, schema: str | None = None) -> str | None:
        rows = self.db.query("SELECT obj_description(%s::regclass, 'pg_class')", (self._table(table, schema),))
        return rows[0][0]

    def rows(
        self,
        table: str,
        columns: list[str],
        order_by: list[str] | None = None,
        schema: str | None = None,
    ) -> list[tuple[Any, ...]]:
        select = ", ".join(_quote(c) for c in columns)
        order = ", ".join(_quote(c) for c in (order_by or columns))
        rows = self.db.query(f"SELECT {select} FROM {self._table(table, schema)} ORDER BY {order}")
        return [tuple(_plain(v) for v in row) for row in rows]

    def primary_key(self, table: str, schema: str | None = None) -> list[str]:
        rows = self.db.query(
            "SELECT a.attname FROM pg_index i JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON true "
            "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
            "WHERE i.indrelid = %s::regclass AND i.indisprimary ORDER BY k.ord",
            (self._table(table, schema),),
        )
        return [r[0] for r in rows]

    def new_schema(self) -> str:
        return new_schema()

    def schema_exists(self, name: str) -> bool:
        return self.db.query("SELECT 1 FROM pg_namespace WHERE nspname = %s", (name,)) != []

    def seed_table(self, table: str, column: str, values: list[int], schema: str | None = None) -> None:
        self.db.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote(schema or self.schema)}")
        self.db.execute(f"CREATE TABLE {self._table(table, schema)} ({_quote(column)} bigint)")
        for value in values:
            self.db.execute(f"INSERT INTO {self._table(table, schema)} VALUES (%s)", (value,))

    def timestamp_as_text(self, value: datetime.datetime) -> str:
        """PostgreSQL's `timestamptz::text` in a UTC session: `2024-01-03 04:05:06+00`."""
        return value.astimezone(datetime.UTC).isoformat(sep=" ").removesuffix(":00")
