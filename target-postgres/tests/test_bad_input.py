"""Bad and hostile input through the real CLI (`python -m harborline_target_postgres --config file`, input on stdin).

Error cases: non-zero exit, exactly one clear error line in stderr naming the stream (and `input line N`), no Python
traceback, and the table holds exactly what was committed before. Hostile-but-valid input loads correctly.
"""

from __future__ import annotations

import hashlib
import json
import re

import pytest
from tp_helpers import lines_of, record_msg, schema_msg, state_msg

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ \| (DEBUG|INFO|WARNING|ERROR|CRITICAL) +\| ")
SCHEMA = schema_msg("s", {"id": {"type": "integer"}, "v": {"type": "string"}}, ["id"])


def rec(i, v="x"):
    return record_msg("s", {"id": i, "v": v})


def assert_clean_failure(result, *, stream: str | None, line: int | None, also: tuple[str, ...] = ()) -> str:
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


def baseline(db):
    """Commit rows 1 and 2 first: each failing run must leave exactly these (plus what it committed itself)."""
    assert db.cli([SCHEMA, rec(1, "base"), rec(2, "base")]).returncode == 0
    return [(1, "base"), (2, "base")]


# -- error cases ---------------------------------------------------------------------------------------------------


def test_malformed_json_line(db):
    before = baseline(db)
    text = (
        lines_of([SCHEMA, rec(3), rec(4)])
        + '{"type": "RECORD", "stream": "s", "record": {"id": 5\n'
        + lines_of([rec(6)])
    )
    result = db.cli(text)
    assert_clean_failure(result, stream="s", line=4, also=("malformed JSON",))
    assert db.rows("s", "id, v") == before
    assert result.stdout == ""


def test_garbage_line_without_a_stream(db):
    before = baseline(db)
    result = db.cli(lines_of([SCHEMA, rec(3)]) + "this is not json\n")
    assert_clean_failure(result, stream=None, line=3, also=("malformed JSON",))
    assert db.rows("s", "id, v") == before


def test_record_before_schema(db):
    result = db.cli(lines_of([state_msg({"a": 1}), record_msg("early", {"id": 1}), schema_msg("early", {})]))
    assert_clean_failure(result, stream="early", line=2, also=("before its SCHEMA",))
    assert db.tables() == []


def test_record_violating_its_schema(db):
    before = baseline(db)
    messages = [SCHEMA, *[rec(i) for i in range(3, 10)], record_msg("s", {"id": "ten", "v": "x"}), rec(11)]
    result = db.cli(messages, batch_size_rows=5)
    error = assert_clean_failure(result, stream="s", line=9, also=("'id'", "integer"))
    assert "ten" not in error  # the value is never logged (it may be personal data)
    # The first batch (3..7) was committed before the bad record; 8 was pending and rolled back.
    assert db.rows("s", "id, v") == before + [(i, "x") for i in range(3, 8)]


@pytest.mark.parametrize(
    ("value", "got"),
    [('"12.5"', "string"), ("true", "boolean"), ('{"a": 1}', "object"), ("[1]", "array")],
)
def test_number_property_holding_another_json_kind(db, value, got):
    """Numbers travel as their JSON text (exact, no Decimal round trip): anything else is refused by name."""
    schema = schema_msg("n", {"id": {"type": "integer"}, "amt": {"type": ["number", "null"]}}, ["id"])
    good = [record_msg("n", {"id": 1, "amt": 1.5}), record_msg("n", {"id": 2, "amt": None})]
    bad = '{"type": "RECORD", "stream": "n", "record": {"id": 3, "amt": %s}}' % value  # noqa: UP031
    result = db.cli([schema, *good, bad])
    error = assert_clean_failure(result, stream="n", line=4, also=("'amt'", f"is {got}", "schema says number"))
    assert value not in error


@pytest.mark.parametrize("position", ["first record", "inside a run of records"])
@pytest.mark.parametrize("value", ["2\n999\t3", "2\n\\.", "12abc"])
def test_decimal_string_that_is_not_a_decimal(db, position, value):
    """`singer.decimal` strings are checked as decimals: text with COPY's separators must never reach the table."""
    props = {"id": {"type": "integer"}, "amt": {"type": ["string", "null"], "format": "singer.decimal"}}
    schema = schema_msg("d", props, ["id"])
    good = [record_msg("d", {"id": i, "amt": "12.50"}) for i in (1, 2, 3)]
    bad = record_msg("d", {"id": 9, "amt": value})
    messages = [schema, bad, *good] if position == "first record" else [schema, *good, bad, *good]
    result = db.cli(messages, load_method="append-only")
    line = messages.index(bad) + 1
    assert_clean_failure(result, stream="d", line=line, also=("'amt'", "schema says number"))
    assert "d" not in db.tables() or db.count("d") == 0  # nothing of the batch was committed


