"""Load methods: upsert (default with keys), append-only, overwrite; batches; the load timestamp."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout

import pytest
from tp_helpers import record_msg, schema_msg, state_msg

from harborline_target_postgres.sinks import TargetLoadError

KEYED = schema_msg("k", {"id": {"type": "integer"}, "v": {"type": "string"}}, ["id"])
UNKEYED = schema_msg("k", {"id": {"type": "integer"}, "v": {"type": "string"}})


def rec(i, v):
    return record_msg("k", {"id": i, "v": v})


def test_upsert_newest_record_of_a_batch_wins(db):
    db.run([KEYED, rec(1, "a"), rec(2, "b"), rec(1, "c"), rec(1, "d"), rec(2, "e")])
    assert db.primary_key("k") == ["id"]
    assert db.rows("k", "id, v") == [(1, "d"), (2, "e")]


def test_upsert_later_batches_overwrite_earlier_ones(db):
    messages = [KEYED]
    expected = {}
    for n in range(23):  # batches of 3 rows: the same keys recur across many batches
        key = n % 5
        messages += [rec(key, f"v{n}"), state_msg({"n": n})]
        expected[key] = f"v{n}"
    result = db.run(messages, batch_size_rows=3)
    assert db.rows("k", "id, v") == sorted(expected.items())
    # The 23 records went in as batches of 3: at each commit the STATE received so far goes out (after record n-1),
    # then the STATE that follows the batch's last record goes out at once (nothing pending); 22 at the end.
    assert [s["n"] for s in result.states] == [1, 2, 4, 5, 7, 8, 10, 11, 13, 14, 16, 17, 19, 20, 22]


def test_upsert_across_runs_and_loaded_at_moves(db):
    db.run([KEYED, rec(1, "a"), rec(2, "b")])
    before = dict(db.rows("k", "id, __loaded_at"))
    db.run([KEYED, rec(2, "B"), rec(3, "c")])
    assert db.rows("k", "id, v") == [(1, "a"), (2, "B"), (3, "c")]
    after = dict(db.rows("k", "id, __loaded_at"))
    assert after[1] == before[1]
    assert after[2] > before[2]


def test_composite_key(db):
    schema = schema_msg("ck", {"a": {"type": "string"}, "b": {"type": "integer"}, "v": {"type": "integer"}}, ["b", "a"])
    db.run(
        [
            schema,
            record_msg("ck", {"a": "x", "b": 1, "v": 1}),
            record_msg("ck", {"a": "x", "b": 2, "v": 2}),
            record_msg("ck", {"a": "y", "b": 1, "v": 3}),
            record_msg("ck", {"a": "x", "b": 1, "v": 4}),
        ]
    )
    assert db.primary_key("ck") == ["b", "a"]
    assert db.rows("ck", "a, b, v", order="1, 2") == [("x", 1, 4), ("x", 2, 2), ("y", 1, 3)]


def test_composite_key_across_batches_and_runs(db):
    """Keys the table already has are updated across batches and runs (quotes and backslashes in a text key)."""
    schema = schema_msg(
        "ck2", {"a": {"type": "string"}, "b": {"type": "integer"}, "v": {"type": "integer"}}, ["a", "b"]
    )
    names = ["plain", 'quo"te', "back\\slash", "comma,{brace}", "", "NULL"]
    db.run([schema] + [record_msg("ck2", {"a": a, "b": b, "v": 0}) for a in names for b in (1, 2)], batch_size_rows=5)
    second = [record_msg("ck2", {"a": a, "b": 2, "v": 7}) for a in names] + [
        record_msg("ck2", {"a": "new", "b": 1, "v": 9})
    ]
    db.run([schema, *second], batch_size_rows=4)
    expected = sorted([(a, 1, 0) for a in names] + [(a, 2, 7) for a in names] + [("new", 1, 9)])
    assert sorted(db.rows("ck2", "a, b, v")) == expected


def test_keys_equal_only_in_postgresql_still_upsert(db):
    """NUL in a text key is stored as U+FFFD, so two keys distinct in the input meet in one row: the newest wins."""
    schema = schema_msg("nk", {"id": {"type": "string"}, "v": {"type": "integer"}}, ["id"])
    db.run([schema, record_msg("nk", {"id": "a\u0000", "v": 1}), record_msg("nk", {"id": "a\ufffd", "v": 2})])
    assert db.rows("nk", "id, v") == [("a\ufffd", 2)]
    db.run([schema, record_msg("nk", {"id": "a\ufffd", "v": 3}), record_msg("nk", {"id": "a\u0000", "v": 4})])
    assert db.rows("nk", "id, v") == [("a\ufffd", 4)]


def test_changed_key_properties_replace_the_primary_key(db):
    props = {"id": {"type": "integer"}, "email": {"type": "string"}}
    db.run([schema_msg("pk", props, ["id"]), record_msg("pk", {"id": 1, "email": "a@x"})])
    assert db.primary_key("pk") == ["id"]
    db.run([schema_msg("pk", props, ["email"]), record_msg("pk", {"id": 1, "email": "b@x"})])
    assert db.primary_key("pk") == ["email"]
    assert db.rows("pk", "id, email", order="2") == [(1, "a@x"), (1, "b@x")]


def test_no_key_properties_appends_duplicates(db):
    db.run([UNKEYED, rec(1, "a"), rec(1, "a"), rec(2, "b")])
    db.run([UNKEYED, rec(1, "a")], batch_size_rows=1)
    assert db.primary_key("k") == []
    assert db.rows("k", "id, v", order="1, 2") == [(1, "a"), (1, "a"), (1, "a"), (2, "b")]


def test_append_only_with_keys_appends(db):
    db.run([KEYED, rec(1, "a"), rec(1, "b")], load_method="append-only")
    db.run([KEYED, rec(1, "c"), rec(2, "d")], load_method="append-only", batch_size_rows=1)
    assert db.rows("k", "id, v", order="1, 2") == [(1, "a"), (1, "b"), (1, "c"), (2, "d")]


def test_append_only_then_upsert_on_the_same_table(db):
    """A table first loaded append-only (duplicate keys allowed) can later be upserted."""
    db.run([KEYED, rec(1, "a"), rec(2, "b")], load_method="append-only")
    db.run([KEYED, rec(2, "B"), rec(3, "c")])
    assert db.rows("k", "id, v", order="1, 2") == [(1, "a"), (2, "B"), (3, "c")]


def test_overwrite_replaces_the_rows(db):
    db.run([KEYED, rec(1, "old"), rec(2, "old"), rec(3, "old")])
    result = db.run(
        [KEYED, rec(2, "new"), rec(4, "new"), rec(4, "newer"), state_msg({"s": 1}), rec(5, "new")],
        load_method="overwrite",
        batch_size_rows=2,
    )
    assert db.rows("k", "id, v") == [(2, "new"), (4, "newer"), (5, "new")]
    assert result.states == [{"s": 1}]
    # No staging table is left behind.
    assert db.tables() == ["k"]


def test_overwrite_without_keys(db):
    db.run([UNKEYED, rec(1, "old"), rec(1, "old")])
    db.run([UNKEYED, rec(7, "new"), rec(7, "new")], load_method="overwrite")
    assert db.rows("k", "id, v") == [(7, "new"), (7, "new")]


def test_overwrite_keeps_old_rows_until_the_run_succeeds(db):
    db.run([KEYED, rec(1, "old"), rec(2, "old")])
    messages = [KEYED, rec(10, "new"), rec(11, "new"), rec(12, "new"), "{this is not json"]
    with pytest.raises(Exception, match="input line 5"):
        db.run(messages, load_method="overwrite", batch_size_rows=2)
    # A batch of the overwrite run was committed (to staging), yet the table still holds exactly the old rows.
    assert db.rows("k", "id, v") == [(1, "old"), (2, "old")]
    # The next successful overwrite run starts afresh: none of the failed run's rows appear.
    db.run([KEYED, rec(20, "final")], load_method="overwrite")
    assert db.rows("k", "id, v") == [(20, "final")]


def test_overwrite_old_rows_visible_during_the_run(db):
    """While an overwrite run is going on (batches committed), readers see the old rows, and only them."""
    db.run([KEYED, rec(1, "old"), rec(2, "old")])
    seen = []

    def feed():
        yield json.dumps(KEYED) + "\n"
        for i in range(10, 20):
            yield json.dumps(rec(i, "new")) + "\n"
        seen.append(db.rows("k", "id, v"))  # batches of 2: four are committed by now
        yield json.dumps(rec(20, "new")) + "\n"

    db.target(load_method="overwrite", batch_size_rows=2).listen(feed())
    assert seen == [[(1, "old"), (2, "old")]]
    assert db.rows("k", "id") == [(i,) for i in range(10, 21)]


def test_overwrite_with_a_schema_change_mid_run(db):
    db.run([KEYED, rec(1, "old")])
    wider = schema_msg("k", {"id": {"type": "integer"}, "v": {"type": "string"}, "w": {"type": "integer"}}, ["id"])
    db.run([KEYED, rec(2, "a"), wider, record_msg("k", {"id": 3, "v": "b", "w": 9})], load_method="overwrite")
    assert db.rows("k", "id, v, w") == [(2, "a", None), (3, "b", 9)]


def test_batch_split_by_bytes(db):
    """Batches close at batch_size_bytes: several commits, every row present, the STATE after each commit."""
    big = "x" * 10_000
    messages = [KEYED]
    for i in range(30):
        messages += [rec(i, big), state_msg({"n": i})]
    committed_at = []

    def feed():
        for m in messages:
            yield json.dumps(m) + "\n"
            if m["type"] == "STATE":
                committed_at.append(db.count("k") if db.tables() else 0)

    out = io.StringIO()
    with redirect_stdout(out):
        db.target(batch_size_bytes=50_000).listen(feed())
    assert db.count("k") == 30
    states = [json.loads(line) for line in out.getvalue().splitlines()]
    # About 10 KB per row and a 50 KB bound: a commit every few rows, never one big batch.
    assert len(set(committed_at)) >= 5
    assert max(b - a for a, b in zip([0, *sorted(set(committed_at))], sorted(set(committed_at)), strict=False)) <= 6
    # A STATE goes out after each commit, and only for records that were committed by then.
    assert len(states) >= 5
    assert states[-1] == {"n": 29}
    assert [s["n"] for s in states] == sorted(s["n"] for s in states)


def test_load_error_from_postgres_is_clear(db):
    """A value PostgreSQL refuses (integer out of bigint range) stops the run naming stream, line and column."""
    db.run([KEYED, rec(1, "kept")])
    with pytest.raises(TargetLoadError) as info:
        db.run([KEYED, rec(2, "x"), record_msg("k", {"id": 2**70, "v": "y"})])
    message = str(info.value)
    assert "'k'" in message
    assert "input line 3" in message
    assert "nothing was committed" in message
    assert db.rows("k", "id, v") == [(1, "kept")]


def test_watermark_redoes_the_batch_when_another_writer_took_a_new_key(db, caplog):
    """Keys above the table's max at start go straight to the table; if another writer inserts one meanwhile, the
    COPY hits the primary key, and the batch is redone through the staging table: nothing lost, nothing doubled."""
    db.run([KEYED, rec(1, "a")])
    target = db.target(batch_size_rows=2)

    def lines():
        yield json.dumps(KEYED) + "\n"  # the sink reads max(id) = 1 here
        db.execute(f'INSERT INTO "{db.schema}".k (id, v) VALUES (3, %s), (9, %s)', ("other writer", "other writer"))
        for msg in (rec(2, "b"), rec(3, "c"), state_msg(1), rec(1, "A"), rec(9, "d"), rec(10, "e"), state_msg(2)):
            yield json.dumps(msg) + "\n"

    out = io.StringIO()
    with redirect_stdout(out):
        target.listen(lines())
    assert db.rows("k", "id, v") == [(1, "A"), (2, "b"), (3, "c"), (9, "d"), (10, "e")]
    assert "redoing the batch through the staging table" in caplog.text
    assert [json.loads(x) for x in out.getvalue().splitlines()] == [1, 2]  # STATE after the redone batch


def test_interleaved_and_consecutive_streams_load_every_row(db):
    """Runs of one stream take the tight loop, alternating streams the general path; every row lands either way."""
    schemas = [schema_msg(s, {"id": {"type": "integer"}, "v": {"type": "string"}}, ["id"]) for s in ("a", "b")]
    order = ["a", "b"] * 5 + ["a"] * 7 + ["b"] * 3 + ["a", "b", "b", "a"] * 3
    counters = {"a": 0, "b": 0}
    messages = [*schemas]
    for i, stream in enumerate(order):
        counters[stream] += 1
        messages.append(record_msg(stream, {"id": counters[stream], "v": f"{stream}{i}"}))
        if i % 4 == 3:
            messages.append(state_msg(i))
    result = db.run(messages, batch_size_rows=4)
    assert db.count("a") == counters["a"]
    assert db.count("b") == counters["b"]
    assert result.states[-1] == len(order) - 1


def test_watermark_batches_of_held_rows_respect_the_byte_bound(db):
    """Rows of keys the table may have are held until the commit; they count toward batch_size_bytes all the same."""
    db.run([KEYED] + [rec(i, "a") for i in range(1, 41)])
    messages = [KEYED]
    for i in range(1, 41):
        messages += [rec(i, f"updated {i}"), state_msg(i)]
    result = db.run(messages, batch_size_bytes=200)
    assert db.rows("k", "id, v") == [(i, f"updated {i}") for i in range(1, 41)]
    assert len(result.states) >= 4  # committed in several batches, each followed by its STATE


def test_watermark_redo_names_the_line_of_a_value_postgres_refuses(db):
    """After a redo, a bad value in a row the table COPY never reached is still reported with its input line."""
    schema = schema_msg("kd", {"id": {"type": "integer"}, "d": {"type": "string", "format": "date"}}, ["id"])
    db.run([schema, record_msg("kd", {"id": 1, "d": "2024-01-01"})])
    target = db.target()

    def lines():
        yield json.dumps(schema) + "\n"  # line 1: the sink reads max(id) = 1 here
        db.execute(f'INSERT INTO "{db.schema}".kd (id, d) VALUES (3, %s)', ("2024-01-03",))
        for i, day in ((2, "2024-01-02"), (3, "2024-01-03"), (4, "2024-13-45")):  # lines 2-4
            yield json.dumps(record_msg("kd", {"id": i, "d": day})) + "\n"

    with pytest.raises(TargetLoadError, match=r"input line 4.*PostgreSQL refused the batch"):
        target.listen(lines())
    assert db.rows("kd", "id") == [(1,), (3,)]
