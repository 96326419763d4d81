"""ACTIVATE_VERSION: a full-table stream's rows deleted at the source are retired, soft by default, hard on request.

Both ways taps send it are covered: the Singer SDK's (ACTIVATE_VERSION before the sync's records, which carry the
version) and Stitch's (records first, ACTIVATE_VERSION at the end of the sync).
"""

from __future__ import annotations

from typing import Any

import pytest
from tp_helpers import record_msg, schema_msg, state_msg

from harborline_singer_shared.warehouse.errors import TargetLoadError

SCHEMA = schema_msg("items", {"id": {"type": "integer"}, "name": {"type": "string"}}, ["id"])
UNKEYED = schema_msg("items", {"id": {"type": "integer"}, "name": {"type": "string"}})


def versioned(i: int, name: str, version: int) -> dict[str, Any]:
    return {**record_msg("items", {"id": i, "name": name}), "version": version}


def activate(version: int, stream: str = "items") -> dict[str, Any]:
    return {"type": "ACTIVATE_VERSION", "stream": stream, "version": version}


def live_and_retired(db) -> tuple[list[tuple[Any, ...]], list[int]]:
    rows = db.rows("items", "id, name, _sdc_table_version, _sdc_deleted_at IS NOT NULL", order="id")
    return [r[:3] for r in rows if not r[3]], [r[0] for r in rows if r[3]]


def sdk_sync(version: int, items: dict[int, str]) -> list[dict[str, Any]]:
    return [SCHEMA, activate(version), *(versioned(i, n, version) for i, n in items.items())]


def stitch_sync(version: int, items: dict[int, str]) -> list[dict[str, Any]]:
    return [SCHEMA, *(versioned(i, n, version) for i, n in items.items()), activate(version)]


@pytest.mark.parametrize("sync", [sdk_sync, stitch_sync], ids=["sdk", "stitch"])
def test_rows_deleted_at_the_source_are_soft_deleted_and_come_back_when_sent_again(db, sync):
    db.run(sync(100, {1: "a", 2: "b", 3: "c"}))
    db.run(sync(200, {1: "a2", 3: "c2"}))  # 2 was deleted at the source
    live, retired = live_and_retired(db)
    assert live == [(1, "a2", 200), (3, "c2", 200)]
    assert retired == [2]
    assert db.rows("items", "name", order="id")[1] == ("b",)  # soft: the row keeps its last values

    db.run(sync(300, {1: "a3", 2: "b3", 3: "c3"}))  # 2 is back: live again, with its new values
    live, retired = live_and_retired(db)
    assert live == [(1, "a3", 300), (2, "b3", 300), (3, "c3", 300)]
    assert retired == []


def test_hard_delete_removes_the_rows_of_earlier_versions(db):
    db.run(stitch_sync(1, {1: "a", 2: "b"}), hard_delete=True)
    db.run(stitch_sync(2, {2: "b2"}), hard_delete=True)
    assert db.rows("items", "id, name, _sdc_table_version", order="id") == [(2, "b2", 2)]


def test_append_only_stream_keeps_only_the_live_version_visible(db):
    db.run([UNKEYED, *(versioned(i, "x", 1) for i in range(3)), activate(1)])
    db.run([UNKEYED, *(versioned(i, "y", 2) for i in range(2)), activate(2)])
    rows = db.rows("items", "id, name, _sdc_deleted_at IS NULL", order="id, name")
    live = [r[:2] for r in rows if r[2]]
    assert live == [(0, "y"), (1, "y")]
    assert len(rows) == 5


def test_rows_loaded_before_versioning_are_retired_by_the_first_version(db):
    db.run([SCHEMA, record_msg("items", {"id": 1, "name": "old"}), record_msg("items", {"id": 9, "name": "gone"})])
    assert "_sdc_table_version" not in db.columns("items")  # no version columns until a version arrives
    db.run(stitch_sync(5, {1: "new"}))
    live, retired = live_and_retired(db)
    assert live == [(1, "new", 5)]
    assert retired == [9]


def test_activate_version_commits_the_rows_before_it_and_state_follows(db):
    # batch_size_rows large: the rows before ACTIVATE_VERSION are still in the open batch when it arrives.
    result = db.run(
        [*stitch_sync(7, {1: "a", 2: "b"}), state_msg({"pos": 2}), versioned(3, "c", 7), state_msg({"pos": 3})],
        batch_size_rows=1000,
    )
    live, retired = live_and_retired(db)
    assert live == [(1, "a", 7), (2, "b", 7), (3, "c", 7)]
    assert retired == []
    assert result.states == [{"pos": 2}, {"pos": 3}]


def test_versions_flow_through_the_typed_fast_path_over_many_batches(db):
    n = 5000
    db.run(stitch_sync(1, {i: f"n{i}" for i in range(n)}), batch_size_rows=700)
    db.run(stitch_sync(2, {i: f"m{i}" for i in range(0, n, 2)}), batch_size_rows=700)
    live, retired = live_and_retired(db)
    assert live == [(i, f"m{i}", 2) for i in range(0, n, 2)]
    assert retired == list(range(1, n, 2))


def test_with_record_metadata_the_metadata_columns_are_used(db):
    db.run(stitch_sync(1, {1: "a", 2: "b"}), add_record_metadata=True)
    db.run(stitch_sync(2, {1: "a"}), add_record_metadata=True)
    live, retired = live_and_retired(db)
    assert live == [(1, "a", 2)]
    assert retired == [2]


def test_activate_version_before_schema_is_one_clear_error(db):
    result = db.cli([activate(1, "nowhere")])
    assert result.returncode == 1
    assert "stream 'nowhere', input line 1: ACTIVATE_VERSION before its SCHEMA message" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("message", [activate("1"), versioned(1, "a", "1")], ids=["activate", "record"])  # type: ignore[arg-type]
def test_a_version_that_is_not_an_integer_is_one_clear_error(db, message):
    result = db.cli([SCHEMA, message])
    assert result.returncode == 1
    assert "stream 'items', input line 2:" in result.stderr
    assert "'version' must be an integer, not str" in result.stderr
    assert "Traceback" not in result.stderr


def test_overwrite_mode_leaves_retiring_to_the_swap(db):
    db.run(stitch_sync(1, {1: "a", 2: "b"}), load_method="overwrite")
    db.run(stitch_sync(2, {2: "b2"}), load_method="overwrite")
    assert db.rows("items", "id, name, _sdc_deleted_at", order="id") == [(2, "b2", None)]


def test_retiring_refused_by_the_server_stops_the_run_with_one_line(db):
    db.run(stitch_sync(1, {1: "a"}))
    db.execute(f'ALTER TABLE "{db.schema}"."items" ADD CONSTRAINT never_deleted CHECK (_sdc_deleted_at IS NULL)')
    with pytest.raises(TargetLoadError, match="retiring the rows of table versions before 2 failed"):
        db.run(stitch_sync(2, {}))
    assert db.rows("items", "id, _sdc_deleted_at") == [(1, None)]
