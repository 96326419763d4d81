"""The key watermark for text and composite keys: new keys go straight into the table.

A key above the table's highest key (read at start-up) and above every key this run sent cannot be in the table,
so its row is COPY'd straight in; every other row takes the staging table and the merge. For text that order must
be the one Python compares strings in (code points, i.e. UTF-8 bytes, PostgreSQL's "C" collation), whatever the
column's own collation: else an existing key could be taken for a new one. A composite key compares as a tuple,
integer columns first. (The integer key's own tests are in test_load_methods.py and test_fast_path.py.)
"""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import redirect_stdout
from typing import Any

import psycopg2
import pytest
from tp_helpers import SERVER, record_msg, schema_msg, state_msg

from harborline_singer_shared.warehouse.sink import ABOVE_ALL
from harborline_target_postgres import sinks

TEXT_KEYED = schema_msg("codes", {"code": {"type": "string"}, "v": {"type": "string"}}, ["code"])
REDO_WARNING = "redoing the batch through the staging table"


def rec(code: str, v: str) -> dict[str, Any]:
    return record_msg("codes", {"code": code, "v": v})


def _listen(target: Any, messages: list[Any], seen: dict[str, Any]) -> list[Any]:
    """Run the target on `messages`; `seen` gets the sink's watermark state once the SCHEMA is set up."""

    def lines() -> Iterator[str]:
        yield json.dumps(messages[0]) + "\n"
        # The SCHEMA line has been processed when the next line is asked for.
        sink = target.get_sink(messages[0]["stream"])
        seen.update(watermark=sink._watermark, hi=sink._hi)
        for msg in messages[1:]:
            yield json.dumps(msg) + "\n"

    out = io.StringIO()
    with redirect_stdout(out):
        target.listen(lines())
    return [json.loads(x) for x in out.getvalue().splitlines()]


def test_text_keys_take_the_watermark_and_the_newest_record_of_each_key_wins(db, caplog):
    """Ascending codes, repeats within and across batches, non-ASCII keys: every key ends with its newest record."""
    db.run([TEXT_KEYED, rec("INV-0002", "old"), rec("INV-0005", "old")])
    keys = ["INV-0001", "INV-0003", "INV-0006", "INV-0002", "INV-0007", "INV-0006", "Z", "a", "é", "ü", "😀", "a"]
    messages: list[Any] = [TEXT_KEYED]
    expected = {"INV-0002": "old", "INV-0005": "old"}
    for n, key in enumerate(keys):
        messages += [rec(key, f"v{n}"), state_msg(n)]
        expected[key] = f"v{n}"
    seen: dict[str, Any] = {}
    states = _listen(db.target(batch_size_rows=3), messages, seen)
    assert seen == {"watermark": (0,), "hi": "INV-0005"}
    assert db.rows("codes", "code, v", order='code COLLATE "C"') == sorted(expected.items())
    assert states[-1] == len(keys) - 1
    assert REDO_WARNING not in caplog.text


def test_the_highest_text_key_is_read_in_code_point_order_whatever_the_column_collation(db, caplog):
    """In ICU's root collation 'a' < 'B'; in code points 'B' < 'a'. Against ICU's maximum of {'a', 'B'}, 'B', the
    update of 'a' would look new ('a' > 'B' in code points) and hit the primary key; against the code-point
    maximum, 'a', it takes the merge as it should."""
    icu = db.query("SELECT collname FROM pg_collation WHERE collname = 'und-x-icu'")
    if not icu:
        pytest.skip("this PostgreSQL server has no ICU collations (built without ICU): no non-C collation to test")
    db.execute(f'CREATE SCHEMA IF NOT EXISTS "{db.schema}"')
    db.execute(
        f'CREATE TABLE "{db.schema}".codes (code text COLLATE "und-x-icu" PRIMARY KEY, v text, __loaded_at timestamptz)'
    )
    db.execute(f"INSERT INTO \"{db.schema}\".codes (code, v) VALUES ('a', 'old'), ('B', 'old')")
    assert db.query(f'SELECT max(code) FROM "{db.schema}".codes') == [("B",)]  # the collation's order
    seen: dict[str, Any] = {}
    _listen(db.target(), [TEXT_KEYED, rec("a", "new"), rec("b", "new"), rec("B", "new")], seen)
    assert seen["hi"] == "a"
    assert db.rows("codes", "code, v", order='code COLLATE "C"') == [("B", "new"), ("a", "new"), ("b", "new")]
    assert REDO_WARNING not in caplog.text  # no existing key was taken for a new one