def test_decimal_strings_load_exactly(db):
    props = {"id": {"type": "integer"}, "amt": {"type": ["string", "null"], "format": "singer.decimal"}}
    messages = [schema_msg("d", props, ["id"])]
    messages += [record_msg("d", {"id": i, "amt": a}) for i, a in enumerate(["12.50", "-0.001", None, "1E+3"])]
    db.run(messages)
    got = db.query(f'SELECT id, amt::text FROM "{db.schema}".d ORDER BY id')
    assert got == [(0, "12.50"), (1, "-0.001"), (2, None), (3, "1000")]


def test_null_number_key_is_a_missing_key(db):
    schema = schema_msg("nkey", {"id": {"type": ["number", "null"]}, "v": {"type": "string"}}, ["id"])
    ok = [record_msg("nkey", {"id": i + 0.5, "v": "x"}) for i in range(3)]
    result = db.cli([schema, *ok, record_msg("nkey", {"id": None, "v": "x"})])
    assert_clean_failure(result, stream="nkey", line=5, also=("key property", "'id'"))


def test_duplicate_key_in_an_append_only_load_into_a_keyed_table(db):
    """A table made by an upsert run keeps its primary key; an append-only run that repeats a key is refused by line."""
    assert db.cli([SCHEMA, rec(1), rec(2)]).returncode == 0
    result = db.cli([SCHEMA, rec(3), rec(4), rec(2)], load_method="append-only")
    error = assert_clean_failure(result, stream="s", line=4, also=("duplicate key",))
    assert "s_pkey" not in error  # quoted names and values in server messages are never echoed
    assert db.rows("s", "id") == [(1,), (2,)]


def test_text_that_is_not_utf8(db):
    before = baseline(db)
    ok = lines_of([SCHEMA, rec(3), rec(4)]).encode()
    bad = b'{"type": "RECORD", "stream": "s", "record": {"id": 5, "v": "caf\xe9"}}\n'
    result = db.cli(ok + bad)
    assert_clean_failure(result, stream="s", line=4, also=("UTF-8",))
    assert db.rows("s", "id, v") == before


def test_record_missing_a_key_property(db):
    before = baseline(db)
    result = db.cli([SCHEMA, rec(3), record_msg("s", {"v": "no id"})])
    assert_clean_failure(result, stream="s", line=3, also=("key property", "'id'"))
    assert db.rows("s", "id, v") == before


def test_narrowing_type_change(db):
    before = baseline(db)
    narrowed = schema_msg("s", {"id": {"type": "integer"}, "v": {"type": "integer"}, "w": {}}, ["id"])
    result = db.cli([SCHEMA, rec(3), narrowed, record_msg("s", {"id": 4, "v": 1})])
    assert_clean_failure(result, stream="s", line=3, also=("'v'", "string", "integer"))
    assert db.columns("s") == {"id": "bigint", "v": "text", "__loaded_at": "timestamp with time zone"}
    # Record 3 came before the SCHEMA change, so it was committed before the change was even looked at.
    assert db.rows("s", "id, v") == [*before, (3, "x")]


def test_key_property_not_in_schema(db):
    result = db.cli([schema_msg("k", {"id": {"type": "integer"}}, ["nope"])])
    assert_clean_failure(result, stream="k", line=1, also=("'nope'",))
    assert db.tables() == []


def test_schema_without_properties(db):
    result = db.cli([{"type": "SCHEMA", "stream": "np", "schema": {"type": "object"}, "key_properties": []}])
    assert_clean_failure(result, stream="np", line=1, also=("properties",))


def test_value_postgres_refuses(db):
    before = baseline(db)
    result = db.cli([SCHEMA, rec(3), record_msg("s", {"id": 2**70, "v": "x"})])
    assert_clean_failure(result, stream="s", line=3, also=("bigint", "nothing was committed"))
    assert db.rows("s", "id, v") == before


def test_unreachable_server(db):
    # Checked at start-up, before any input is read (issue 16): the error names the settings, not a stream or line.
    result = db.cli([SCHEMA, rec(1)], port=1)
    error = assert_clean_failure(result, stream=None, line=None, also=("connect", "`host` and `port`"))
    assert "input line" not in error


# -- hostile but valid input ---------------------------------------------------------------------------------------


