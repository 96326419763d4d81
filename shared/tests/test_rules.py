"""Tests of the dialect-neutral target rule engine: types, naming, flattening and table plans."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import subprocess
import sys
import textwrap

import pytest

from harborline_singer_shared.rules import (
    ColumnPlan,
    ColumnType,
    DialectRules,
    ExistingColumn,
    IncompatibleSchemaChangeError,
    Kind,
    MissingKeyColumnError,
    NameAllocator,
    SourceColumn,
    TablePlan,
    column_type_from_jsonschema,
    decode_source,
    encode_source,
    flatten_schema,
    make_getter,
    normalize_identifier,
    plan_table,
    widen,
)
from harborline_singer_shared.rules.naming import HASH_CHARS, shorten
from harborline_singer_shared.rules.types import is_nullable, join

INTEGER = ColumnType(Kind.INTEGER)
NUMBER = ColumnType(Kind.NUMBER)
BOOLEAN = ColumnType(Kind.BOOLEAN)
DATE = ColumnType(Kind.DATE)
TIME = ColumnType(Kind.TIME)
TIMESTAMP = ColumnType(Kind.TIMESTAMP)
STRING = ColumnType(Kind.STRING)
JSON_T = ColumnType(Kind.JSON)


def string(n: int | None = None) -> ColumnType:
    return ColumnType(Kind.STRING, n)


def digest(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8")).hexdigest()[:HASH_CHARS]


HASHED = re.compile(r"^(?P<prefix>.*)_(?P<hash>[0-9a-f]{8})$")
PG = DialectRules(max_identifier_bytes=63)
LOADED_AT = {"__loaded_at": TIMESTAMP}


def drop_lengths(t: ColumnType) -> ColumnType:
    return ColumnType(t.kind) if t.kind is Kind.STRING else t


NO_LENGTHS = DialectRules(max_identifier_bytes=63, normalize_type=drop_lengths)


# --------------------------------------------------------------------------------------------------------------
# JSON schema -> logical type
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prop", "expected"),
    [
        ({"type": "integer"}, INTEGER),
        ({"type": "number"}, NUMBER),
        ({"type": "boolean"}, BOOLEAN),
        ({"type": "string"}, STRING),
        ({"type": "object"}, JSON_T),
        ({"type": "object", "properties": {"a": {"type": "integer"}}}, JSON_T),
        ({"type": "array"}, JSON_T),
        ({"type": "array", "items": {"type": "integer"}}, JSON_T),
        ({"type": "string", "format": "date-time"}, TIMESTAMP),
        ({"type": "string", "format": "date"}, DATE),
        ({"type": "string", "format": "time"}, TIME),
        ({"type": "string", "format": "singer.decimal"}, NUMBER),
        ({"type": "string", "format": "x-singer.decimal"}, NUMBER),
        ({"type": "string", "format": "email"}, STRING),
        ({"type": "string", "format": "uri", "maxLength": 12}, string(12)),
        ({"type": "string", "maxLength": 10}, string(10)),
        ({"type": "string", "maxLength": "10"}, STRING),
        ({"type": "string", "format": "date-time", "maxLength": 10}, TIMESTAMP),
        ({"type": "something-unknown"}, JSON_T),
    ],
)
def test_every_json_type_and_format(prop, expected):
    result = column_type_from_jsonschema(prop)
    assert result == expected
    assert result.kind is expected.kind
    assert result.max_length == expected.max_length


@pytest.mark.parametrize(
    ("prop", "expected"),
    [
        ({"type": ["integer", "null"]}, INTEGER),
        ({"type": ["null", "integer"]}, INTEGER),
        ({"type": ["number", "null"]}, NUMBER),
        ({"type": ["boolean", "null"]}, BOOLEAN),
        ({"type": ["string", "null"]}, STRING),
        ({"type": ["null", "string"], "maxLength": 7}, string(7)),
        ({"type": ["string", "null"], "format": "date-time"}, TIMESTAMP),
        ({"type": ["null", "string"], "format": "date"}, DATE),
        ({"type": ["string", "null"], "format": "time"}, TIME),
        ({"type": ["string", "null"], "format": "singer.decimal"}, NUMBER),
        ({"type": ["object", "null"]}, JSON_T),
        ({"type": ["array", "null"]}, JSON_T),
        ({"type": ["integer"]}, INTEGER),
    ],
)
def test_nullable_type_lists_map_like_the_plain_type(prop, expected):
    assert column_type_from_jsonschema(prop) == expected


@pytest.mark.parametrize(
    ("prop", "expected"),
    [
        # type lists
        ({"type": ["integer", "number"]}, NUMBER),
        ({"type": ["number", "integer", "null"]}, NUMBER),
        ({"type": ["integer", "string"]}, STRING),
        ({"type": ["string", "integer"]}, STRING),
        ({"type": ["number", "string"]}, STRING),
        ({"type": ["boolean", "string"]}, STRING),
        ({"type": ["boolean", "integer"]}, STRING),
        ({"type": ["boolean", "number", "null"]}, STRING),
        ({"type": ["integer", "object"]}, JSON_T),
        ({"type": ["string", "array"]}, JSON_T),
        ({"type": ["integer", "number", "string", "null"]}, STRING),
        # anyOf / oneOf
        ({"anyOf": [{"type": "integer"}, {"type": "number"}]}, NUMBER),
        ({"oneOf": [{"type": "number"}, {"type": "integer"}]}, NUMBER),
        ({"anyOf": [{"type": "integer"}, {"type": "string"}]}, STRING),
        ({"oneOf": [{"type": "string"}, {"type": "integer"}]}, STRING),
        (
            {"anyOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}]},
            TIMESTAMP,
        ),
        (
            {"oneOf": [{"type": "string", "format": "date-time"}, {"type": "string", "format": "date"}]},
            TIMESTAMP,
        ),
        (
            {"anyOf": [{"type": "string", "format": "date"}, {"type": "null"}, {"type": "string", "format": "date"}]},
            DATE,
        ),
        ({"anyOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "time"}]}, STRING),
        ({"anyOf": [{"type": "string", "format": "time"}, {"type": "integer"}]}, STRING),
        ({"anyOf": [{"type": "string", "format": "date-time"}, {"type": "integer"}]}, STRING),
        ({"anyOf": [{"type": "string", "format": "singer.decimal"}, {"type": "integer"}]}, NUMBER),
        ({"anyOf": [{"type": "integer"}, {"type": "null"}]}, INTEGER),
        ({"anyOf": [{"type": "null"}, {"type": "string", "format": "date-time"}]}, TIMESTAMP),
        ({"anyOf": [{"type": "integer"}, {"type": "object"}]}, JSON_T),
        ({"anyOf": [{"type": "object", "properties": {"a": {"type": "integer"}}}, {"type": "null"}]}, JSON_T),
        ({"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}, JSON_T),
        ({"anyOf": [{"type": "string", "format": "date"}, {"type": "array"}]}, JSON_T),
        ({"anyOf": [{"type": "boolean"}, {"type": ["object", "null"]}]}, JSON_T),
        ({"anyOf": [{"type": "integer"}, {"properties": {"a": {"type": "integer"}}}]}, JSON_T),
        # nested unions
        ({"anyOf": [{"anyOf": [{"type": "integer"}, {"type": "null"}]}, {"type": "number"}]}, NUMBER),
        ({"anyOf": [{"oneOf": [{"type": "integer"}]}, {"type": "array"}]}, JSON_T),
        # string lengths in unions: the longest (or unbounded) wins
        ({"anyOf": [{"type": "string", "maxLength": 5}, {"type": "string", "maxLength": 10}]}, string(10)),
        ({"anyOf": [{"type": "string", "maxLength": 10}, {"type": "string", "maxLength": 5}]}, string(10)),
        ({"anyOf": [{"type": "string", "maxLength": 5}, {"type": "string"}]}, STRING),
        ({"anyOf": [{"type": "string"}, {"type": "string", "maxLength": 5}]}, STRING),
    ],
)
def test_unions_take_the_narrowest_covering_type(prop, expected):
    assert column_type_from_jsonschema(prop) == expected


@pytest.mark.parametrize(
    "prop",
    [
        {},
        {"description": "anything"},
        {"properties": {"a": {"type": "integer"}}},
        {"anyOf": [{}, {"type": "null"}]},
    ],
)
def test_untyped_properties_are_json(prop):
    assert column_type_from_jsonschema(prop) == JSON_T


@pytest.mark.parametrize(
    "prop",
    [
        {"type": "null"},
        {"type": ["null"]},
        {"anyOf": [{"type": "null"}]},
        {"oneOf": [{"type": "null"}]},
    ],
)
def test_only_null_is_a_null_column_that_any_type_may_widen_later(prop):
    null = column_type_from_jsonschema(prop)
    assert null == ColumnType(Kind.NULL)
    for kind in Kind:
        if kind is not Kind.NULL:
            assert widen("s", "c", null, ColumnType(kind)) == ColumnType(kind)
    # and a property declared only null later fits whatever column it already has
    assert widen("s", "c", ColumnType(Kind.INTEGER), null) == ColumnType(Kind.INTEGER)


def test_union_branches_do_not_lose_max_length_of_single_string():
    assert column_type_from_jsonschema({"anyOf": [{"type": "string", "maxLength": 3}, {"type": "null"}]}) == string(3)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (INTEGER, NUMBER, NUMBER),
        (NUMBER, INTEGER, NUMBER),
        (DATE, TIMESTAMP, TIMESTAMP),
        (TIMESTAMP, DATE, TIMESTAMP),
        (INTEGER, STRING, STRING),
        (BOOLEAN, INTEGER, STRING),
        (DATE, TIME, STRING),
        (TIME, TIMESTAMP, STRING),
        (INTEGER, JSON_T, JSON_T),
        (JSON_T, STRING, JSON_T),
        (INTEGER, INTEGER, INTEGER),
    ],
)
def test_join_is_symmetric_and_narrowest(a, b, expected):
    assert join(a, b) == expected
    assert join(b, a) == expected


@pytest.mark.parametrize(
    ("prop", "nullable"),
    [
        ({}, True),
        ({"type": "null"}, True),
        ({"type": ["integer", "null"]}, True),
        ({"type": "integer"}, False),
        ({"type": ["integer"]}, False),
        ({"anyOf": [{"type": "integer"}, {"type": "null"}]}, True),
        ({"anyOf": [{"type": "integer"}, {"type": "string"}]}, False),
    ],
)
def test_is_nullable(prop, nullable):
    assert is_nullable(prop) is nullable


def test_column_type_str():
    assert str(string(10)) == "string(10)"
    assert str(STRING) == "string"
    assert str(INTEGER) == "integer"
    assert str(TIMESTAMP) == "timestamp"
    assert str(ColumnType(Kind.INTEGER, 4)) == "integer"


# --------------------------------------------------------------------------------------------------------------
# widen()
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (INTEGER, NUMBER),
        (INTEGER, STRING),
        (NUMBER, STRING),
        (BOOLEAN, STRING),
        (DATE, TIMESTAMP),
        (DATE, STRING),
        (TIMESTAMP, STRING),
        (TIME, STRING),
        (string(5), string(10)),
        (string(5), STRING),
    ],
)
def test_allowed_widenings_return_the_new_type(old, new):
    assert widen("s", "c", old, new) == new


@pytest.mark.parametrize("t", [INTEGER, NUMBER, BOOLEAN, DATE, TIME, TIMESTAMP, STRING, string(5), JSON_T])
def test_same_type_is_unchanged(t):
    assert widen("s", "c", t, t) == t


@pytest.mark.parametrize("new", [INTEGER, NUMBER, BOOLEAN, DATE, TIME, TIMESTAMP, STRING, string(5), JSON_T])
def test_anything_into_json_column_stays_json(new):
    assert widen("s", "c", JSON_T, new) == JSON_T


@pytest.mark.parametrize(
    ("old", "new", "what"),
    [
        (NUMBER, INTEGER, "narrowing"),
        (STRING, INTEGER, "narrowing"),
        (STRING, NUMBER, "narrowing"),
        (STRING, BOOLEAN, "narrowing"),
        (STRING, DATE, "narrowing"),
        (STRING, TIMESTAMP, "narrowing"),
        (STRING, TIME, "narrowing"),
        (TIMESTAMP, DATE, "narrowing"),
        (string(10), string(5), "narrowing"),
        (STRING, string(5), "narrowing"),
        (BOOLEAN, INTEGER, "incompatible"),
        (INTEGER, BOOLEAN, "incompatible"),
        (DATE, TIME, "incompatible"),
        (TIME, TIMESTAMP, "incompatible"),
        (BOOLEAN, NUMBER, "incompatible"),
        (INTEGER, DATE, "incompatible"),
        (INTEGER, JSON_T, "incompatible"),
        (STRING, JSON_T, "incompatible"),
        (BOOLEAN, JSON_T, "incompatible"),
        (TIMESTAMP, JSON_T, "incompatible"),
    ],
)
def test_refused_changes_raise_with_a_precise_message(old, new, what):
    with pytest.raises(IncompatibleSchemaChangeError) as info:
        widen("orders", "total_col", old, new)
    err = info.value
    assert isinstance(err, ValueError)
    assert (err.stream, err.column, err.old, err.new) == ("orders", "total_col", old, new)
    msg = str(err)
    assert "'orders'" in msg
    assert "'total_col'" in msg
    assert f"is {old} " in msg
    assert f"asks for {new}:" in msg
    article = {"narrowing": "a", "incompatible": "an"}
    assert f"{article[what]} {what} type change" in msg
    other = "incompatible" if what == "narrowing" else "narrowing"
    assert f"{other} type change" not in msg


def test_string_length_narrowing_message_shows_lengths():
    with pytest.raises(IncompatibleSchemaChangeError, match=r"is string\(10\) .*asks for string\(5\).*narrowing"):
        widen("s", "name", string(10), string(5))


# --------------------------------------------------------------------------------------------------------------
# naming
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("name", "name"),
        ("Name", "name"),
        ("NAME", "name"),
        ("camelCaseName", "camelcasename"),
        ("with space", "with_space"),
        ("a-b.c/d", "a_b_c_d"),
        ("dollar$sign", "dollar_sign"),
        ("already_ok_123", "already_ok_123"),
        ("__private", "__private"),
        ("1abc", "_1abc"),
        ("9", "_9"),
        ("", "_"),
        ("café", "caf_"),
        ("Ünïcödé", "_n_c_d_"),
        ("名前", "__"),
        ("-", "_"),
        ("a\x00b", "a_b"),
    ],
)
def test_normalize_identifier(raw, expected):
    assert normalize_identifier(raw) == expected


@pytest.mark.parametrize("raw", ["Name", "1abc", "", "café", "名前", "a b-c", "x" * 200])
def test_normalize_identifier_output_is_always_valid_and_idempotent(raw):
    out = normalize_identifier(raw)
    assert re.fullmatch(r"[a-z_][a-z0-9_]*", out)
    assert normalize_identifier(out) == out


def test_shorten_keeps_names_that_fit():
    assert shorten("a" * 63, "src", 63) == "a" * 63
    assert shorten("short", "src", 63) == "short"


def test_shorten_long_name_is_prefix_plus_hash_of_source():
    name = "a" * 100
    out = shorten(name, "the-source", 63)
    assert len(out.encode("utf-8")) == 63
    assert out == "a" * (63 - HASH_CHARS - 1) + "_" + digest("the-source")
    m = HASHED.match(out)
    assert m
    assert name.startswith(m["prefix"])


def test_shorten_is_deterministic_and_boundary_exact():
    assert shorten("b" * 64, "s", 63) == shorten("b" * 64, "s", 63)
    assert len(shorten("b" * 64, "s", 63)) == 63
    assert shorten("b" * 30, "s", 20) == "b" * 11 + "_" + digest("s")


def test_shorten_long_names_sharing_a_prefix_differ():
    common = "customer_billing_address_" * 4
    a = shorten(common + "line_one", common + "line_one", 63)
    b = shorten(common + "line_two", common + "line_two", 63)
    assert a != b
    assert a[:54] == b[:54]
    assert len(a) == len(b) == 63


def test_allocator_keeps_case_variants_distinct():
    ids = NameAllocator(63).assign(["Name", "name"])
    assert ids["name"] == "name"
    assert ids["Name"] == "name_" + digest("Name")
    assert len(set(ids.values())) == 2


@pytest.mark.parametrize("order", list(itertools.permutations(["Name", "name", "NAME"])))
def test_exact_normal_name_wins_regardless_of_order(order):
    ids = NameAllocator(63).assign(list(order))
    assert ids["name"] == "name"
    assert ids["Name"] == "name_" + digest("Name")
    assert ids["NAME"] == "name_" + digest("NAME")
    assert list(ids) == list(order)


def test_allocator_returns_mapping_in_input_order_and_dedupes():
    ids = NameAllocator(63).assign(["b", "a", "b"])
    assert list(ids) == ["b", "a"]
    assert ids == {"b": "b", "a": "a"}


def test_existing_owners_keep_their_identifiers_across_runs():
    first = NameAllocator(63).assign(["Name"])
    assert first == {"Name": "name"}
    # The next run reads `name` back from the warehouse, owned by `Name`; the schema now also has `name`.
    later = NameAllocator(63, existing={"name": "Name"}).assign(["name", "Name"])
    assert later["Name"] == "name"
    assert later["name"] == "name_" + digest("name")


def test_existing_owner_keeps_even_a_non_normal_identifier():
    alloc = NameAllocator(63, existing={"legacy_col": "x"})
    assert alloc.assign(["x", "legacy_col"]) == {"x": "legacy_col", "legacy_col": "legacy_col_" + digest("legacy_col")}


def test_repeated_assign_calls_keep_earlier_answers():
    alloc = NameAllocator(63)
    assert alloc.assign(["Name"]) == {"Name": "name"}
    assert alloc.assign(["name", "Name"]) == {"name": "name_" + digest("name"), "Name": "name"}


def test_reserved_names_are_never_taken():
    ids = NameAllocator(63, reserved=["__loaded_at", "id"]).assign(["__loaded_at", "ID", "id", "other"])
    assert "__loaded_at" not in ids.values()
    assert "id" not in ids.values()
    assert ids["__loaded_at"] == "__loaded_at_" + digest("__loaded_at")
    assert ids["id"] == "id_" + digest("id")
    assert ids["ID"] == "id_" + digest("ID")
    assert ids["other"] == "other"


def test_hash_fallback_collision_uses_a_counter():
    # Both the plain and the hashed candidate are unavailable: the counter gives a third, still unique, name.
    reserved = ["name", "name_" + digest("Name")]
    ids = NameAllocator(63, reserved=reserved).assign(["Name"])
    assert ids["Name"] == "name_" + digest("Name") + "_2"


def test_long_name_collision_fallback_terminates_with_a_free_name():
    """Both candidates of a long name taken: allocation must still end with a free, in-limit identifier.

    Run in a subprocess so that a non-terminating allocator fails the test instead of hanging the suite.
    """
    code = textwrap.dedent(
        """
        from harborline_singer_shared.rules.naming import NameAllocator, _digest, shorten
        src = "x" * 80
        first = shorten(src, src, 63)
        second = shorten(src + "_" + _digest(src), src + "\\x00", 63)
        ids = NameAllocator(63, reserved=[first, second]).assign([src])
        got = ids[src]
        assert got not in (first, second), got
        assert len(got.encode()) <= 63, got
        print(got)
        """
    )
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail("NameAllocator.assign never terminates when both candidates of a long name are taken")
    assert done.returncode == 0, done.stderr


def test_long_names_are_shortened_and_distinct():
    common = "a_very_long_property_name_shared_by_several_sources_" * 2
    sources = [common + "one", common + "two", common + "three"]
    ids = NameAllocator(63).assign(sources)
    assert len(set(ids.values())) == 3
    for src, ident in ids.items():
        assert len(ident.encode("utf-8")) <= 63
        m = HASHED.match(ident)
        assert m
        assert m["hash"] == digest(src)
        assert src.startswith(m["prefix"])


def test_long_case_variants_get_distinct_in_limit_names():
    base = "z" * 70
    ids = NameAllocator(63).assign([base.upper(), base])
    assert ids[base] == shorten(base, base, 63)
    assert ids[base.upper()] != ids[base]
    assert all(len(i) <= 63 for i in ids.values())


def test_display_names_are_normalised_and_keys_are_identities():
    keys = [encode_source(["a", "b"]), encode_source(["a__b"])]
    display = {keys[0]: "a__b", keys[1]: "a__b"}
    ids = NameAllocator(63).assign(keys, display)
    # Both display as the exact-normal `a__b`; the tie is broken by the source key, so the first key wins.
    assert ids == {keys[0]: "a__b", keys[1]: "a__b_" + digest(keys[1])}
    assert len(set(ids.values())) == 2


NAMES = ["Name", "name", "NAME", "na me", "na-me", "1st", "_1st", "x" * 70, "X" * 70, "id"]


def test_allocation_is_deterministic_across_permutations():
    reference = NameAllocator(63, reserved=["__loaded_at"]).assign(NAMES)
    assert len(set(reference.values())) == len(NAMES)
    assert reference["name"] == "name"
    assert reference["id"] == "id"
    seen = 0
    for perm in itertools.islice(itertools.permutations(NAMES), 0, None, 9973):
        ids = NameAllocator(63, reserved=["__loaded_at"]).assign(list(perm))
        assert ids == reference
        seen += 1
    assert seen > 100
    assert NameAllocator(63, reserved=["__loaded_at"]).assign(list(reversed(NAMES))) == reference


def test_sanitised_collision_is_deterministic():
    for order in itertools.permutations(["na me", "na-me", "na_me"]):
        ids = NameAllocator(63).assign(list(order))
        assert ids["na_me"] == "na_me"
        assert ids["na me"] == "na_me_" + digest("na me")
        assert ids["na-me"] == "na_me_" + digest("na-me")


# --------------------------------------------------------------------------------------------------------------
# flattening
# --------------------------------------------------------------------------------------------------------------

DEEP = {
    "properties": {
        "id": {"type": "integer"},
        "a": {
            "type": "object",
            "properties": {
                "x": {"type": "integer"},
                "b": {
                    "type": ["object", "null"],
                    "properties": {
                        "y": {"type": "string"},
                        "c": {"type": "object", "properties": {"z": {"type": "boolean"}}},
                    },
                },
            },
        },
        "tags": {"type": "array", "items": {"type": "string"}},
        "free": {"type": "object"},
        "empty": {"type": "object", "properties": {}},
        "mixed": {"type": ["object", "string"], "properties": {"k": {"type": "integer"}}},
        "untyped_obj": {"properties": {"k": {"type": "integer"}}},
    }
}


def test_flatten_nested_objects_at_any_depth():
    leaves = flatten_schema(DEEP)
    assert [leaf.path for leaf in leaves] == [
        ("id",),
        ("a", "x"),
        ("a", "b", "y"),
        ("a", "b", "c", "z"),
        ("tags",),
        ("free",),
        ("empty",),
        ("mixed",),
        ("untyped_obj",),
    ]
    by_name = {leaf.source_name: leaf for leaf in leaves}
    assert by_name["a__b__c__z"].type == BOOLEAN
    assert by_name["a__b__y"].type == STRING
    assert by_name["a__x"].type == INTEGER
    assert by_name["id"].type == INTEGER
    for name in ("tags", "free", "empty", "mixed", "untyped_obj"):
        assert by_name[name].type == JSON_T, name
    assert by_name["a__b__c__z"].schema == {"type": "boolean"}
    assert all(isinstance(leaf, SourceColumn) for leaf in leaves)


def test_flatten_depth_three():
    schema = {
        "properties": {
            "a": {
                "type": "object",
                "properties": {"b": {"type": "object", "properties": {"c": {"type": "number"}}}},
            }
        }
    }
    leaves = flatten_schema(schema)
    assert [(leaf.source_name, leaf.type) for leaf in leaves] == [("a__b__c", NUMBER)]


def test_nullable_objects_are_flattened():
    schema = {"properties": {"o": {"type": ["null", "object"], "properties": {"p": {"type": ["integer", "null"]}}}}}
    assert [(leaf.path, leaf.type) for leaf in flatten_schema(schema)] == [(("o", "p"), INTEGER)]


@pytest.mark.parametrize(
    ("max_depth", "expected"),
    [
        (0, [("id", INTEGER), ("a", JSON_T)]),
        (1, [("id", INTEGER), ("a__x", INTEGER), ("a__b", JSON_T)]),
        (2, [("id", INTEGER), ("a__x", INTEGER), ("a__b__y", STRING), ("a__b__c", JSON_T)]),
        (3, [("id", INTEGER), ("a__x", INTEGER), ("a__b__y", STRING), ("a__b__c__z", BOOLEAN)]),
        (None, [("id", INTEGER), ("a__x", INTEGER), ("a__b__y", STRING), ("a__b__c__z", BOOLEAN)]),
    ],
)
def test_flatten_respects_max_depth(max_depth, expected):
    schema = {"properties": {k: DEEP["properties"][k] for k in ("id", "a")}}
    leaves = flatten_schema(schema, max_depth=max_depth)
    assert [(leaf.source_name, leaf.type) for leaf in leaves] == expected


def test_flatten_empty_and_non_dict_properties():
    assert flatten_schema({}) == []
    assert flatten_schema({"properties": None}) == []
    leaves = flatten_schema({"properties": {"weird": True}})
    assert [(leaf.path, leaf.type) for leaf in leaves] == [(("weird",), JSON_T)]


def test_make_getter_top_level():
    get = make_getter(("id",))
    assert get({"id": 5}) == 5
    assert get({}) is None
    assert get({"id": None}) is None


def test_make_getter_nested():
    get = make_getter(("a", "b", "c"))
    assert get({"a": {"b": {"c": 3}}}) == 3
    assert get({"a": {"b": {"c": {"d": 1}}}}) == {"d": 1}
    assert get({"a": {"b": {"c": None}}}) is None
    assert get({"a": {"b": {}}}) is None
    assert get({"a": {"b": None}}) is None
    assert get({"a": None}) is None
    assert get({"a": {}}) is None
    assert get({}) is None
    assert get({"a": "not a dict"}) is None
    assert get({"a": {"b": [1, 2]}}) is None
    assert get({"a": {"b": 7}}) is None
    assert get({"a": ["b"]}) is None


def test_make_getter_with_separator_in_key_is_not_confused():
    get = make_getter(("a", "b"))
    assert get({"a__b": 1}) is None
    assert make_getter(("a__b",))({"a__b": 1}) == 1


# --------------------------------------------------------------------------------------------------------------
# table plans
# --------------------------------------------------------------------------------------------------------------

SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "Region": {"type": "string", "maxLength": 5},
        "customer": {"type": "object", "properties": {"id": {"type": "integer"}, "name": {"type": "string"}}},
        "amount": {"type": ["number", "null"]},
    },
}


def test_encode_decode_source_round_trip():
    for path in [("id",), ("a", "b", "c"), ('we"ird', "é", "a__b", ", ]"), ("",)]:
        encoded = encode_source(path)
        assert json.loads(encoded) == list(path)
        assert decode_source(encoded) == path
    assert encode_source(["é"]) == '["é"]'


@pytest.mark.parametrize(
    "comment",
    [None, "", "a normal human comment", "[]", "[1, 2]", '["a", 1]', '{"a": 1}', '"a"', "[", "null", "42"],
)
def test_decode_foreign_comments_is_none(comment):
    assert decode_source(comment) is None


def test_create_plan():
    plan = plan_table("orders", SCHEMA, ["id"], None, PG, system_columns=LOADED_AT)
    assert isinstance(plan, TablePlan)
    assert plan.stream == "orders"
    assert plan.create is True
    assert [(c.name, c.type, c.is_key) for c in plan.columns] == [
        ("id", INTEGER, True),
        ("region", string(5), False),
        ("customer__id", INTEGER, False),
        ("customer__name", STRING, False),
        ("amount", NUMBER, False),
        ("__loaded_at", TIMESTAMP, False),
    ]
    assert plan.key_columns == ["id"]
    assert plan.add == []
    assert plan.widen == []
    assert plan.kept == []
    assert plan.columns[-1].source is None
    assert plan.columns[-1].comment is None
    assert [c.name for c in plan.source_columns] == ["id", "region", "customer__id", "customer__name", "amount"]


def test_column_comments_hold_the_source_path():
    plan = plan_table("orders", SCHEMA, ["id"], None, PG, system_columns=LOADED_AT)
    comments = {c.name: c.comment for c in plan.columns}
    assert comments == {
        "id": '["id"]',
        "region": '["Region"]',
        "customer__id": '["customer", "id"]',
        "customer__name": '["customer", "name"]',
        "amount": '["amount"]',
        "__loaded_at": None,
    }
    for col in plan.source_columns:
        assert col.source is not None
        assert decode_source(col.comment) == col.source.path


def test_key_columns_in_declared_order():
    schema = {"properties": {"a": {"type": "integer"}, "B": {"type": "string"}, "c": {"type": "integer"}}}
    plan = plan_table("s", schema, ["c", "B", "a"], None, PG, system_columns={})
    assert plan.key_columns == ["c", "b", "a"]
    assert [c.name for c in plan.columns if c.is_key] == ["a", "b", "c"]


def test_missing_key_property_raises():
    with pytest.raises(MissingKeyColumnError, match=r"'orders'.*\['nope'\]"):
        plan_table("orders", SCHEMA, ["id", "nope"], None, PG, system_columns=LOADED_AT)


def test_nested_leaf_is_not_a_key_property():
    with pytest.raises(MissingKeyColumnError):
        plan_table("orders", SCHEMA, ["customer"], None, PG, system_columns=LOADED_AT)


def test_missing_key_on_existing_table_raises():
    existing = [ExistingColumn("id", INTEGER, ("id",))]
    with pytest.raises(MissingKeyColumnError):
        plan_table("orders", SCHEMA, ["missing"], existing, PG, system_columns=LOADED_AT)


def test_existing_table_add_widen_keep():
    existing = [
        ExistingColumn("id", INTEGER, ("id",)),
        ExistingColumn("region", string(3), ("Region",)),
        ExistingColumn("amount", INTEGER, ("amount",)),
        ExistingColumn("old_col", BOOLEAN, ("old_col",)),
        ExistingColumn("legacy", STRING, None),
        ExistingColumn("__loaded_at", TIMESTAMP, None),
    ]
    plan = plan_table("orders", SCHEMA, ["id"], existing, PG, system_columns=LOADED_AT)
    assert plan.create is False
    assert [(c.name, c.type) for c in plan.add] == [("customer__id", INTEGER), ("customer__name", STRING)]
    assert [(c.name, c.type, old) for c, old in plan.widen] == [
        ("region", string(5), string(3)),
        ("amount", NUMBER, INTEGER),
    ]
    assert [c.name for c in plan.kept] == ["old_col", "legacy"]
    assert plan.kept[0] == existing[3]
    assert [(c.name, c.type) for c in plan.columns] == [
        ("id", INTEGER),
        ("region", string(5)),
        ("customer__id", INTEGER),
        ("customer__name", STRING),
        ("amount", NUMBER),
        ("__loaded_at", TIMESTAMP),
    ]
    assert plan.key_columns == ["id"]


def test_existing_table_missing_system_column_is_added():
    existing = [ExistingColumn("id", INTEGER, ("id",))]
    schema = {"properties": {"id": {"type": "integer"}}}
    plan = plan_table("s", schema, ["id"], existing, PG, system_columns=LOADED_AT)
    assert [(c.name, c.type, c.source) for c in plan.add] == [("__loaded_at", TIMESTAMP, None)]
    assert plan.widen == []
    assert plan.kept == []


def test_existing_table_unchanged_plan_is_empty():
    existing = [ExistingColumn("id", INTEGER, ("id",)), ExistingColumn("__loaded_at", TIMESTAMP, None)]
    plan = plan_table("s", {"properties": {"id": {"type": "integer"}}}, ["id"], existing, PG, system_columns=LOADED_AT)
    assert (plan.add, plan.widen, plan.kept) == ([], [], [])
    assert [c.name for c in plan.columns] == ["id", "__loaded_at"]


def test_existing_json_column_absorbs_any_type():
    existing = [ExistingColumn("v", JSON_T, ("v",))]
    plan = plan_table("s", {"properties": {"v": {"type": "integer"}}}, [], existing, PG, system_columns={})
    assert plan.widen == []
    assert plan.columns[0].type == JSON_T


def test_existing_owner_keeps_its_column_and_newcomer_is_hashed():
    existing = [ExistingColumn("name", STRING, ("Name",))]
    schema = {"properties": {"name": {"type": "string"}, "Name": {"type": "string"}}}
    plan = plan_table("s", schema, [], existing, PG, system_columns={})
    by_source = {c.source.path: c.name for c in plan.source_columns if c.source}
    assert by_source[("Name",)] == "name"
    assert by_source[("name",)] == "name_" + digest(encode_source(["name"]))
    assert [c.name for c in plan.add] == [by_source[("name",)]]


def test_system_and_reserved_names_are_not_taken_by_sources():
    schema = {"properties": {"__loaded_at": {"type": "string"}, "_sdc_x": {"type": "integer"}}}
    plan = plan_table("s", schema, [], None, PG, system_columns=LOADED_AT, reserved=["_sdc_x"])
    names = [c.name for c in plan.columns]
    assert names.count("__loaded_at") == 1
    assert "_sdc_x" not in names
    assert plan.columns[-1].name == "__loaded_at"
    assert plan.columns[-1].source is None
    assert len(set(names)) == len(names)


def test_refused_change_raises_before_returning_a_plan():
    existing = [
        ExistingColumn("id", INTEGER, ("id",)),
        ExistingColumn("amount", NUMBER, ("amount",)),
        ExistingColumn("note", STRING, ("note",)),
    ]
    schema = {
        "properties": {
            "id": {"type": "integer"},
            "extra": {"type": "string"},
            "amount": {"type": "integer"},
            "note": {"type": "string"},
        }
    }
    with pytest.raises(IncompatibleSchemaChangeError) as info:
        plan_table("orders", schema, ["id"], existing, PG, system_columns=LOADED_AT)
    assert info.value.stream == "orders"
    assert info.value.column == "amount"
    assert (info.value.old, info.value.new) == (NUMBER, INTEGER)
    assert "narrowing" in str(info.value)
    # The inputs were not touched.
    assert existing[1] == ExistingColumn("amount", NUMBER, ("amount",))


def test_refused_string_length_narrowing_in_plan():
    existing = [ExistingColumn("s", string(10), ("s",))]
    schema = {"properties": {"s": {"type": "string", "maxLength": 5}}}
    with pytest.raises(IncompatibleSchemaChangeError, match="narrowing"):
        plan_table("t", schema, [], existing, PG, system_columns={})


def test_dialect_normalize_type_is_used():
    existing = [ExistingColumn("s", string(10), ("s",))]
    schema = {"properties": {"s": {"type": "string", "maxLength": 5}, "n": {"type": "string", "maxLength": 3}}}
    plan = plan_table("t", schema, [], existing, NO_LENGTHS, system_columns={})
    assert plan.widen == []
    assert [(c.name, c.type) for c in plan.columns] == [("s", STRING), ("n", STRING)]
    assert [(c.name, c.type) for c in plan.add] == [("n", STRING)]


def test_dialect_normalize_type_on_create_and_system_columns():
    def everything_text(t: ColumnType) -> ColumnType:
        return STRING if t.kind is not Kind.JSON else t

    rules = DialectRules(max_identifier_bytes=63, normalize_type=everything_text)
    plan = plan_table("t", SCHEMA, ["id"], None, rules, system_columns=LOADED_AT)
    assert {c.type for c in plan.columns} == {STRING}


def test_plan_uses_dialect_identifier_limit():
    long = "p" * 40
    schema = {"properties": {long: {"type": "integer"}, long.upper(): {"type": "integer"}}}
    rules = DialectRules(max_identifier_bytes=30)
    plan = plan_table("t", schema, [], None, rules, system_columns={})
    names = [c.name for c in plan.columns]
    assert all(len(n.encode()) <= 30 for n in names)
    assert len(set(names)) == 2
    assert names[0] == "p" * 21 + "_" + digest(encode_source([long]))


def test_plan_column_names_are_deterministic_for_property_order():
    props = {"Name": {"type": "string"}, "name": {"type": "string"}, "na me": {"type": "integer"}}
    results = set()
    for order in itertools.permutations(props):
        schema = {"properties": {k: props[k] for k in order}}
        plan = plan_table("t", schema, [], None, PG, system_columns=LOADED_AT)
        results.add(frozenset((c.source.path, c.name) for c in plan.source_columns if c.source))
    assert len(results) == 1
    (mapping,) = results
    assert (("name",), "name") in mapping


def test_second_run_reuses_comment_mapping():
    schema = {
        "properties": {"Name": {"type": "string"}, "o": {"type": "object", "properties": {"k": {"type": "integer"}}}}
    }
    first = plan_table("t", schema, [], None, PG, system_columns=LOADED_AT)
    existing = [ExistingColumn(c.name, c.type, decode_source(c.comment)) for c in first.columns]
    # The later schema adds `name`, which `Name` already owns.
    schema2 = {"properties": {"name": {"type": "string"}, **schema["properties"]}}
    second = plan_table("t", schema2, [], existing, PG, system_columns=LOADED_AT)
    by_source = {c.source.path: c.name for c in second.source_columns if c.source}
    assert by_source[("Name",)] == "name"
    assert by_source[("o", "k")] == "o__k"
    assert by_source[("name",)] != "name"
    assert [c.name for c in second.add] == [by_source[("name",)]]
    assert second.widen == []
    assert second.kept == []


def test_column_plan_comment():
    leaf = SourceColumn(("a", "b"), {"type": "integer"}, INTEGER)
    assert ColumnPlan("a__b", INTEGER, leaf).comment == '["a", "b"]'
    assert ColumnPlan("__loaded_at", TIMESTAMP, None).comment is None
    assert leaf.source_name == "a__b"


def test_property_named_like_an_existing_system_column_does_not_take_it():
    existing = [ExistingColumn("id", INTEGER, ("id",)), ExistingColumn("__loaded_at", TIMESTAMP, None)]
    schema = {"properties": {"id": {"type": "integer"}, "__loaded_at": {"type": "string"}}}
    plan = plan_table("s", schema, ["id"], existing, PG, system_columns=LOADED_AT)
    source_names = {c.source.path: c.name for c in plan.source_columns if c.source}
    assert source_names[("__loaded_at",)] == "__loaded_at_" + digest(encode_source(["__loaded_at"]))
    assert [(c.name, c.type) for c in plan.add] == [(source_names[("__loaded_at",)], STRING)]
    assert plan.widen == []
    system = plan.columns[-1]
    assert (system.name, system.type, system.source) == ("__loaded_at", TIMESTAMP, None)
