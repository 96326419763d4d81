"""Identifiers, types, reading tables back, and schema evolution (in place or by rebuild) against the emulator."""

from __future__ import annotations

from typing import Any

import pytest
from sf_helpers import copy_rows, plan_for, rows_of, table_load

from harborline_singer_shared.rules import ColumnPlan, ColumnType, IncompatibleSchemaChangeError, Kind, NameAllocator
from harborline_singer_shared.rules.flatten import SourceColumn
from harborline_target_snowflake import connector
from harborline_target_snowflake.auth import SnowflakeSettingsError
from harborline_target_snowflake.connector import TypeOptions


def _col(kind: Kind, schema: dict[str, Any] | None = None) -> ColumnPlan:
    return ColumnPlan("c", ColumnType(kind), SourceColumn(("c",), schema or {}, ColumnType(kind)))


def test_names_are_upper_cased_and_always_quoted() -> None:
    assert connector.quote("select") == '"SELECT"'
    assert connector.quote("order__id") == '"ORDER__ID"'
    assert connector.quote('We"ird Name') == '"We""ird Name"'  # not an engine name: kept exactly
    assert connector.qualified("raw", "table") == '"RAW"."TABLE"'
    assert connector.engine_name("ORDER__ID") == "order__id"
    assert connector.engine_name("MixedCase") == "MixedCase"
    assert connector.engine_name("lower") is None


def test_long_names_fit_255_characters_and_stay_distinct() -> None:
    names = NameAllocator(connector.MAX_IDENTIFIER_CHARS).assign(["a" * 300 + "x", "a" * 300 + "y", "Name", "name"])
    assert all(len(n) <= 255 for n in names.values())
    assert len(set(names.values())) == 4


def test_type_mapping() -> None:
    options = TypeOptions()
    assert connector.sql_type(_col(Kind.INTEGER), options) == "NUMBER(38,0)"
    assert connector.sql_type(_col(Kind.NUMBER), options) == "NUMBER(38,9)"
    assert connector.sql_type(_col(Kind.NUMBER, {"multipleOf": 0.01}), options) == "NUMBER(38,2)"
    assert connector.sql_type(_col(Kind.NUMBER, {"multipleOf": 1}), options) == "NUMBER(38,0)"
    assert connector.sql_type(_col(Kind.NUMBER, {"multipleOf": 0.5}), TypeOptions(number_scale=4)) == "NUMBER(38,4)"
    assert connector.sql_type(_col(Kind.TIMESTAMP), TypeOptions("TIMESTAMP_NTZ")) == "TIMESTAMP_NTZ"
    assert connector.sql_type(_col(Kind.JSON), options) == "VARIANT"
    assert connector.sql_type(_col(Kind.STRING), options) == "VARCHAR"
    assert connector.stage_type(_col(Kind.JSON), options) == "VARCHAR"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"timestamp_type": "TIMESTAMP_LTZ"}, "`timestamp_type` must be TIMESTAMP_TZ or TIMESTAMP_NTZ"),
        ({"number_scale": 38}, "`number_scale` must be an integer from 0 to 37"),
        ({"number_scale": "9"}, "`number_scale` must be an integer"),
    ],
)
def test_type_settings_are_checked(config: dict[str, Any], message: str) -> None:
    with pytest.raises(SnowflakeSettingsError, match=message):
        TypeOptions.from_config(config)


SCHEMA = {
    "properties": {
        "id": {"type": "integer"},
        "select": {"type": ["string", "null"]},
        "Name": {"type": ["string", "null"]},
        "name": {"type": ["string", "null"]},
        "nested": {"type": "object", "properties": {"a b": {"type": ["integer", "null"]}}},
        "l" * 300: {"type": ["boolean", "null"]},
        "back\\slash 'q' \"dq\" ✓": {"type": ["string", "null"]},
    }
}


