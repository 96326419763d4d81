"""Warehouse rules: schema per tap, table per stream, names, and schema evolution (read back from PostgreSQL)."""

from __future__ import annotations

import datetime
import re
from decimal import Decimal

import pytest
from singer_sdk.exceptions import ConfigValidationError
from tp_helpers import new_schema, record_msg, schema_msg

from harborline_singer_shared.rules import IncompatibleSchemaChangeError
from harborline_target_postgres.target import TargetPostgres

# -- schema per tap, table per stream ------------------------------------------------------------------------------


def test_tables_go_into_default_target_schema(db):
    db.run([schema_msg("users", {"id": {"type": "integer"}}, ["id"]), record_msg("users", {"id": 1})])
    assert db.tables() == ["users"]
    assert db.tables("public") == []


def test_schema_only_created_with_the_first_schema_message(db):
    db.run([])
    assert db.query("SELECT 1 FROM pg_namespace WHERE nspname = %s", (db.schema,)) == []
    db.run([schema_msg("empty_stream", {"id": {"type": "integer"}})])
    assert db.tables() == ["empty_stream"]
    assert db.count("empty_stream") == 0


def test_meltano_extractor_namespace_is_the_fallback(db, monkeypatch):
    namespace = new_schema()
    monkeypatch.setenv("MELTANO_EXTRACTOR_NAMESPACE", namespace)
    db.run([schema_msg("s", {"id": {"type": "integer"}}), record_msg("s", {"id": 1})], default_target_schema=None)
    assert db.tables(namespace) == ["s"]
    # An explicit setting wins over the environment.
    db.run([schema_msg("s", {"id": {"type": "integer"}}), record_msg("s", {"id": 2})])
    assert db.tables() == ["s"]
    assert db.count("s") == 1


def test_no_schema_is_a_clear_config_error(db):
    with pytest.raises(ConfigValidationError, match="default_target_schema"):
        TargetPostgres(config=db.config(default_target_schema=None))
    result = db.cli([], default_target_schema=None)
    assert result.returncode != 0
    assert "default_target_schema" in result.stderr
    assert "Traceback" not in result.stderr


# -- names ---------------------------------------------------------------------------------------------------------


def test_names_lower_cased_quoted_reserved_words(db):
    props = {"select": {"type": "integer"}, "user": {"type": "string"}, "order": {"type": "string"}, "From": {}}
    db.run(
        [
            schema_msg("Order", props, ["select"]),
            record_msg("Order", {"select": 1, "user": "u", "order": "o", "From": [1]}),
        ]
    )
    assert db.tables() == ["order"]
    assert list(db.columns("order")) == ["select", "user", "order", "from", "__loaded_at"]
    assert db.primary_key("order") == ["select"]
    assert db.rows("order", '"select", "user", "order", "from"') == [(1, "u", "o", [1])]


def test_special_characters_in_names(db):
    props = {"id": {"type": "integer"}, "a b-c.d": {"type": "string"}, "1st": {"type": "string"}, "ü": {}}
    db.run([schema_msg("my stream/ä", props, ["id"]), record_msg("my stream/ä", {"id": 1, "a b-c.d": "x", "1st": "y"})])
    table = db.tables()[0]
    assert re.fullmatch(r"[a-z0-9_]+", table)
    assert db.dicts(table) == [{"id": 1, "a_b_c_d": "x", "_1st": "y", "_": None}]
    assert db.comments(table)["a_b_c_d"] == '["a b-c.d"]'


