"""The shared warehouse suite's probe (`harborline_singer_shared.testing.warehouse.WarehouseProbe`) on Snowflake.

Names: the engine's lower-case names are stored upper-cased (`order_id` is `"ORDER_ID"`); the probe maps them back
(`connector.engine_name`) and refuses any stored name the engine cannot have made. Types: only the Snowflake types
target-snowflake creates map to a `Kind`; any other type fails the test instead of hiding behind a loose mapping.
Values: VARIANT (JSON text) is parsed, timestamps come back aware in UTC (TIMESTAMP_NTZ holds UTC).
"""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest
from st_helpers import Warehouse, new_schema

from harborline_singer_shared.rules import Kind, is_null_only
from harborline_singer_shared.testing.warehouse import Messages, RunResult, WarehouseProbe
from harborline_target_snowflake import connector
from harborline_target_snowflake.target import TargetSnowflake

#: Every NUMBER target-snowflake creates is NUMBER(38, scale).
NUMBER_PRECISION = 38

# Before any test module imports the suite, so its assertions get pytest's messages (conftest imports this module).
pytest.register_assert_rewrite("harborline_singer_shared.testing.warehouse_suite")


def column_kind(table: str, column: connector.PhysicalColumn) -> Kind:
    """The logical kind of a column as target-snowflake creates it; any other type is a failure, not a guess.

    information_schema names VARCHAR `TEXT`. Numbers are always NUMBER(38, s): scale 0 is an integer, any other
    scale a number (never FLOAT). A VARCHAR whose comment marks it as only ever null is `Kind.NULL`.
    """
    t = column.data_type
    kind: Kind | None = None
    if t == "NUMBER" and column.precision == NUMBER_PRECISION and column.scale is not None:
        kind = Kind.INTEGER if column.scale == 0 else Kind.NUMBER
    elif t == "TEXT" and (column.length is None or column.length == connector.MAX_VARCHAR):
        kind = Kind.NULL if is_null_only(column.comment) else Kind.STRING
    elif t in connector.TIMESTAMP_TYPES:
        kind = Kind.TIMESTAMP
    else:
        kind = {"BOOLEAN": Kind.BOOLEAN, "DATE": Kind.DATE, "TIME": Kind.TIME, "VARIANT": Kind.JSON}.get(t)
    if kind is None:
        shape = f"{t}({column.precision},{column.scale})" if t == "NUMBER" else f"{t}(length {column.length})"
        msg = f"column {column.name!r} of {table!r} is {shape}, a type target-snowflake never makes"
        raise AssertionError(msg)
    return kind


def logical_name(stored: str) -> str:
    """The engine's name for a stored one; a name the engine cannot have made fails the test."""
    name = connector.engine_name(stored)
    if name is None or name.upper() != stored:
        msg = f"{stored!r} is not a name target-snowflake makes (the engine's names are stored upper-cased)"
        raise AssertionError(msg)
    return name


def _timestamp(value: datetime.datetime) -> datetime.datetime:
    """Aware, in UTC: TIMESTAMP_NTZ columns hold UTC wall-clock time (no offset)."""
    return value.replace(tzinfo=datetime.UTC) if value.tzinfo is None else value.astimezone(datetime.UTC)