def test_sql_injection_shaped_identifiers(db):
    db.execute(f'CREATE SCHEMA "{db.schema}"')
    db.execute(f'CREATE TABLE "{db.schema}".t (v int)')
    db.execute(f'INSERT INTO "{db.schema}".t VALUES (1), (2)')
    evil = 'x"; DROP TABLE t; --'
    props = {"id": {"type": "integer"}, evil: {"type": "string"}, "'; TRUNCATE t; --": {"type": "integer"}}
    result = db.cli([schema_msg(evil, props, ["id"]), record_msg(evil, {"id": 1, evil: "v", "'; TRUNCATE t; --": 7})])
    assert result.returncode == 0, result.stderr
    assert db.rows("t", "v") == [(1,), (2,)]
    assert db.tables() == ["t", "x___drop_table_t____"]
    assert db.dicts("x___drop_table_t____") == [{"id": 1, "x___drop_table_t____": "v", "___truncate_t____": 7}]


def test_long_names_colliding_after_shortening(db):
    a = "customer_lifetime_value_estimate_for_the_current_fiscal_year_in_euros"
    b = "customer_lifetime_value_estimate_for_the_current_fiscal_year_in_dollars"
    assert a[:63] == b[:63]
    stream_a, stream_b = "stream_" + a, "stream_" + b
    props = {"id": {"type": "integer"}, a: {"type": "number"}, b: {"type": "number"}}
    messages = [
        schema_msg(stream_a, props, ["id"]),
        record_msg(stream_a, {"id": 1, a: 1.5, b: 2.5}),
        schema_msg(stream_b, props, ["id"]),
        record_msg(stream_b, {"id": 1, a: 3.5, b: 4.5}),
    ]
    assert db.cli(messages).returncode == 0
    tables = db.tables()
    assert len(tables) == 2
    first_columns = {t: list(db.columns(t)) for t in tables}
    values = set()
    for table in tables:
        comments = {src: col for col, src in db.comments(table).items() if src}
        col_a, col_b = comments[json.dumps([a])], comments[json.dumps([b])]
        assert col_a != col_b
        assert max(len(col_a.encode()), len(col_b.encode())) <= 63
        values.add(tuple(float(x) for x in db.rows(table, f'"{col_a}", "{col_b}"')[0]))
    assert values == {(1.5, 2.5), (3.5, 4.5)}
    # Second run of the same input: same tables, same columns, rows upserted (not duplicated).
    assert db.cli(messages).returncode == 0
    assert db.tables() == tables
    assert {t: list(db.columns(t)) for t in tables} == first_columns
    assert all(db.count(t) == 1 for t in tables)


def test_nul_bytes(db):
    props = {"id": {"type": "integer"}, "v": {"type": "string"}, "j": {"type": "object"}, "a": {"type": "array"}}
    raw = (
        json.dumps(schema_msg("nul", props, ["id"]))
        + "\n"
        + '{"type": "RECORD", "stream": "nul", "record": {"id": 1, "v": "a\\u0000b\\u0000", '
        + '"j": {"k\\u0000": "\\u0000"}, "a": ["\\u0000", {"x": "y\\u0000"}]}}\n'
    )
    result = db.cli(raw)
    assert result.returncode == 0, result.stderr
    assert db.rows("nul", "v, j, a") == [("a\ufffdb\ufffd", {"k\ufffd": "\ufffd"}, ["\ufffd", {"x": "y\ufffd"}])]


def test_ten_megabyte_string(db):
    big = "".join(chr(0x41 + (i % 26)) for i in range(1000)) * 10_000 + "é\t\\\n"  # 10 MB and some escapes
    assert len(big.encode()) > 10_000_000
    result = db.cli([SCHEMA, rec(1, big), rec(2, "small"), state_msg({"done": 1})], batch_size_bytes=1_000_000)
    assert result.returncode == 0, result.stderr
    assert db.query(f'SELECT id, length(v), md5(v) FROM "{db.schema}".s ORDER BY id') == [
        (1, len(big), hashlib.md5(big.encode()).hexdigest()),  # noqa: S324 - a checksum, not security
        (2, 5, hashlib.md5(b"small").hexdigest()),  # noqa: S324
    ]
    assert result.states == [{"done": 1}]


def test_batch_larger_than_the_byte_bound(db):
    messages = [SCHEMA]
    for i in range(1, 61):
        messages.append(rec(i, "y" * 2000))
        if i % 4 == 0:
            messages.append(state_msg({"upto": i}))
    result = db.cli(messages, batch_size_bytes=10_000)
    assert result.returncode == 0, result.stderr
    assert db.rows("s", "id") == [(i,) for i in range(1, 61)]
    commits = re.findall(r"Committed (\d+) rows", result.stderr)
    assert len(commits) >= 10
    assert sum(int(c) for c in commits) == 60
    assert max(int(c) for c in commits) <= 6  # ~2 KB per row under a 10 KB bound
    # A STATE after each commit (when one had arrived since the previous), in order, the last one at the end.
    assert len(result.states) >= 10
    assert result.states[-1] == {"upto": 60}
    ups = [s["upto"] for s in result.states]
    assert ups == sorted(set(ups))