def test_sql_injection_shaped_identifiers_are_harmless(db):
    db.execute(f'CREATE SCHEMA "{db.schema}"')
    db.execute(f'CREATE TABLE "{db.schema}".t (v int)')
    db.execute(f'INSERT INTO "{db.schema}".t VALUES (42)')
    db.execute("CREATE TABLE IF NOT EXISTS public.sentinel (v int)")
    evil = 'x"; DROP TABLE t; --'
    evil2 = "y'); DELETE FROM t; --"
    props = {"id": {"type": "integer"}, evil: {"type": "string"}, evil2: {"type": "string"}}
    db.run(
        [schema_msg(evil, props, ["id"]), record_msg(evil, {"id": 1, evil: "a", evil2: "b"})],
    )
    assert db.rows("t", "v") == [(42,)]
    assert db.query("SELECT to_regclass('public.sentinel') IS NOT NULL") == [(True,)]
    tables = db.tables()
    assert sorted(tables) == ["t", "x___drop_table_t____"]
    table = "x___drop_table_t____"
    assert db.dicts(table) == [{"id": 1, "x___drop_table_t____": "a", "y____delete_from_t____": "b"}]
    comments = db.comments(table)
    assert comments["x___drop_table_t____"] == '["x\\"; DROP TABLE t; --"]'
    assert comments["y____delete_from_t____"] == '["y\'); DELETE FROM t; --"]'
    assert db.query("SELECT obj_description(%s::regclass, 'pg_class')", (f'"{db.schema}"."{table}"',)) == [
        ('["x\\"; DROP TABLE t; --"]',)
    ]


LONG_A = "a_very_long_property_name_that_goes_on_and_on_past_the_postgres_limit_alpha"
LONG_B = "a_very_long_property_name_that_goes_on_and_on_past_the_postgres_limit_beta"


def test_long_names_shortened_without_collision(db):
    assert LONG_A[:63] == LONG_B[:63]
    stream_a, stream_b = "stream_" + LONG_A, "stream_" + LONG_B
    props = {"id": {"type": "integer"}, LONG_A: {"type": "string"}, LONG_B: {"type": "string"}}
    messages = [
        schema_msg(stream_a, props, ["id"]),
        record_msg(stream_a, {"id": 1, LONG_A: "A", LONG_B: "B"}),
        schema_msg(stream_b, props, ["id"]),
        record_msg(stream_b, {"id": 1, LONG_A: "A2", LONG_B: "B2"}),
    ]
    db.run(messages)
    tables = db.tables()
    assert len(tables) == 2
    assert all(len(t.encode()) <= 63 for t in tables)
    assert all(t.startswith("stream_a_very_long_property_name") for t in tables)
    by_stream = {
        db.query("SELECT obj_description(%s::regclass, 'pg_class')", (f'"{db.schema}"."{t}"',))[0][0]: t for t in tables
    }
    table_a, table_b = by_stream[f'["{stream_a}"]'], by_stream[f'["{stream_b}"]']
    columns = list(db.columns(table_a))
    assert len(columns) == 4
    assert all(len(c.encode()) <= 63 for c in columns)
    col_a = next(c for c, src in db.comments(table_a).items() if src == f'["{LONG_A}"]')
    col_b = next(c for c, src in db.comments(table_a).items() if src == f'["{LONG_B}"]')
    assert col_a != col_b
    assert col_a.startswith("a_very_long_property_name")
    assert db.rows(table_a, f'"{col_a}", "{col_b}"') == [("A", "B")]
    assert db.rows(table_b, f'"{col_a}", "{col_b}"') == [("A2", "B2")]

    # Same input, second run: the same names, rows upserted into the same tables.
    db.run(messages)
    assert db.tables() == tables
    assert list(db.columns(table_a)) == columns
    assert db.count(table_a) == 1
    # Same input into another schema: the same names again (deterministic, not order- or state-dependent).
    other = new_schema()
    db.run(messages[2:] + messages[:2], default_target_schema=other)
    assert db.tables(other) == tables
    assert list(db.columns(table_a, other)) == columns


def test_names_differing_only_by_case_stay_apart(db):
    props = {"id": {"type": "integer"}, "Name": {"type": "string"}, "name": {"type": "string"}}
    db.run([schema_msg("people", props, ["id"]), record_msg("people", {"id": 1, "Name": "Upper", "name": "lower"})])
    comments = db.comments("people")
    by_source = {src: col for col, src in comments.items() if src}
    assert by_source['["name"]'] == "name"  # the exact-normal name keeps the plain identifier
    upper = by_source['["Name"]']
    assert upper != "name"
    assert upper.startswith("name_")
    assert db.rows("people", f'name, "{upper}"') == [("lower", "Upper")]

    # A later run, properties in the other order: each source keeps its column.
    props2 = {"name": {"type": "string"}, "Name": {"type": "string"}, "id": {"type": "integer"}}
    db.run([schema_msg("people", props2, ["id"]), record_msg("people", {"id": 2, "Name": "U2", "name": "l2"})])
    assert db.comments("people") == comments
    assert db.rows("people", f'id, name, "{upper}"') == [(1, "lower", "Upper"), (2, "l2", "U2")]


