"""Wide and deep schemas: PostgreSQL's 1,600-column limit and nesting deeper than Python's recursion limit (issue 11).

A schema whose full flattening needs more columns than a table can have still loads: flattening stops at the deepest
level that fits and deeper objects are stored as jsonb, with a warning naming the stream. A schema nested thousands
of levels deep is planned without recursion; anything the target cannot take is one line naming stream and line.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from tp_helpers import record_msg, schema_msg

from harborline_singer_shared.rules import TooManyColumnsError

STRING = {"type": ["string", "null"]}


def wide_schema(outer: int, inner: int, leaves: int) -> dict[str, Any]:
    """`outer` objects of `inner` objects of `leaves` strings: outer*inner*leaves columns fully flattened."""
    inner_obj = {"type": "object", "properties": {f"l{k}": STRING for k in range(leaves)}}
    outer_obj = {"type": "object", "properties": {f"i{j}": inner_obj for j in range(inner)}}
    return {"id": {"type": "integer"}, **{f"o{i}": outer_obj for i in range(outer)}}


def test_too_many_columns_fully_flattened_stops_flattening_where_the_table_fits(db):
    props = wide_schema(30, 30, 3)  # 2,700 leaves: too many; one level (900 columns) fits
    # Sparse: 900 filled jsonb values would pass PostgreSQL's 8 kB row limit (a limit of its own, not this one's).
    record = {"id": 1, "o7": {"i3": {"l0": "7.3"}}}
    result = db.cli([schema_msg("wide", props, ["id"]), record_msg("wide", record)])
    assert result.returncode == 0, result.stderr
    columns = db.columns("wide")
    assert len(columns) == 1 + 900 + 1  # id, o<i>__i<j> as jsonb, __loaded_at
    assert columns["o0__i0"] == "jsonb"
    assert "o0__i0__l0" not in columns
    assert db.rows("wide", '"o7__i3"') == [({"l0": "7.3"},)]
    warnings = [line for line in result.stderr.splitlines() if "| WARNING" in line and "1600 columns" in line]
    assert len(warnings) == 1, result.stderr
    assert "Stream 'wide'" in warnings[0]
    assert "deeper than 1 level(s) are stored as jsonb" in warnings[0]


def test_a_schema_that_fits_is_flattened_fully(db):
    db.run([schema_msg("narrow", wide_schema(5, 5, 3), ["id"])])
    assert len(db.columns("narrow")) == 1 + 75 + 1


def test_too_many_top_level_properties_is_one_clear_error_and_nothing_is_created(db):
    props = {"id": {"type": "integer"}, **{f"p{i}": STRING for i in range(1700)}}
    result = db.cli([schema_msg("huge", props, ["id"])])
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "| ERROR" in line]
    assert len(errors) == 1, result.stderr
    assert "stream 'huge', input line 1: even unflattened, the table needs 1702 columns" in errors[0]
    assert "Traceback" not in result.stderr
    assert db.tables() == []
    with pytest.raises(TooManyColumnsError):
        db.run([schema_msg("huge", props, ["id"])])


def nested_lines(depth: int) -> str:
    """SCHEMA and RECORD for an object nested `depth` levels (built as text: json.dumps itself would recurse)."""
    schema = '{"type": "string"}'
    record = '"leaf"'
    for _ in range(depth):
        schema = '{"type": "object", "properties": {"k": ' + schema + "}}"
        record = '{"k": ' + record + "}"
    schema_line = (
        '{"type": "SCHEMA", "stream": "deep", "key_properties": ["id"], "schema": {"type": "object", '
        '"properties": {"id": {"type": "integer"}, "n": ' + schema + "}}}"
    )
    record_line = '{"type": "RECORD", "stream": "deep", "record": {"id": 1, "n": ' + record + "}}"
    return schema_line + "\n" + record_line + "\n"


def test_nesting_deeper_than_the_recursion_limit_loads_or_fails_in_one_line(db):
    result = db.cli(nested_lines(3000))
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    if result.returncode == 0:
        (row,) = db.rows("deep", "*")
        assert row[0] == 1
    else:
        errors = [line for line in result.stderr.splitlines() if "| ERROR" in line]
        assert len(errors) == 1, result.stderr[-3000:]
        assert "stream 'deep', input line" in errors[0]


def test_moderate_nesting_is_flattened_to_its_leaf(db):
    db.cli(nested_lines(20))
    (name,) = [c for c in db.columns("deep") if c.startswith("n__")]
    assert name.count("__") >= 1
    assert json.loads(json.dumps(db.rows("deep", f'"{name}"'))) == [["leaf"]]


@pytest.mark.parametrize("depth", [900, 3000])
def test_a_deeply_nested_value_in_a_json_column_loads_or_fails_in_one_line(db, depth):
    value = "1"
    for _ in range(depth):
        value = "[" + value + "]"
    lines = (
        '{"type": "SCHEMA", "stream": "j", "key_properties": ["id"], "schema": {"type": "object", '
        '"properties": {"id": {"type": "integer"}, "v": {}}}}\n'
        '{"type": "RECORD", "stream": "j", "record": {"id": 1, "v": ' + value + "}}\n"
    )
    result = db.cli(lines)
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    if result.returncode == 0:
        assert db.rows("j", "id") == [(1,)]
    else:
        errors = [line for line in result.stderr.splitlines() if "| ERROR" in line]
        assert len(errors) == 1, result.stderr[-3000:]
        assert "stream 'j', input line 2" in errors[0]