def test_another_writer_taking_a_new_text_key_redoes_the_batch_the_staging_way(db, caplog):
    db.run([TEXT_KEYED, rec("k1", "a")])
    target = db.target(batch_size_rows=2)

    def lines() -> Iterator[str]:
        yield json.dumps(TEXT_KEYED) + "\n"  # the sink reads the highest key, 'k1', here
        db.execute(f"INSERT INTO \"{db.schema}\".codes (code, v) VALUES ('k3', 'other writer')")
        for msg in (rec("k2", "b"), rec("k3", "c"), state_msg(1), rec("k1", "A"), rec("k4", "d"), state_msg(2)):
            yield json.dumps(msg) + "\n"

    out = io.StringIO()
    with redirect_stdout(out):
        target.listen(lines())
    assert db.rows("codes", "code, v") == [("k1", "A"), ("k2", "b"), ("k3", "c"), ("k4", "d")]
    assert REDO_WARNING in caplog.text
    assert [json.loads(x) for x in out.getvalue().splitlines()] == [1, 2]


def _backend_queries(dbname: str) -> list[tuple[str, str | None]]:
    with psycopg2.connect(**SERVER.connect_kwargs(dbname)) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT query, wait_event_type FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid() "
            "AND state = 'active'",
            (dbname,),
        )
        return cur.fetchall()


def test_a_highest_key_read_that_takes_too_long_is_given_up_and_every_row_staged(db, caplog, monkeypatch):
    """The read is bounded: past `WATERMARK_SECONDS` the run goes on without a watermark (all rows staged)."""
    caplog.set_level(logging.INFO)
    db.run([TEXT_KEYED, rec("k1", "a")])
    monkeypatch.setattr(sinks, "WATERMARK_SECONDS", 0.2)
    locker = psycopg2.connect(**SERVER.connect_kwargs(db.dbname))
    with locker.cursor() as cur:  # holds the table until the watermark read has been cancelled
        cur.execute(f'LOCK TABLE "{db.schema}".codes IN ACCESS EXCLUSIVE MODE')
    failures: list[str] = []

    def release_after_the_read_gave_up() -> None:
        try:
            deadline = time.monotonic() + 120  # a safety net against a hung test, not what the test waits on
            waited = False
            while time.monotonic() < deadline:
                reading = [q for q, wait in _backend_queries(db.dbname) if q.endswith(" LIMIT 1") and wait]
                if reading:
                    waited = True
                elif waited:
                    return  # the read waited on the lock and is gone: cancelled by its statement timeout
                time.sleep(0.01)
            failures.append("the highest-key read never waited on the lock and went away")
        finally:
            locker.rollback()
            locker.close()

    releaser = threading.Thread(target=release_after_the_read_gave_up)
    releaser.start()
    seen: dict[str, Any] = {}
    try:
        _listen(db.target(), [TEXT_KEYED, rec("k2", "b"), rec("k1", "A"), rec("k0", "z")], seen)
    finally:
        releaser.join()
    assert not failures
    assert seen["hi"] is ABOVE_ALL
    assert "every row takes the staging table" in caplog.text
    assert db.rows("codes", "code, v") == [("k0", "z"), ("k1", "A"), ("k2", "b")]


def test_a_text_key_with_another_declared_type_takes_no_watermark(db):
    """A key declared string-or-integer could arrive as 1 and as "1" (one value in the table): every row staged."""
    schema = schema_msg("codes", {"code": {"type": ["string", "integer"]}, "v": {"type": "string"}}, ["code"])
    seen: dict[str, Any] = {}
    _listen(db.target(), [schema, record_msg("codes", {"code": "1", "v": "a"})], seen)
    assert seen["watermark"] is None


TENANT_KEYED = schema_msg(
    "orders",
    {"tenant": {"type": "string"}, "local_id": {"type": "integer"}, "v": {"type": "string"}},
    ["tenant", "local_id"],
)