def test_streams_differing_only_by_case_get_two_tables(db):
    db.run(
        [
            schema_msg("Users", {"id": {"type": "integer"}}, ["id"]),
            record_msg("Users", {"id": 1}),
            schema_msg("users", {"id": {"type": "integer"}}, ["id"]),
            record_msg("users", {"id": 2}),
            record_msg("users", {"id": 3}),
        ]
    )
    tables = db.tables()
    assert len(tables) == 2
    assert "users" in tables
    assert sorted(db.count(t) for t in tables) == [1, 2]


# -- schema evolution ----------------------------------------------------------------------------------------------


def test_later_schema_adds_columns_and_never_drops(db):
    db.run(
        [
            schema_msg("e", {"id": {"type": "integer"}, "old": {"type": "string"}}, ["id"]),
            record_msg("e", {"id": 1, "old": "x"}),
            schema_msg("e", {"id": {"type": "integer"}, "new": {"type": "boolean"}}, ["id"]),
            record_msg("e", {"id": 2, "new": True}),
        ]
    )
    assert db.columns("e") == {
        "id": "bigint",
        "old": "text",
        "__loaded_at": "timestamp with time zone",
        "new": "boolean",
    }
    assert db.rows("e", "id, old, new") == [(1, "x", None), (2, None, True)]
    # A later run with the first schema again: `new` stays, gets NULL.
    db.run(
        [
            schema_msg("e", {"id": {"type": "integer"}, "old": {"type": "string"}}, ["id"]),
            record_msg("e", {"id": 3, "old": "z"}),
        ]
    )
    assert "new" in db.columns("e")
    assert db.rows("e", "id, old, new") == [(1, "x", None), (2, None, True), (3, "z", None)]


WIDENINGS = [
    # (old property, value, new property, value, new PostgreSQL type, first value read back, second value)
    ({"type": "integer"}, 5, {"type": "number"}, 1.5, "numeric", Decimal(5), Decimal("1.5")),
    ({"type": "number"}, 1.5, {"type": "string"}, "x", "text", "1.5", "x"),
    ({"type": "integer"}, 5, {"type": "string"}, "x", "text", "5", "x"),
    ({"type": "boolean"}, True, {"type": "string"}, "x", "text", "true", "x"),
    (
        {"type": "string", "format": "date"},
        "2024-01-02",
        {"type": "string", "format": "date-time"},
        "2024-01-03T04:05:06+01:00",
        "timestamp with time zone",
        datetime.datetime(2024, 1, 2, tzinfo=datetime.UTC),
        datetime.datetime(2024, 1, 3, 3, 5, 6, tzinfo=datetime.UTC),
    ),
    (
        {"type": "string", "format": "date-time"},
        "2024-01-03T04:05:06Z",
        {"type": "string"},
        "later",
        "text",
        "2024-01-03 04:05:06+00",
        "later",
    ),
    ({"type": "string", "format": "date"}, "2024-01-02", {"type": "string"}, "x", "text", "2024-01-02", "x"),
    ({"type": "string", "format": "time"}, "10:11:12", {"type": "string"}, "x", "text", "10:11:12", "x"),
    ({"type": "array"}, [1], {"type": "string"}, "s", "jsonb", [1], "s"),
    ({"type": "object"}, {"a": 1}, {"type": "integer"}, 3, "jsonb", {"a": 1}, 3),
]


@pytest.mark.parametrize("case", WIDENINGS, ids=lambda c: f"{c[0]}->{c[2]}")
def test_widening(db, case):
    old, v1, new, v2, pg_type, back1, back2 = case
    db.run([schema_msg("w", {"id": {"type": "integer"}, "c": old}, ["id"]), record_msg("w", {"id": 1, "c": v1})])
    db.run([schema_msg("w", {"id": {"type": "integer"}, "c": new}, ["id"]), record_msg("w", {"id": 2, "c": v2})])
    assert db.columns("w")["c"] == pg_type
    assert db.rows("w", "id, c") == [(1, back1), (2, back2)]