class SnowflakeProbe(WarehouseProbe):
    """The shared warehouse suite's view of one test's schema in the emulated Snowflake account."""

    dialect = "snowflake"
    max_identifier_bytes = connector.MAX_IDENTIFIER_CHARS

    def __init__(self, wh: Warehouse) -> None:
        self.wh = wh
        self.schema = wh.schema

    # -- running the target ----------------------------------------------------------------------------------

    def run(self, messages: Messages, **config_overrides: Any) -> RunResult:
        result = self.wh.run(messages, **config_overrides)
        return RunResult(result.stdout, result.stderr, result.returncode)

    def cli(self, messages: Messages | bytes, **config_overrides: Any) -> RunResult:
        result = self.wh.cli(messages, **config_overrides)
        return RunResult(result.stdout, result.stderr, result.returncode)

    def new_target(self, **config_overrides: Any) -> TargetSnowflake:
        return self.wh.target(**config_overrides)

    # -- reading back ----------------------------------------------------------------------------------------

    def _physical(self, table: str, schema: str | None) -> list[connector.PhysicalColumn]:
        columns = connector.read_physical_columns(self.wh.conn.cursor(), schema or self.schema, table)
        if columns is None:
            msg = f"no table {table!r} in schema {schema or self.schema!r}"
            raise AssertionError(msg)
        return columns

    def tables(self, schema: str | None = None) -> list[str]:
        cur = self.wh.conn.cursor()
        cur.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (connector.stored_name(schema or self.schema),),
        )
        return sorted(logical_name(r[0]) for r in cur.fetchall())

    def columns(self, table: str, schema: str | None = None) -> dict[str, Kind]:
        return {logical_name(c.name): column_kind(table, c) for c in self._physical(table, schema)}

    def comments(self, table: str, schema: str | None = None) -> dict[str, str | None]:
        return {logical_name(c.name): c.comment for c in self._physical(table, schema)}

    def table_comment(self, table: str, schema: str | None = None) -> str | None:
        cur = self.wh.conn.cursor()
        cur.execute(
            "SELECT comment FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
            (connector.stored_name(schema or self.schema), connector.stored_name(table)),
        )
        (row,) = cur.fetchall()
        return row[0]

    def rows(
        self,
        table: str,
        columns: list[str],
        order_by: list[str] | None = None,
        schema: str | None = None,
    ) -> list[tuple[Any, ...]]:
        kinds = self.columns(table, schema)
        # The emulator fetches a NULL TIMESTAMP_TZ as 1970-01-01: each column comes with its IS NULL.
        select = ", ".join(f"{connector.quote(c)}, {connector.quote(c)} IS NULL" for c in columns)
        order = ", ".join(connector.quote(c) for c in (order_by or columns))
        cur = self.wh.conn.cursor()
        cur.execute(f"SELECT {select} FROM {connector.qualified(schema or self.schema, table)} ORDER BY {order}")
        out = []
        for row in cur.fetchall():
            values = []
            for i, name in enumerate(columns):
                value, is_null = row[2 * i], row[2 * i + 1]
                values.append(None if is_null else self._plain(kinds[name], value))
            out.append(tuple(values))
        return out

    @staticmethod
    def _plain(kind: Kind, value: Any) -> Any:
        """The connector's values as the probe promises them (VARIANT arrives as JSON text)."""
        if kind is Kind.JSON:
            return json.loads(value)
        if isinstance(value, datetime.datetime):
            return _timestamp(value)
        return value

    def primary_key(self, table: str, schema: str | None = None) -> list[str]:
        return connector.read_primary_key(self.wh.conn.cursor(), schema or self.schema, table)

    def new_schema(self) -> str:
        return new_schema()

    def schema_exists(self, name: str) -> bool:
        cur = self.wh.conn.cursor()
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = %s", (connector.stored_name(name),)
        )
        return bool(cur.fetchone()[0])

    def seed_table(self, table: str, column: str, values: list[int], schema: str | None = None) -> None:
        cur = self.wh.conn.cursor()
        target = connector.qualified(schema or self.schema, table)
        cur.execute(f"CREATE SCHEMA IF NOT EXISTS {connector.quote(schema or self.schema)}")
        cur.execute(f"CREATE TABLE {target} ({connector.quote(column)} NUMBER(38,0))")
        for value in values:
            cur.execute(f"INSERT INTO {target} VALUES (%s)", (value,))

    def timestamp_as_text(self, value: datetime.datetime) -> str:
        """A timestamp column widened to VARCHAR: ISO 8601 with nanoseconds and the offset (`connector._cast`)."""
        return value.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000+00:00")
