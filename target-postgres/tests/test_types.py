"""JSON schema type -> PostgreSQL column type, and the values read back exactly."""

from __future__ import annotations

import datetime
import json
from decimal import Decimal

import pytest
from tp_helpers import record_msg, schema_msg

UTC = datetime.UTC


def test_scalar_type_mapping_and_values(db):
    props = {
        "id": {"type": "integer"},
        "n": {"type": ["number", "null"]},
        "s": {"type": "string"},
        "ts": {"type": "string", "format": "date-time"},
        "d": {"type": "string", "format": "date"},
        "tm": {"type": "string", "format": "time"},
        "b": {"type": "boolean"},
        "arr": {"type": "array", "items": {"type": "integer"}},
        "free": {"type": "object"},
        "anything": {},
    }
    db.run(
        [
            schema_msg("types", props, ["id"]),
            record_msg(
                "types",
                {
                    "id": 9007199254740993,  # > 2**53: must not pass through a float
                    "n": 1.5,
                    "s": "text",
                    "ts": "2024-01-01T10:00:00+02:00",
                    "d": "2024-02-29",
                    "tm": "23:59:58",
                    "b": True,
                    "arr": [1, 2, 3],
                    "free": {"k": [1, {"x": None}]},
                    "anything": "a string in an untyped property",
                },
            ),
        ]
    )
    assert db.columns("types") == {
        "id": "bigint",
        "n": "numeric",
        "s": "text",
        "ts": "timestamp with time zone",
        "d": "date",
        "tm": "time without time zone",
        "b": "boolean",
        "arr": "jsonb",
        "free": "jsonb",
        "anything": "jsonb",
        "__loaded_at": "timestamp with time zone",
    }
    assert db.dicts("types") == [
        {
            "id": 9007199254740993,
            "n": Decimal("1.5"),
            "s": "text",
            "ts": datetime.datetime(2024, 1, 1, 8, 0, tzinfo=UTC),
            "d": datetime.date(2024, 2, 29),
            "tm": datetime.time(23, 59, 58),
            "b": True,
            "arr": [1, 2, 3],
            "free": {"k": [1, {"x": None}]},
            "anything": "a string in an untyped property",
        }
    ]


def test_number_is_exact(db):
    """Numbers are parsed as decimals, never floats: the raw JSON text comes back digit for digit."""
    schema = json.dumps(schema_msg("nums", {"id": {"type": "integer"}, "n": {"type": "number"}}, ["id"]))
    raw = [
        "12345678901234567890.123456789012",
        "0.1",
        "-0.000000000000000000000000000001",
        "3",
        "1E+2",
        "2.50",
    ]
    lines = [schema] + [
        '{"type": "RECORD", "stream": "nums", "record": {"id": %d, "n": %s}}' % (i, text)  # noqa: UP031
        for i, text in enumerate(raw)
    ]
    db.run("\n".join(lines) + "\n")
    got = dict(db.rows("nums", "id, n"))
    for i, text in enumerate(raw):
        assert got[i] == Decimal(text), text
    assert str(got[0]) == "12345678901234567890.123456789012"
    assert str(got[1]) == "0.1"
    assert db.query(f'SELECT n::text FROM "{db.schema}".nums WHERE id = 5') == [("2.50",)]


def test_timestamp_offsets_are_honoured(db):
    db.run(
        [
            schema_msg("ts", {"id": {"type": "integer"}, "at": {"type": "string", "format": "date-time"}}, ["id"]),
            record_msg("ts", {"id": 1, "at": "2024-01-01T10:00:00+02:00"}),
            record_msg("ts", {"id": 2, "at": "2024-01-01T08:00:00Z"}),
            record_msg("ts", {"id": 3, "at": "2024-01-01T03:00:00-05:00"}),
            record_msg("ts", {"id": 4, "at": "2024-06-30T23:59:59.123456+00:00"}),
        ]
    )
    rows = dict(db.rows("ts", "id, at"))
    eight = datetime.datetime(2024, 1, 1, 8, 0, tzinfo=UTC)
    assert rows[1] == rows[2] == rows[3] == eight
    assert rows[4] == datetime.datetime(2024, 6, 30, 23, 59, 59, 123456, tzinfo=UTC)
    assert db.query(f'SELECT count(DISTINCT at) FROM "{db.schema}".ts WHERE id <= 3') == [(1,)]


