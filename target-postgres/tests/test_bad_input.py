"""Bad input through the real CLI, PostgreSQL-only parts: server-side refusals, connection settings, numeric text.

The dialect-neutral bad and hostile input cases run from the shared suite in test_shared_suite.py (same helpers:
non-zero exit, exactly one clear error line naming stream and `input line N`, no traceback).
"""

from __future__ import annotations

from tp_helpers import PostgresProbe, record_msg, schema_msg

from harborline_singer_shared.testing.warehouse_suite import SCHEMA, assert_clean_failure, baseline, rec


def test_duplicate_key_in_an_append_only_load_into_a_keyed_table(db):
    """A table made by an upsert run keeps its primary key; an append-only run that repeats a key is refused by line.

    PostgreSQL enforces primary keys (Snowflake does not), and the server's message names the `s_pkey` constraint.
    """
    assert db.cli([SCHEMA, rec(1), rec(2)]).returncode == 0
    result = db.cli([SCHEMA, rec(3), rec(4), rec(2)], load_method="append-only")
    error = assert_clean_failure(result, stream="s", line=4, also=("duplicate key",))
    assert "s_pkey" not in error  # quoted names and values in server messages are never echoed
    assert db.rows("s", "id") == [(1,), (2,)]


def test_value_postgres_refuses(db):
    """2**70 does not fit PostgreSQL's bigint (it fits Snowflake's NUMBER(38,0))."""
    before = baseline(PostgresProbe(db))
    result = db.cli([SCHEMA, rec(3), record_msg("s", {"id": 2**70, "v": "x"})])
    assert_clean_failure(result, stream="s", line=3, also=("bigint", "nothing was committed"))
    assert db.rows("s", "id, v") == before


def test_unreachable_server(db):
    # Checked at start-up, before any input is read (issue 16): the error names the settings, not a stream or line.
    result = db.cli([SCHEMA, rec(1)], port=1)
    error = assert_clean_failure(result, stream=None, line=None, also=("connect", "`host` and `port`"))
    assert "input line" not in error


def test_decimal_strings_keep_their_text(db):
    """`numeric` keeps the scale sent (`12.50`, not `12.5`); the shared suite checks the values, this their text."""
    props = {"id": {"type": "integer"}, "amt": {"type": ["string", "null"], "format": "singer.decimal"}}
    messages = [schema_msg("d", props, ["id"])]
    messages += [record_msg("d", {"id": i, "amt": a}) for i, a in enumerate(["12.50", "-0.001", None, "1E+3"])]
    db.run(messages)
    got = db.query(f'SELECT id, amt::text FROM "{db.schema}".d ORDER BY id')
    assert got == [(0, "12.50"), (1, "-0.001"), (2, None), (3, "1000")]
