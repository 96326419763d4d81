"""A property that has only ever been `null` gets a column a later SCHEMA may still give any type (issue 11).

Taps infer schemas from sample data: a field that was null in every sample is declared `{"type": "null"}`, and the
real type arrives with a later SCHEMA. Refusing that as a narrowing (as a text column would) would stop the load.
"""

from __future__ import annotations

import pytest
from tp_helpers import record_msg, schema_msg

from harborline_singer_shared.warehouse.errors import RecordTypeError

FIRST = schema_msg("s", {"id": {"type": "integer"}, "later": {"type": "null"}}, ["id"])


def later(prop: dict) -> dict:
    return schema_msg("s", {"id": {"type": "integer"}, "later": prop}, ["id"])


@pytest.mark.parametrize(
    ("prop", "value", "pg_type", "read_back"),
    [
        ({"type": ["integer", "null"]}, 42, "bigint", 42),
        ({"type": ["boolean", "null"]}, True, "boolean", True),
        ({"type": ["object", "null"], "properties": {}}, {"a": [1]}, "jsonb", {"a": [1]}),
        ({"type": ["string", "null"], "format": "date"}, "2026-12-03", "date", "2026-12-03"),
    ],
    ids=["integer", "boolean", "object", "date"],
)
def test_a_null_only_column_takes_the_type_a_later_schema_gives(db, prop, value, pg_type, read_back):
    db.run([FIRST, record_msg("s", {"id": 1, "later": None}), record_msg("s", {"id": 2})])
    assert db.columns("s")["later"] == "text"
    db.run([later(prop), record_msg("s", {"id": 3, "later": value})])
    assert db.columns("s")["later"] == pg_type
    rows = db.rows("s", "id, later::text", order="id")
    assert [r[0] for r in rows] == [1, 2, 3]
    assert [r[1] for r in rows[:2]] == [None, None]
    assert rows[2][1] is not None
    got = db.rows("s", "later", order="id")[2][0]
    assert (got.isoformat() if pg_type == "date" else got) == read_back
    assert db.comments("s")["later"] == '["later"]'  # typed now: no longer marked NULL-only


def test_a_null_only_column_keeps_its_kind_across_runs_until_typed(db):
    db.run([FIRST, record_msg("s", {"id": 1, "later": None})])
    db.run([FIRST, record_msg("s", {"id": 2, "later": None})])  # a second run reads the column back as NULL-only
    db.run([later({"type": ["number", "null"]}), record_msg("s", {"id": 3, "later": 1.5})])
    assert db.columns("s")["later"] == "numeric"


def test_a_typed_column_accepts_a_schema_that_now_says_only_null(db):
    db.run([later({"type": "integer"}), record_msg("s", {"id": 1, "later": 7})])
    db.run([FIRST, record_msg("s", {"id": 2, "later": None})])
    assert db.columns("s")["later"] == "bigint"
    assert db.rows("s", "id, later", order="id") == [(1, 7), (2, None)]


WITH_NAME = schema_msg("s", {"id": {"type": "integer"}, "n": {"type": "string"}, "later": {"type": "null"}}, ["id"])


@pytest.mark.parametrize(
    "overrides",
    [{}, {"pseudonymize": {"s": ["n"]}, "pseudonymization_key": "k" * 32}],
    ids=["typed-path", "dict-path"],  # a pseudonymized stream takes the dict path
)
def test_a_value_in_a_null_only_property_is_refused_naming_it(db, overrides):
    with pytest.raises(RecordTypeError, match=r"stream 's', input line 2: property 'later' is integer, but the schema"):
        db.run([WITH_NAME, record_msg("s", {"id": 1, "n": "x", "later": 5})], **overrides)