@pytest.mark.parametrize(
    ("prop", "pg_type", "value", "expected"),
    [
        ({"type": ["integer", "number"]}, "numeric", 2, Decimal(2)),
        ({"type": ["integer", "string"]}, "text", 7, "7"),
        ({"type": ["integer", "string"]}, "text", "seven", "seven"),
        ({"type": ["boolean", "string", "null"]}, "text", "yes", "yes"),
        ({"type": ["boolean", "string", "null"]}, "text", True, "true"),
        ({"type": ["number", "string"]}, "text", 0.25, "0.25"),
        ({"anyOf": [{"type": "integer"}, {"type": "number"}, {"type": "null"}]}, "numeric", 1.25, Decimal("1.25")),
        ({"anyOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}]},
         "timestamp with time zone", "2024-01-01T00:00:00Z", datetime.datetime(2024, 1, 1, tzinfo=UTC)),
        ({"anyOf": [{"type": "string", "format": "date-time"}, {"type": "string"}]}, "text", "soon", "soon"),
        ({"type": ["object", "string"]}, "jsonb", {"a": 1}, {"a": 1}),
        ({"type": ["array", "integer", "null"]}, "jsonb", 5, 5),
        ({"anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "string"}]}, "jsonb", "x", "x"),
        ({"type": ["null", "object"], "properties": {"a": {"type": "integer"}, "b": {"type": "string"}}},
         None, None, None),
    ],
)  # fmt: skip
def test_unions(db, prop, pg_type, value, expected):
    db.run([schema_msg("u", {"id": {"type": "integer"}, "v": prop}, ["id"]), record_msg("u", {"id": 1, "v": value})])
    columns = db.columns("u")
    if pg_type is None:  # a nullable object with properties is still flattened
        assert "v__a" in columns
        assert "v__b" in columns
        assert columns["v__a"] == "bigint"
        return
    assert columns["v"] == pg_type
    assert db.rows("u", "v") == [(expected,)]


def test_nested_objects_flatten_three_levels(db):
    props = {
        "id": {"type": "integer"},
        "a": {
            "type": "object",
            "properties": {
                "x": {"type": "integer"},
                "b": {
                    "type": ["object", "null"],
                    "properties": {
                        "y": {"type": "string"},
                        "c": {
                            "type": "object",
                            "properties": {"z": {"type": "boolean"}, "tags": {"type": "array"}},
                        },
                    },
                },
            },
        },
    }
    db.run(
        [
            schema_msg("nest", props, ["id"]),
            record_msg("nest", {"id": 1, "a": {"x": 1, "b": {"y": "deep", "c": {"z": True, "tags": ["t1", "t2"]}}}}),
            record_msg("nest", {"id": 2, "a": {"x": 2, "b": None}}),
            record_msg("nest", {"id": 3}),
        ]
    )
    assert db.columns("nest") == {
        "id": "bigint",
        "a__x": "bigint",
        "a__b__y": "text",
        "a__b__c__z": "boolean",
        "a__b__c__tags": "jsonb",
        "__loaded_at": "timestamp with time zone",
    }
    assert db.comments("nest")["a__b__c__z"] == '["a", "b", "c", "z"]'
    assert db.rows("nest", "id, a__x, a__b__y, a__b__c__z, a__b__c__tags") == [
        (1, 1, "deep", True, ["t1", "t2"]),
        (2, 2, None, None, None),
        (3, None, None, None, None),
    ]


def test_flattening_max_depth_keeps_deeper_objects_as_jsonb(db):
    props = {
        "id": {"type": "integer"},
        "a": {"type": "object", "properties": {"b": {"type": "object", "properties": {"c": {"type": "integer"}}}}},
    }
    db.run(
        [schema_msg("d", props, ["id"]), record_msg("d", {"id": 1, "a": {"b": {"c": 3}}})],
        flattening_max_depth=1,
    )
    assert db.columns("d")["a__b"] == "jsonb"
    assert db.rows("d", "a__b") == [({"c": 3},)]


def test_nul_in_strings_and_json(db):
    db.run(
        [
            schema_msg(
                "nul",
                {"id": {"type": "integer"}, "s": {"type": "string"}, "j": {"type": "object"}, "a": {"type": "array"}},
                ["id"],
            ),
            record_msg("nul", {"id": 1, "s": "a\x00b", "j": {"k\x00": "v\x00", "n": [1, "\x00"]}, "a": ["\x00x"]}),
        ]
    )
    assert db.rows("nul", "s, j, a") == [("a\ufffdb", {"k\ufffd": "v\ufffd", "n": [1, "\ufffd"]}, ["\ufffdx"])]


def test_special_text_round_trips(db):
    """COPY text format escaping: tabs, newlines, backslashes, `\\N` and `\\.` look-alikes stay text."""
    values = ["tab\there", "new\nline", "cr\rlf", "back\\slash", "\\N", "\\.", "", " ", "end\\", "é\u2028\u00a0"]
    db.run(
        [schema_msg("txt", {"id": {"type": "integer"}, "s": {"type": "string"}}, ["id"])]
        + [record_msg("txt", {"id": i, "s": v}) for i, v in enumerate(values)]
        + [record_msg("txt", {"id": 99, "s": None})]
    )
    assert db.rows("txt", "id, s") == [*enumerate(values), (99, None)]