def test_columns_read_back_with_their_sources_key_and_owner(sf: tuple[Any, str]) -> None:
    conn, schema = sf
    table_load(conn, schema, "reads", SCHEMA, keys=["id"])
    cur = conn.cursor()
    existing = connector.read_columns(cur, schema, "reads")
    assert existing is not None
    sources = {c.source for c in existing}
    assert {("id",), ("select",), ("Name",), ("name",), ("nested", "a b"), ("l" * 300,)} <= sources
    assert ("back\\slash 'q' \"dq\" ✓",) in sources
    assert all(len(c.name) <= 255 for c in existing)
    assert connector.read_primary_key(cur, schema, "reads") == ["id"]
    assert connector.read_table_owners(cur, schema) == {"reads": "reads"}
    assert connector.read_columns(cur, schema, "missing") is None
    # Planned again from what was read back: nothing to do.
    plan, ddl = plan_for(cur, schema, "reads", SCHEMA, ["id"])
    assert (plan.add, plan.widen, ddl.statements, ddl.rebuild) == ([], [], [], [])


def test_creating_or_adding_columns_takes_one_statement_whatever_the_width(sf: tuple[Any, str]) -> None:
    """Each DDL statement is a round trip to Snowflake: the sources go in as inline comments, not one per column."""
    conn, schema = sf
    cur = conn.cursor()
    for width in (10, 200):
        props = {f"c{i}": {"type": ["string", "null"]} for i in range(width)}
        table = f"wide{width}"
        _plan, ddl = plan_for(cur, schema, table, {"properties": {"id": {"type": "integer"}, **props}}, ["id"])
        assert [s.split(None, 2)[:2] for s in ddl.statements] == [["CREATE", "TABLE"]]
        connector.apply_ddl(cur, ddl)
        more = {**props, "added_a": {"type": ["integer", "null"]}, "added_b": {"type": ["string", "null"]}}
        _plan, ddl = plan_for(cur, schema, table, {"properties": {"id": {"type": "integer"}, **more}}, ["id"])
        assert [s.split(None, 4)[3] for s in ddl.statements] == ["ADD", "ADD"]
        connector.apply_ddl(cur, ddl)
        existing = connector.read_columns(cur, schema, table) or []
        assert {c.source for c in existing} >= {("id",), *((f"c{i}",) for i in range(width)), ("added_b",)}
        assert connector.read_table_owners(cur, schema)[table] == table


def test_integer_to_number_rebuilds_keeping_rows_key_and_comments(sf: tuple[Any, str]) -> None:
    conn, schema = sf
    v1 = {"properties": {"id": {"type": "integer"}, "amount": {"type": ["integer", "null"]}}}
    load = table_load(conn, schema, "rb", v1, keys=["id"])
    load.load(conn, [copy_rows([[1, 10, 1], [2, None, 2]])])
    v2 = {"properties": {"id": {"type": "integer"}, "amount": {"type": ["number", "null"]}, "new": {"type": "string"}}}
    cur = conn.cursor()
    _, ddl = plan_for(cur, schema, "rb", v2, ["id"])
    assert ddl.rebuild == ["AMOUNT"]
    load = table_load(conn, schema, "rb", v2, keys=["id"])  # applies the rebuild (SWAP WITH) before loading
    load.load(conn, [copy_rows([[2, "2.5", "x", 1]])])
    assert rows_of(conn, schema, "rb", ["id", "amount", "new"], "id") == [(1, 10, None), (2, 2.5, "x")]
    physical = {p.name: p for p in connector.read_physical_columns(cur, schema, "rb") or []}
    assert (physical["AMOUNT"].data_type, physical["AMOUNT"].scale) == ("NUMBER", 9)
    assert connector.read_primary_key(cur, schema, "rb") == ["id"]
    assert {c.name: c.source for c in connector.read_columns(cur, schema, "rb") or []}["amount"] == ("amount",)
    assert connector.read_table_owners(cur, schema) == {"rb": "rb"}


