# ruff: noqa: S101, D102 - this module is tests (the rules that `**/tests/**` gets), kept in shared/ to be shared.
"""The warehouse rule and bad-input tests every target runs, written against `WarehouseProbe`.

Why shared: schema per tap, table per stream, names, schema evolution and clean failures on bad input are promised
by the shared rule engine and loader for every dialect, so each target must pass the very same assertions. A target
subclasses the suites in a test module and gives them a `probe` fixture (a fresh schema per test)::

    import pytest

    pytest.register_assert_rewrite("harborline_singer_shared.testing.warehouse_suite")  # before the import below,
    # in a module imported before any test module (e.g. the tests' helpers imported by conftest.py)

    from harborline_singer_shared.testing.warehouse_suite import WarehouseBadInputSuite, WarehouseRulesSuite

    @pytest.fixture
    def probe(db): return MyProbe(db)

    class TestRules(WarehouseRulesSuite): ...
    class TestBadInput(WarehouseBadInputSuite): ...

Registering the module for assertion rewriting gives the usual pytest failure messages; without it the assertions
still run (plain `assert`), only their messages are terse. Dialect limits come from the probe
(`max_identifier_bytes`), never from constants here.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import re
from decimal import Decimal
from typing import Any

import pytest
from singer_sdk.exceptions import ConfigValidationError

from harborline_singer_shared.rules import IncompatibleSchemaChangeError, Kind
from harborline_singer_shared.testing.warehouse import (
    RunResult,
    WarehouseProbe,
    lines_of,
    record_msg,
    schema_msg,
    state_msg,
)

__all__ = [
    "LOG_LINE",
    "NARROWINGS",
    "SCHEMA",
    "WIDENINGS",
    "WarehouseBadInputSuite",
    "WarehouseRulesSuite",
    "assert_clean_failure",
    "baseline",
    "long_name",
    "rec",
]

#: A log line as the SDK's logging writes it; anything else on stderr is a traceback or a raw print.
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ \| (DEBUG|INFO|WARNING|ERROR|CRITICAL) +\| ")
SCHEMA = schema_msg("s", {"id": {"type": "integer"}, "v": {"type": "string"}}, ["id"])


def rec(i: int, v: str = "x") -> dict[str, Any]:
    """A record of stream `s` (see `SCHEMA`)."""
    return record_msg("s", {"id": i, "v": v})


def assert_clean_failure(
    result: RunResult,
    *,
    stream: str | None,
    line: int | None,
    also: tuple[str, ...] = (),
) -> str:
    """A failed CLI run: non-zero exit, no traceback, only log lines, exactly one error line naming stream and line."""
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    stray = [x for x in result.stderr.splitlines() if x.strip() and not LOG_LINE.match(x)]
    assert stray == [], "stderr has lines that are not log lines (a traceback or a raw print)"
    errors = [x for x in result.stderr.splitlines() if re.search(r"\| (ERROR|CRITICAL) ", x)]
    assert len(errors) == 1, errors
    error = errors[0]
    if stream is not None:
        assert f"stream '{stream}'" in error
    if line is not None:
        assert f"input line {line}" in error
    for word in also:
        assert word in error
    return error


def baseline(probe: WarehouseProbe) -> list[tuple[Any, ...]]:
    """Commit rows 1 and 2 first: each failing run must leave exactly these (plus what it committed itself)."""
    assert probe.cli([SCHEMA, rec(1, "base"), rec(2, "base")]).returncode == 0
    return [(1, "base"), (2, "base")]


def long_name(stem: str, limit: int, tail: str) -> str:
    """`stem` padded past `limit` bytes, then `tail`: two tails give names equal in their first `limit` bytes."""
    while len(stem.encode()) < limit:
        stem += "and_on_"
    return stem + tail


WIDENINGS: list[tuple[Any, ...]] = [
    # (old property, value, new property, value, new kind, first value read back, second value)
    ({"type": "integer"}, 5, {"type": "number"}, 1.5, Kind.NUMBER, Decimal(5), Decimal("1.5")),
    ({"type": "number"}, 1.5, {"type": "string"}, "x", Kind.STRING, "1.5", "x"),
    ({"type": "integer"}, 5, {"type": "string"}, "x", Kind.STRING, "5", "x"),
    ({"type": "boolean"}, True, {"type": "string"}, "x", Kind.STRING, "true", "x"),
    (
        {"type": "string", "format": "date"},
        "2024-01-02",
        {"type": "string", "format": "date-time"},
        "2024-01-03T04:05:06+01:00",
        Kind.TIMESTAMP,
        datetime.datetime(2024, 1, 2, tzinfo=datetime.UTC),
        datetime.datetime(2024, 1, 3, 3, 5, 6, tzinfo=datetime.UTC),
    ),
    (
        {"type": "string", "format": "date-time"},
        "2024-01-03T04:05:06Z",
        {"type": "string"},
        "later",
        Kind.STRING,
        datetime.datetime(2024, 1, 3, 4, 5, 6, tzinfo=datetime.UTC),  # read back as the probe's timestamp_as_text
        "later",
    ),
    ({"type": "string", "format": "date"}, "2024-01-02", {"type": "string"}, "x", Kind.STRING, "2024-01-02", "x"),
    ({"type": "string", "format": "time"}, "10:11:12", {"type": "string"}, "x", Kind.STRING, "10:11:12", "x"),
    ({"type": "array"}, [1], {"type": "string"}, "s", Kind.JSON, [1], "s"),
    ({"type": "object"}, {"a": 1}, {"type": "integer"}, 3, Kind.JSON, {"a": 1}, 3),
]

NARROWINGS: list[tuple[Any, ...]] = [
    ({"type": "number"}, 1.5, {"type": "integer"}, "number", "integer"),
    ({"type": "string"}, "x", {"type": "integer"}, "string", "integer"),
    ({"type": "boolean"}, True, {"type": "integer"}, "boolean", "integer"),
    ({"type": "string", "format": "date-time"}, "2024-01-01T00:00:00Z", {"type": "string", "format": "date"},
     "timestamp", "date"),
    ({"type": "integer"}, 1, {"type": "boolean"}, "integer", "boolean"),
    ({"type": "string"}, "x", {"type": "object"}, "string", "json"),
]  # fmt: skip


class WarehouseRulesSuite:
    """Schema per tap, table per stream, names, and schema evolution, read back through the probe."""

    # -- schema per tap, table per stream --------------------------------------------------------------------

    def test_tables_go_into_default_target_schema(self, probe: WarehouseProbe) -> None:
        probe.run([schema_msg("users", {"id": {"type": "integer"}}, ["id"]), record_msg("users", {"id": 1})])
        assert probe.tables() == ["users"]
        assert probe.tables(probe.default_schema) == []

    def test_schema_only_created_with_the_first_schema_message(self, probe: WarehouseProbe) -> None:
        probe.run([])
        assert not probe.schema_exists(probe.schema)
        probe.run([schema_msg("empty_stream", {"id": {"type": "integer"}})])
        assert probe.schema_exists(probe.schema)
        assert probe.tables() == ["empty_stream"]
        assert probe.count("empty_stream") == 0

    def test_meltano_extractor_namespace_is_the_fallback(
        self, probe: WarehouseProbe, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        namespace = probe.new_schema()
        monkeypatch.setenv("MELTANO_EXTRACTOR_NAMESPACE", namespace)
        probe.run(
            [schema_msg("s", {"id": {"type": "integer"}}), record_msg("s", {"id": 1})], default_target_schema=None
        )
        assert probe.tables(namespace) == ["s"]
        # An explicit setting wins over the environment.
        probe.run([schema_msg("s", {"id": {"type": "integer"}}), record_msg("s", {"id": 2})])
        assert probe.tables() == ["s"]
        assert probe.count("s") == 1

    def test_no_schema_is_a_clear_config_error(self, probe: WarehouseProbe) -> None:
        with pytest.raises(ConfigValidationError, match="default_target_schema"):
            probe.new_target(default_target_schema=None)
        result = probe.cli([], default_target_schema=None)
        assert result.returncode != 0
        assert "default_target_schema" in result.stderr
        assert "Traceback" not in result.stderr

    # -- names -----------------------------------------------------------------------------------------------

    def test_names_lower_cased_quoted_reserved_words(self, probe: WarehouseProbe) -> None:
        props = {"select": {"type": "integer"}, "user": {"type": "string"}, "order": {"type": "string"}, "From": {}}
        probe.run(
            [
                schema_msg("Order", props, ["select"]),
                record_msg("Order", {"select": 1, "user": "u", "order": "o", "From": [1]}),
            ]
        )
        assert probe.tables() == ["order"]
        assert list(probe.columns("order")) == ["select", "user", "order", "from", "__loaded_at"]
        assert probe.primary_key("order") == ["select"]
        assert probe.rows("order", ["select", "user", "order", "from"]) == [(1, "u", "o", [1])]

    def test_special_characters_in_names(self, probe: WarehouseProbe) -> None:
        props = {"id": {"type": "integer"}, "a b-c.d": {"type": "string"}, "1st": {"type": "string"}, "ü": {}}
        probe.run(
            [schema_msg("my stream/ä", props, ["id"]), record_msg("my stream/ä", {"id": 1, "a b-c.d": "x", "1st": "y"})]
        )
        table = probe.tables()[0]
        assert re.fullmatch(r"[a-z0-9_]+", table)
        assert probe.dicts(table) == [{"id": 1, "a_b_c_d": "x", "_1st": "y", "_": None}]
        assert probe.comments(table)["a_b_c_d"] == '["a b-c.d"]'

    def test_sql_injection_shaped_identifiers_are_harmless(self, probe: WarehouseProbe) -> None:
        probe.seed_table("t", "v", [42])
        other = probe.new_schema()
        probe.seed_table("sentinel", "v", [7], schema=other)
        evil = 'x"; DROP TABLE t; --'
        evil2 = "y'); DELETE FROM t; --"
        props = {"id": {"type": "integer"}, evil: {"type": "string"}, evil2: {"type": "string"}}
        probe.run(
            [schema_msg(evil, props, ["id"]), record_msg(evil, {"id": 1, evil: "a", evil2: "b"})],
        )
        assert probe.rows("t", ["v"]) == [(42,)]
        assert probe.rows("sentinel", ["v"], schema=other) == [(7,)]
        tables = probe.tables()
        assert sorted(tables) == ["t", "x___drop_table_t____"]
        table = "x___drop_table_t____"
        assert probe.dicts(table) == [{"id": 1, "x___drop_table_t____": "a", "y____delete_from_t____": "b"}]
        comments = probe.comments(table)
        assert comments["x___drop_table_t____"] == '["x\\"; DROP TABLE t; --"]'
        assert comments["y____delete_from_t____"] == '["y\'); DELETE FROM t; --"]'
        assert probe.table_comment(table) == '["x\\"; DROP TABLE t; --"]'

    def test_long_names_shortened_without_collision(self, probe: WarehouseProbe) -> None:
        limit = probe.max_identifier_bytes
        stem = "a_very_long_property_name_that_goes_on_and_on_past_the_limit_"
        long_a, long_b = long_name(stem, limit, "alpha"), long_name(stem, limit, "beta")
        assert long_a[:limit] == long_b[:limit]
        stream_a, stream_b = "stream_" + long_a, "stream_" + long_b
        props = {"id": {"type": "integer"}, long_a: {"type": "string"}, long_b: {"type": "string"}}
        messages = [
            schema_msg(stream_a, props, ["id"]),
            record_msg(stream_a, {"id": 1, long_a: "A", long_b: "B"}),
            schema_msg(stream_b, props, ["id"]),
            record_msg(stream_b, {"id": 1, long_a: "A2", long_b: "B2"}),
        ]
        probe.run(messages)
        tables = probe.tables()
        assert len(tables) == 2
        assert all(len(t.encode()) <= limit for t in tables)
        assert all(t.startswith("stream_a_very_long_property_name") for t in tables)
        by_stream = {probe.table_comment(t): t for t in tables}
        table_a, table_b = by_stream[f'["{stream_a}"]'], by_stream[f'["{stream_b}"]']
        columns = list(probe.columns(table_a))
        assert len(columns) == 4
        assert all(len(c.encode()) <= limit for c in columns)
        col_a = next(c for c, src in probe.comments(table_a).items() if src == f'["{long_a}"]')
        col_b = next(c for c, src in probe.comments(table_a).items() if src == f'["{long_b}"]')
        assert col_a != col_b
        assert col_a.startswith("a_very_long_property_name")
        assert probe.rows(table_a, [col_a, col_b]) == [("A", "B")]
        assert probe.rows(table_b, [col_a, col_b]) == [("A2", "B2")]

        # Same input, second run: the same names, rows upserted into the same tables.
        probe.run(messages)
        assert probe.tables() == tables
        assert list(probe.columns(table_a)) == columns
        assert probe.count(table_a) == 1
        # Same input into another schema: the same names again (deterministic, not order- or state-dependent).
        other = probe.new_schema()
        probe.run(messages[2:] + messages[:2], default_target_schema=other)
        assert probe.tables(other) == tables
        assert list(probe.columns(table_a, other)) == columns

    def test_names_differing_only_by_case_stay_apart(self, probe: WarehouseProbe) -> None:
        props = {"id": {"type": "integer"}, "Name": {"type": "string"}, "name": {"type": "string"}}
        probe.run(
            [schema_msg("people", props, ["id"]), record_msg("people", {"id": 1, "Name": "Upper", "name": "lower"})]
        )
        comments = probe.comments("people")
        by_source = {src: col for col, src in comments.items() if src}
        assert by_source['["name"]'] == "name"  # the exact-normal name keeps the plain identifier
        upper = by_source['["Name"]']
        assert upper != "name"
        assert upper.startswith("name_")
        assert probe.rows("people", ["name", upper]) == [("lower", "Upper")]

        # A later run, properties in the other order: each source keeps its column.
        props2 = {"name": {"type": "string"}, "Name": {"type": "string"}, "id": {"type": "integer"}}
        probe.run([schema_msg("people", props2, ["id"]), record_msg("people", {"id": 2, "Name": "U2", "name": "l2"})])
        assert probe.comments("people") == comments
        assert probe.rows("people", ["id", "name", upper]) == [(1, "lower", "Upper"), (2, "l2", "U2")]

    def test_streams_differing_only_by_case_get_two_tables(self, probe: WarehouseProbe) -> None:
        probe.run(
            [
                schema_msg("Users", {"id": {"type": "integer"}}, ["id"]),
                record_msg("Users", {"id": 1}),
                schema_msg("users", {"id": {"type": "integer"}}, ["id"]),
                record_msg("users", {"id": 2}),
                record_msg("users", {"id": 3}),
            ]
        )
        tables = probe.tables()
        assert len(tables) == 2
        assert "users" in tables
        assert sorted(probe.count(t) for t in tables) == [1, 2]

    # -- schema evolution ------------------------------------------------------------------------------------

    def test_later_schema_adds_columns_and_never_drops(self, probe: WarehouseProbe) -> None:
        probe.run(
            [
                schema_msg("e", {"id": {"type": "integer"}, "old": {"type": "string"}}, ["id"]),
                record_msg("e", {"id": 1, "old": "x"}),
                schema_msg("e", {"id": {"type": "integer"}, "new": {"type": "boolean"}}, ["id"]),
                record_msg("e", {"id": 2, "new": True}),
            ]
        )
        assert probe.columns("e") == {
            "id": Kind.INTEGER,
            "old": Kind.STRING,
            "__loaded_at": Kind.TIMESTAMP,
            "new": Kind.BOOLEAN,
        }
        assert probe.rows("e", ["id", "old", "new"]) == [(1, "x", None), (2, None, True)]
        # A later run with the first schema again: `new` stays, gets NULL.
        probe.run(
            [
                schema_msg("e", {"id": {"type": "integer"}, "old": {"type": "string"}}, ["id"]),
                record_msg("e", {"id": 3, "old": "z"}),
            ]
        )
        assert "new" in probe.columns("e")
        assert probe.rows("e", ["id", "old", "new"]) == [(1, "x", None), (2, None, True), (3, "z", None)]

    @pytest.mark.parametrize("case", WIDENINGS, ids=lambda c: f"{c[0]}->{c[2]}")
    def test_widening(self, probe: WarehouseProbe, case: tuple[Any, ...]) -> None:
        old, v1, new, v2, kind, back1, back2 = case
        if isinstance(back1, datetime.datetime) and kind is Kind.STRING:
            back1 = probe.timestamp_as_text(back1)
        probe.run([schema_msg("w", {"id": {"type": "integer"}, "c": old}, ["id"]), record_msg("w", {"id": 1, "c": v1})])
        probe.run([schema_msg("w", {"id": {"type": "integer"}, "c": new}, ["id"]), record_msg("w", {"id": 2, "c": v2})])
        assert probe.columns("w")["c"] is kind
        assert probe.rows("w", ["id", "c"]) == [(1, back1), (2, back2)]

    def test_widening_chain_in_one_run(self, probe: WarehouseProbe) -> None:
        def schema(prop: dict[str, Any]) -> dict[str, Any]:
            return schema_msg("chain", {"id": {"type": "integer"}, "c": prop}, ["id"])

        probe.run(
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
        assert probe.columns("chain")["c"] is Kind.STRING
        assert probe.rows("chain", ["id", "c"]) == [(1, "one"), (2, "2.5"), (3, "three")]

    @pytest.mark.parametrize("case", NARROWINGS, ids=lambda c: f"{c[3]}->{c[4]}")
    def test_narrowing_is_refused_and_changes_nothing(self, probe: WarehouseProbe, case: tuple[Any, ...]) -> None:
        old, v1, new, old_name, new_name = case
        first = schema_msg("n", {"id": {"type": "integer"}, "c": old}, ["id"])
        probe.run([first, record_msg("n", {"id": 1, "c": v1})])
        columns_before = probe.columns("n")
        rows_before = probe.rows("n", list(columns_before), order_by=["id"])
        changed = schema_msg("n", {"id": {"type": "integer"}, "c": new, "extra": {"type": "string"}}, ["id"])
        with pytest.raises(IncompatibleSchemaChangeError) as info:
            probe.run([changed, record_msg("n", {"id": 2, "c": None})])
        message = str(info.value)
        assert "'n'" in message
        assert "'c'" in message
        assert old_name in message
        assert new_name in message
        # Nothing changed: not even the column the refused SCHEMA would have added.
        assert probe.columns("n") == columns_before
        assert probe.rows("n", list(columns_before), order_by=["id"]) == rows_before

    def test_refused_change_keeps_rows_committed_before_it_in_the_same_run(self, probe: WarehouseProbe) -> None:
        probe.run([schema_msg("n", {"id": {"type": "integer"}, "c": {"type": "number"}}, ["id"])])
        with pytest.raises(IncompatibleSchemaChangeError):
            probe.run(
                [
                    schema_msg("n", {"id": {"type": "integer"}, "c": {"type": "number"}}, ["id"]),
                    record_msg("n", {"id": 1, "c": 1.5}),
                    schema_msg("n", {"id": {"type": "integer"}, "c": {"type": "integer"}}, ["id"]),
                    record_msg("n", {"id": 2, "c": 2}),
                ]
            )
        assert probe.columns("n")["c"] is Kind.NUMBER
        assert probe.rows("n", ["id", "c"]) == [(1, Decimal("1.5"))]

    def test_timestamp_column_setting(self, probe: WarehouseProbe) -> None:
        probe.run(
            [schema_msg("ts", {"id": {"type": "integer"}}, ["id"]), record_msg("ts", {"id": 1})],
            timestamp_column="_etl_loaded",
        )
        columns = probe.columns("ts")
        assert "__loaded_at" not in columns
        assert columns["_etl_loaded"] is Kind.TIMESTAMP
        (loaded,) = probe.rows("ts", ["_etl_loaded"])[0]
        assert loaded.tzinfo is not None
        assert abs((datetime.datetime.now(datetime.UTC) - loaded).total_seconds()) < 60

    def test_a_null_only_property_takes_the_type_a_later_schema_gives(self, probe: WarehouseProbe) -> None:
        first = schema_msg("nl", {"id": {"type": "integer"}, "later": {"type": "null"}}, ["id"])
        probe.run([first, record_msg("nl", {"id": 1, "later": None}), record_msg("nl", {"id": 2})])
        assert probe.columns("nl")["later"] is Kind.NULL
        probe.run([first, record_msg("nl", {"id": 3, "later": None})])  # read back as null-only by a later run
        assert probe.columns("nl")["later"] is Kind.NULL
        typed = schema_msg("nl", {"id": {"type": "integer"}, "later": {"type": ["integer", "null"]}}, ["id"])
        probe.run([typed, record_msg("nl", {"id": 4, "later": 42})])
        assert probe.columns("nl")["later"] is Kind.INTEGER
        assert probe.rows("nl", ["id", "later"]) == [(1, None), (2, None), (3, None), (4, 42)]

    def test_every_row_has_loaded_at(self, probe: WarehouseProbe) -> None:
        probe.run([schema_msg("la", {"id": {"type": "integer"}})] + [record_msg("la", {"id": i}) for i in range(5)])
        assert [loaded for (loaded,) in probe.rows("la", ["__loaded_at"]) if loaded is None] == []
        assert probe.count("la") == 5


class WarehouseBadInputSuite:
    """Bad and hostile input through the real CLI (input on stdin).

    Error cases: non-zero exit, exactly one clear error line in stderr naming the stream (and `input line N`), no
    Python traceback, and the table holds exactly what was committed before. Hostile-but-valid input loads correctly.
    """

    # -- error cases -----------------------------------------------------------------------------------------

    def test_malformed_json_line(self, probe: WarehouseProbe) -> None:
        before = baseline(probe)
        text = (
            lines_of([SCHEMA, rec(3), rec(4)])
            + '{"type": "RECORD", "stream": "s", "record": {"id": 5\n'
            + lines_of([rec(6)])
        )
        result = probe.cli(text)
        assert_clean_failure(result, stream="s", line=4, also=("malformed JSON",))
        assert probe.rows("s", ["id", "v"]) == before
        assert result.stdout == ""

    def test_garbage_line_without_a_stream(self, probe: WarehouseProbe) -> None:
        before = baseline(probe)
        result = probe.cli(lines_of([SCHEMA, rec(3)]) + "this is not json\n")
        assert_clean_failure(result, stream=None, line=3, also=("malformed JSON",))
        assert probe.rows("s", ["id", "v"]) == before

    def test_record_before_schema(self, probe: WarehouseProbe) -> None:
        result = probe.cli(lines_of([state_msg({"a": 1}), record_msg("early", {"id": 1}), schema_msg("early", {})]))
        assert_clean_failure(result, stream="early", line=2, also=("before its SCHEMA",))
        assert probe.tables() == []

    def test_record_violating_its_schema(self, probe: WarehouseProbe) -> None:
        before = baseline(probe)
        messages = [SCHEMA, *[rec(i) for i in range(3, 10)], record_msg("s", {"id": "ten", "v": "x"}), rec(11)]
        result = probe.cli(messages, batch_size_rows=5)
        error = assert_clean_failure(result, stream="s", line=9, also=("'id'", "integer"))
        assert "ten" not in error  # the value is never logged (it may be personal data)
        # The first batch (3..7) was committed before the bad record; 8 was pending and rolled back.
        assert probe.rows("s", ["id", "v"]) == before + [(i, "x") for i in range(3, 8)]

    @pytest.mark.parametrize(
        ("value", "got"),
        [('"12.5"', "string"), ("true", "boolean"), ('{"a": 1}', "object"), ("[1]", "array")],
    )
    def test_number_property_holding_another_json_kind(self, probe: WarehouseProbe, value: str, got: str) -> None:
        """Numbers travel as their JSON text (exact, no Decimal round trip): anything else is refused by name."""
        schema = schema_msg("n", {"id": {"type": "integer"}, "amt": {"type": ["number", "null"]}}, ["id"])
        good = [record_msg("n", {"id": 1, "amt": 1.5}), record_msg("n", {"id": 2, "amt": None})]
        bad = '{"type": "RECORD", "stream": "n", "record": {"id": 3, "amt": %s}}' % value  # noqa: UP031
        result = probe.cli([schema, *good, bad])
        error = assert_clean_failure(result, stream="n", line=4, also=("'amt'", f"is {got}", "schema says number"))
        assert value not in error

    @pytest.mark.parametrize("position", ["first record", "inside a run of records"])
    @pytest.mark.parametrize("value", ["2\n999\t3", "2\n\\.", "12abc"])
    def test_decimal_string_that_is_not_a_decimal(self, probe: WarehouseProbe, position: str, value: str) -> None:
        """`singer.decimal` strings are checked as decimals: text with bulk-load separators never reaches the table."""
        props = {"id": {"type": "integer"}, "amt": {"type": ["string", "null"], "format": "singer.decimal"}}
        schema = schema_msg("d", props, ["id"])
        good = [record_msg("d", {"id": i, "amt": "12.50"}) for i in (1, 2, 3)]
        bad = record_msg("d", {"id": 9, "amt": value})
        messages = [schema, bad, *good] if position == "first record" else [schema, *good, bad, *good]
        result = probe.cli(messages, load_method="append-only")
        line = messages.index(bad) + 1
        assert_clean_failure(result, stream="d", line=line, also=("'amt'", "schema says number"))
        assert "d" not in probe.tables() or probe.count("d") == 0  # nothing of the batch was committed

    def test_decimal_strings_load_exactly(self, probe: WarehouseProbe) -> None:
        props = {"id": {"type": "integer"}, "amt": {"type": ["string", "null"], "format": "singer.decimal"}}
        messages = [schema_msg("d", props, ["id"])]
        messages += [record_msg("d", {"id": i, "amt": a}) for i, a in enumerate(["12.50", "-0.001", None, "1E+3"])]
        probe.run(messages)
        got = probe.rows("d", ["id", "amt"])
        assert got == [(0, Decimal("12.50")), (1, Decimal("-0.001")), (2, None), (3, Decimal(1000))]
        assert [type(amt) for _, amt in got] == [Decimal, Decimal, type(None), Decimal]

    def test_null_number_key_is_a_missing_key(self, probe: WarehouseProbe) -> None:
        schema = schema_msg("nkey", {"id": {"type": ["number", "null"]}, "v": {"type": "string"}}, ["id"])
        ok = [record_msg("nkey", {"id": i + 0.5, "v": "x"}) for i in range(3)]
        result = probe.cli([schema, *ok, record_msg("nkey", {"id": None, "v": "x"})])
        assert_clean_failure(result, stream="nkey", line=5, also=("key property", "'id'"))

    def test_text_that_is_not_utf8(self, probe: WarehouseProbe) -> None:
        before = baseline(probe)
        ok = lines_of([SCHEMA, rec(3), rec(4)]).encode()
        bad = b'{"type": "RECORD", "stream": "s", "record": {"id": 5, "v": "caf\xe9"}}\n'
        result = probe.cli(ok + bad)
        assert_clean_failure(result, stream="s", line=4, also=("UTF-8",))
        assert probe.rows("s", ["id", "v"]) == before

    def test_record_missing_a_key_property(self, probe: WarehouseProbe) -> None:
        before = baseline(probe)
        result = probe.cli([SCHEMA, rec(3), record_msg("s", {"v": "no id"})])
        assert_clean_failure(result, stream="s", line=3, also=("key property", "'id'"))
        assert probe.rows("s", ["id", "v"]) == before

    def test_narrowing_type_change(self, probe: WarehouseProbe) -> None:
        before = baseline(probe)
        narrowed = schema_msg("s", {"id": {"type": "integer"}, "v": {"type": "integer"}, "w": {}}, ["id"])
        result = probe.cli([SCHEMA, rec(3), narrowed, record_msg("s", {"id": 4, "v": 1})])
        assert_clean_failure(result, stream="s", line=3, also=("'v'", "string", "integer"))
        assert probe.columns("s") == {"id": Kind.INTEGER, "v": Kind.STRING, "__loaded_at": Kind.TIMESTAMP}
        # Record 3 came before the SCHEMA change, so it was committed before the change was even looked at.
        assert probe.rows("s", ["id", "v"]) == [*before, (3, "x")]

    def test_key_property_not_in_schema(self, probe: WarehouseProbe) -> None:
        result = probe.cli([schema_msg("k", {"id": {"type": "integer"}}, ["nope"])])
        assert_clean_failure(result, stream="k", line=1, also=("'nope'",))
        assert probe.tables() == []

    def test_schema_without_properties(self, probe: WarehouseProbe) -> None:
        result = probe.cli([{"type": "SCHEMA", "stream": "np", "schema": {"type": "object"}, "key_properties": []}])
        assert_clean_failure(result, stream="np", line=1, also=("properties",))

    # -- hostile but valid input -----------------------------------------------------------------------------

    def test_sql_injection_shaped_identifiers(self, probe: WarehouseProbe) -> None:
        probe.seed_table("t", "v", [1, 2])
        evil = 'x"; DROP TABLE t; --'
        props = {"id": {"type": "integer"}, evil: {"type": "string"}, "'; TRUNCATE t; --": {"type": "integer"}}
        result = probe.cli(
            [schema_msg(evil, props, ["id"]), record_msg(evil, {"id": 1, evil: "v", "'; TRUNCATE t; --": 7})]
        )
        assert result.returncode == 0, result.stderr
        assert probe.rows("t", ["v"]) == [(1,), (2,)]
        assert probe.tables() == ["t", "x___drop_table_t____"]
        assert probe.dicts("x___drop_table_t____") == [{"id": 1, "x___drop_table_t____": "v", "___truncate_t____": 7}]

    def test_long_names_colliding_after_shortening(self, probe: WarehouseProbe) -> None:
        limit = probe.max_identifier_bytes
        stem = "customer_lifetime_value_estimate_for_the_current_fiscal_year_"
        a, b = long_name(stem, limit, "in_euros"), long_name(stem, limit, "in_dollars")
        assert a[:limit] == b[:limit]
        stream_a, stream_b = "stream_" + a, "stream_" + b
        props = {"id": {"type": "integer"}, a: {"type": "number"}, b: {"type": "number"}}
        messages = [
            schema_msg(stream_a, props, ["id"]),
            record_msg(stream_a, {"id": 1, a: 1.5, b: 2.5}),
            schema_msg(stream_b, props, ["id"]),
            record_msg(stream_b, {"id": 1, a: 3.5, b: 4.5}),
        ]
        assert probe.cli(messages).returncode == 0
        tables = probe.tables()
        assert len(tables) == 2
        first_columns = {t: list(probe.columns(t)) for t in tables}
        values = set()
        for table in tables:
            comments = {src: col for col, src in probe.comments(table).items() if src}
            col_a, col_b = comments[json.dumps([a])], comments[json.dumps([b])]
            assert col_a != col_b
            assert max(len(col_a.encode()), len(col_b.encode())) <= limit
            values.add(tuple(float(x) for x in probe.rows(table, [col_a, col_b])[0]))
        assert values == {(1.5, 2.5), (3.5, 4.5)}
        # Second run of the same input: same tables, same columns, rows upserted (not duplicated).
        assert probe.cli(messages).returncode == 0
        assert probe.tables() == tables
        assert {t: list(probe.columns(t)) for t in tables} == first_columns
        assert all(probe.count(t) == 1 for t in tables)

    def test_nul_bytes(self, probe: WarehouseProbe) -> None:
        props = {"id": {"type": "integer"}, "v": {"type": "string"}, "j": {"type": "object"}, "a": {"type": "array"}}
        raw = (
            json.dumps(schema_msg("nul", props, ["id"]))
            + "\n"
            + '{"type": "RECORD", "stream": "nul", "record": {"id": 1, "v": "a\\u0000b\\u0000", '
            + '"j": {"k\\u0000": "\\u0000"}, "a": ["\\u0000", {"x": "y\\u0000"}]}}\n'
        )
        result = probe.cli(raw)
        assert result.returncode == 0, result.stderr
        assert probe.rows("nul", ["v", "j", "a"]) == [
            ("a\ufffdb\ufffd", {"k\ufffd": "\ufffd"}, ["\ufffd", {"x": "y\ufffd"}])
        ]

    def test_ten_megabyte_string(self, probe: WarehouseProbe) -> None:
        big = "".join(chr(0x41 + (i % 26)) for i in range(1000)) * 10_000 + "é\t\\\n"  # 10 MB and some escapes
        assert len(big.encode()) > 10_000_000
        result = probe.cli([SCHEMA, rec(1, big), rec(2, "small"), state_msg({"done": 1})], batch_size_bytes=1_000_000)
        assert result.returncode == 0, result.stderr[-4000:]  # (an error may quote the 10 MB line)
        got = [(i, len(v), hashlib.md5(v.encode()).hexdigest()) for i, v in probe.rows("s", ["id", "v"])]  # noqa: S324
        assert got == [
            (1, len(big), hashlib.md5(big.encode()).hexdigest()),  # noqa: S324 - a checksum, not security
            (2, 5, hashlib.md5(b"small").hexdigest()),  # noqa: S324
        ]
        assert result.states == [{"done": 1}]

    def test_batch_larger_than_the_byte_bound(self, probe: WarehouseProbe) -> None:
        messages: list[Any] = [SCHEMA]
        for i in range(1, 61):
            messages.append(rec(i, "y" * 2000))
            if i % 4 == 0:
                messages.append(state_msg({"upto": i}))
        result = probe.cli(messages, batch_size_bytes=10_000)
        assert result.returncode == 0, result.stderr
        assert probe.rows("s", ["id"]) == [(i,) for i in range(1, 61)]
        commits = re.findall(probe.commit_log_pattern, result.stderr)
        assert len(commits) >= 10
        assert sum(int(c) for c in commits) == 60
        assert max(int(c) for c in commits) <= 6  # ~2 KB per row under a 10 KB bound
        # A STATE after each commit (when one had arrived since the previous), in order, the last one at the end.
        assert len(result.states) >= 10
        assert result.states[-1] == {"upto": 60}
        ups = [s["upto"] for s in result.states]
        assert ups == sorted(set(ups))