def order(tenant: str, local_id: int, v: str) -> dict[str, Any]:
    return record_msg("orders", {"tenant": tenant, "local_id": local_id, "v": v})


def test_a_composite_key_compares_integer_columns_first_and_the_newest_record_wins(db, caplog):
    """Keys (tenant, local_id) with local_id growing across tenants: in (local_id, tenant) order they grow, so new
    ones go straight in; repeats, older keys and a NUL (stored as U+FFFD) take the merge."""
    db.run([TENANT_KEYED, order("t1", 5, "old"), order("t9", 2, "old")])
    messages: list[Any] = [TENANT_KEYED]
    expected = {("t1", 5): "old", ("t9", 2): "old"}
    keys = [("t0", 6), ("t2", 6), ("t1", 7), ("t1", 5), ("t0", 6), ("t9", 1), ("a\u0000", 8), ("a\ufffd", 8), ("t2", 9)]
    for n, (tenant, local_id) in enumerate(keys):
        messages += [order(tenant, local_id, f"v{n}"), state_msg(n)]
        expected[(tenant.replace("\u0000", "\ufffd"), local_id)] = f"v{n}"
    seen: dict[str, Any] = {}
    states = _listen(db.target(batch_size_rows=3), messages, seen)
    assert seen == {"watermark": (1, 0), "hi": (5, "t1")}  # (local_id, tenant): the table's highest is (5, 't1')
    rows = db.rows("orders", "tenant, local_id, v", order='tenant COLLATE "C", local_id')
    assert rows == sorted((t, i, v) for (t, i), v in expected.items())
    assert states[-1] == len(keys) - 1
    assert REDO_WARNING not in caplog.text


def test_another_writer_taking_a_new_composite_key_redoes_the_batch_the_staging_way(db, caplog):
    db.run([TENANT_KEYED, order("t1", 1, "a")])
    target = db.target(batch_size_rows=2)

    def lines() -> Iterator[str]:
        yield json.dumps(TENANT_KEYED) + "\n"  # the sink reads the highest key, (1, 't1'), here
        db.execute(f"INSERT INTO \"{db.schema}\".orders (tenant, local_id, v) VALUES ('t0', 3, 'other writer')")
        for msg in (order("t0", 2, "b"), order("t0", 3, "c"), state_msg(1), order("t1", 1, "A"), state_msg(2)):
            yield json.dumps(msg) + "\n"

    out = io.StringIO()
    with redirect_stdout(out):
        target.listen(lines())
    assert db.rows("orders", "tenant, local_id, v") == [("t0", 2, "b"), ("t0", 3, "c"), ("t1", 1, "A")]
    assert REDO_WARNING in caplog.text
    assert [json.loads(x) for x in out.getvalue().splitlines()] == [1, 2]


DATED = schema_msg("dated", {"id": {"type": "integer"}, "d": {"type": "string", "format": "date"}}, ["id"])


def dated(i: int, d: str) -> dict[str, Any]:
    return record_msg("dated", {"id": i, "d": d})


def test_held_rows_of_one_key_merge_the_newest_and_every_value_is_still_checked(db):
    """Repeats of existing keys within a batch: the newest wins; a superseded row's value is checked all the same."""
    db.run([DATED, dated(1, "2024-01-01"), dated(2, "2024-01-01"), dated(3, "2024-01-01")])
    db.run([DATED, dated(2, "2024-02-01"), dated(2, "2024-02-02"), dated(3, "2024-02-03"), dated(2, "2024-02-04")])
    assert [(i, d.isoformat()) for i, d in db.rows("dated", "id, d")] == [
        (1, "2024-01-01"),
        (2, "2024-02-04"),
        (3, "2024-02-03"),
    ]
    with pytest.raises(sinks.TargetLoadError, match=r"input line 3.*PostgreSQL refused the batch"):
        db.run([DATED, dated(1, "2024-03-01"), dated(1, "2024-13-45"), dated(1, "2024-03-03")])  # lines 2-4
    assert [d.isoformat() for _, d in db.rows("dated", "id, d")] == ["2024-01-01", "2024-02-04", "2024-02-03"]