def test_widening_chain_in_one_run(db):
    def schema(prop):
        return schema_msg("chain", {"id": {"type": "integer"}, "c": prop}, ["id"])

    db.run(
        [
            schema({"type": "integer"}),
            record_msg("chain", {"id": 1, "c": 1}),
            schema({"type": "number"}),
            record_msg("chain", {"id": 2, "c": 2.5}),
            schema({"type": ["string", "null"]}),
            record_msg("chain", {"id": 3, "c": "three"}),
            record_msg("chain", {"id": 1, "c": "one"}),
        ]
    )
    assert db.columns("chain")["c"] == "text"
    assert db.rows("chain", "id, c") == [(1, "one"), (2, "2.5"), (3, "three")]


NARROWINGS = [
    ({"type": "number"}, 1.5, {"type": "integer"}, "number", "integer"),
    ({"type": "string"}, "x", {"type": "integer"}, "string", "integer"),
    ({"type": "boolean"}, True, {"type": "integer"}, "boolean", "integer"),
    ({"type": "string", "format": "date-time"}, "2024-01-01T00:00:00Z", {"type": "string", "format": "date"},
     "timestamp", "date"),
    ({"type": "integer"}, 1, {"type": "boolean"}, "integer", "boolean"),
    ({"type": "string"}, "x", {"type": "object"}, "string", "json"),
]  # fmt: skip


@pytest.mark.parametrize("case", NARROWINGS, ids=lambda c: f"{c[3]}->{c[4]}")
def test_narrowing_is_refused_and_changes_nothing(db, case):
    old, v1, new, old_name, new_name = case
    first = schema_msg("n", {"id": {"type": "integer"}, "c": old}, ["id"])
    db.run([first, record_msg("n", {"id": 1, "c": v1})])
    columns_before = db.columns("n")
    rows_before = db.rows("n")
    changed = schema_msg("n", {"id": {"type": "integer"}, "c": new, "extra": {"type": "string"}}, ["id"])
    with pytest.raises(IncompatibleSchemaChangeError) as info:
        db.run([changed, record_msg("n", {"id": 2, "c": None})])
    message = str(info.value)
    assert "'n'" in message
    assert "'c'" in message
    assert old_name in message
    assert new_name in message
    # Nothing changed: not even the column the refused SCHEMA would have added.
    assert db.columns("n") == columns_before
    assert db.rows("n") == rows_before


def test_refused_change_keeps_rows_committed_before_it_in_the_same_run(db):
    db.run([schema_msg("n", {"id": {"type": "integer"}, "c": {"type": "number"}}, ["id"])])
    with pytest.raises(IncompatibleSchemaChangeError):
        db.run(
            [
                schema_msg("n", {"id": {"type": "integer"}, "c": {"type": "number"}}, ["id"]),
                record_msg("n", {"id": 1, "c": 1.5}),
                schema_msg("n", {"id": {"type": "integer"}, "c": {"type": "integer"}}, ["id"]),
                record_msg("n", {"id": 2, "c": 2}),
            ]
        )
    assert db.columns("n")["c"] == "numeric"
    assert db.rows("n", "id, c") == [(1, Decimal("1.5"))]


def test_timestamp_column_setting(db):
    db.run(
        [schema_msg("ts", {"id": {"type": "integer"}}, ["id"]), record_msg("ts", {"id": 1})],
        timestamp_column="_etl_loaded",
    )
    columns = db.columns("ts")
    assert "__loaded_at" not in columns
    assert columns["_etl_loaded"] == "timestamp with time zone"
    (loaded,) = db.rows("ts", "_etl_loaded")[0]
    assert abs((datetime.datetime.now(datetime.UTC) - loaded).total_seconds()) < 60


def test_every_row_has_loaded_at(db):
    db.run([schema_msg("la", {"id": {"type": "integer"}})] + [record_msg("la", {"id": i}) for i in range(5)])
    assert db.query(f'SELECT count(*) FROM "{db.schema}".la WHERE __loaded_at IS NULL') == [(0,)]
    assert db.count("la") == 5
