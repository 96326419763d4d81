"""Test helpers: CSV rows as the shared loader builds them, plans for a schema, reading tables back."""

from __future__ import annotations

import atexit
import decimal
import json
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harborline_singer_shared.rules import ColumnType, Kind, TablePlan, plan_table
from harborline_target_snowflake import connector
from harborline_target_snowflake.connector import TypeOptions
from harborline_target_snowflake.load import SEQ_COLUMN, SNOWFLAKE_ROWS, TableLoad

#: Bound the connector's retries against the emulator (it answers unsupported statements with HTTP 500, retried
#: until these run out), with room for a loaded CI machine (two suites run at once): a safety net, not a test.
TEST_TIMEOUTS = {"login_timeout": 30, "network_timeout": 60, "socket_timeout": 30}
TIMESTAMP_COLUMN = "__loaded_at"
#: Where test loads write their batch files (each is deleted after its load; the folder at exit).
WORKDIR = Path(tempfile.mkdtemp(prefix="target-snowflake-tests-"))
atexit.register(shutil.rmtree, WORKDIR, ignore_errors=True)


def session_parameters_for_tests(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The production session parameters, plus no out-of-band telemetry (it would try the real service)."""
    plain = {k: settings.get(k) for k in ("account", "user", "query_tag")}
    params = connector.connect_kwargs({**plain, "password": "unused"})["session_parameters"]
    return {**params, "CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False}


def copy_field(value: Any) -> str:
    """One value in the CSV form the shared row builder writes for this target (`SNOWFLAKE_ROWS`)."""
    if value is None:
        return SNOWFLAKE_ROWS.null
    if value is True or value is False:
        return "t" if value else "f"
    if isinstance(value, (dict, list)):
        return SNOWFLAKE_ROWS.text(json.dumps(value, ensure_ascii=False))
    if isinstance(value, (int, decimal.Decimal)):
        return str(value)
    return SNOWFLAKE_ROWS.text(str(value))


def copy_rows(rows: Sequence[Sequence[Any]]) -> bytes:
    """Whole rows as one chunk, as the sink hands them to `TableLoad.load`."""
    return "".join("\t".join(copy_field(v) for v in row) + "\n" for row in rows).encode("utf-8")


def plan_for(
    cur: Any,
    schema: str,
    table: str,
    json_schema: Mapping[str, Any],
    keys: Sequence[str],
    *,
    primary_key: bool = True,
    options: TypeOptions | None = None,
) -> tuple[TablePlan, connector.DdlPlan]:
    """Plan a table for a SCHEMA against what the database has, as a sink would."""
    existing = connector.read_columns(cur, schema, table)
    plan = plan_table(
        table,
        json_schema,
        keys,
        existing,
        connector.RULES,
        system_columns={TIMESTAMP_COLUMN: ColumnType(Kind.TIMESTAMP)},
        reserved=[SEQ_COLUMN],
    )
    physical = connector.read_physical_columns(cur, schema, table)
    ddl = connector.plan_ddl(
        plan, schema, table, table, TIMESTAMP_COLUMN, options or TypeOptions(), physical, primary_key=primary_key
    )
    return plan, ddl


def table_load(
    conn: Any,
    schema: str,
    table: str,
    json_schema: Mapping[str, Any],
    *,
    keys: Sequence[str] = (),
    mode: str = "upsert",
    options: TypeOptions | None = None,
) -> TableLoad:
    """Create or evolve the table, then a prepared TableLoad for it."""
    cur = conn.cursor()
    # Append-only tables take duplicates by design: no primary key (the emulator enforces keys; Snowflake does not).
    plan, ddl = plan_for(cur, schema, table, json_schema, keys, primary_key=mode != "append-only", options=options)
    connector.apply_ddl(cur, ddl)
    load = TableLoad(
        schema=schema,
        table=table,
        columns=plan.source_columns,
        key_columns=plan.key_columns,
        timestamp_column=TIMESTAMP_COLUMN,
        options=options or TypeOptions(),
        mode=mode,
        seq=mode != "append-only",
        workdir=WORKDIR,
    )
    load.prepare(cur)
    return load


def rows_of(conn: Any, schema: str, table: str, columns: Sequence[str], order: str) -> list[tuple[Any, ...]]:
    """The table's rows, selected columns only, ordered."""
    cur = conn.cursor()
    cols = ", ".join(connector.quote(c) for c in columns)
    cur.execute(f"SELECT {cols} FROM {connector.qualified(schema, table)} ORDER BY {connector.quote(order)}")
    return [tuple(r) for r in cur.fetchall()]