def test_a_short_varchar_widens_in_place(sf: tuple[Any, str]) -> None:
    conn, schema = sf
    cur = conn.cursor()
    cur.execute(f'CREATE TABLE {connector.qualified(schema, "vc")} ("ID" NUMBER(38,0), "S" VARCHAR(10))')
    json_schema = {"properties": {"id": {"type": "integer"}, "s": {"type": "string"}}}
    _, ddl = plan_for(cur, schema, "vc", json_schema, [])
    assert not ddl.rebuild
    assert [s for s in ddl.statements if "SET DATA TYPE" in s] == [
        f'ALTER TABLE "{schema.upper()}"."VC" ALTER COLUMN "S" SET DATA TYPE VARCHAR'
    ]
    connector.apply_ddl(cur, ddl)


def test_the_emulator_refuses_what_snowflake_refuses(sf: tuple[Any, str]) -> None:
    """Guards the shim that keeps the planner honest: changing a NUMBER's scale in place is refused."""
    from snowflake.connector import errors  # noqa: PLC0415

    conn, schema = sf
    cur = conn.cursor()
    cur.execute(f'CREATE TABLE {connector.qualified(schema, "ref")} ("N" NUMBER(38,0))')
    with pytest.raises(errors.ProgrammingError, match="cannot change column"):
        cur.execute(f'ALTER TABLE {connector.qualified(schema, "ref")} ALTER COLUMN "N" SET DATA TYPE NUMBER(38,9)')


def test_the_emulator_keeps_inline_column_comments_as_snowflake_does(sf: tuple[Any, str]) -> None:
    """Guards the shim: fakesnow drops inline column comments; an existing table keeps its own."""
    conn, schema = sf
    cur = conn.cursor()
    table = connector.qualified(schema, "cm")
    cur.execute(f"CREATE TABLE IF NOT EXISTS {table} (\"A\" VARCHAR COMMENT 'first') COMMENT = 't'")
    cur.execute(f"CREATE TABLE IF NOT EXISTS {table} (\"A\" VARCHAR COMMENT 'second', \"B\" VARCHAR COMMENT 'b')")
    cur.execute(f"ALTER TABLE {table} ADD COLUMN \"C\" NUMBER(38,0) COMMENT 'c'")
    got = {p.name: p.comment for p in connector.read_physical_columns(cur, schema, "cm") or []}
    assert got == {"A": "first", "C": "c"}


def test_narrowing_is_refused_before_any_ddl(sf: tuple[Any, str]) -> None:
    conn, schema = sf
    v1 = {"properties": {"id": {"type": "integer"}, "v": {"type": ["string", "null"]}}}
    table_load(conn, schema, "narrow", v1, keys=["id"])
    v2 = {"properties": {"id": {"type": "integer"}, "v": {"type": ["integer", "null"]}}}
    with pytest.raises(IncompatibleSchemaChangeError, match="column 'v' is string"):
        plan_for(conn.cursor(), schema, "narrow", v2, ["id"])


def test_a_rebuild_left_by_a_killed_run_is_discarded(sf: tuple[Any, str]) -> None:
    conn, schema = sf
    cur = conn.cursor()
    leftover = connector.qualified(schema, connector.side_name("kill", "rebuild"))
    cur.execute(f'CREATE TABLE {leftover} ("X" NUMBER(38,0))')
    connector.discard_rebuild(cur, schema, "kill")
    cur.execute(f"SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '{schema.upper()}'")
    assert cur.fetchone()[0] == 0


def test_error_lines_mask_quoted_values() -> None:
    from snowflake.connector import errors  # noqa: PLC0415

    exc = errors.ProgrammingError(msg="Numeric value 'secret-ssn-123' is not recognized\n  File 'x'", errno=100038)
    assert connector.describe_error(exc) == "100038: Numeric value '…' is not recognized"
