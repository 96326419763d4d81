"""Snowflake's own errors, injected by the emulator at a chosen statement and met by the real CLI process.

The emulator answers the chosen statement as Snowflake would (an error number and message over HTTP), so the
target's whole path runs: the connector's error, the rollback, the redo through the shared retry policy on a new
connection, the error line, the STATE held back. Faults trigger on a statement (the n-th match), never on time.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from fakesnow_errors import Faults
from st_helpers import Warehouse, one_error_line, record_msg, schema_msg, state_msg

from harborline_target_snowflake import connector

#: Snowflake's statement timeout (STATEMENT_TIMEOUT_IN_SECONDS) and lock wait timeout, documented as transient.
STATEMENT_TIMEOUT = (630, "Statement reached its statement or warehouse timeout of 60 second(s) and was canceled.")
LOCK_WAIT = (
    625,
    (
        "Statement '01b0a1c2-0000-1111-0000-000000000001' has locked table 'TT' in transaction 1733000000000000000 "
        "and this lock has not yet been released."
    ),
)
PROPS = {"id": {"type": "integer"}, "v": {"type": "string"}}


def _three_batches(stream: str) -> list[Any]:
    """Three batches of two rows at most (batch_size_rows=2); keys repeat across batches, the newest wins."""
    return [
        schema_msg(stream, PROPS, ["id"]),
        record_msg(stream, {"id": 1, "v": "a"}),
        record_msg(stream, {"id": 2, "v": "b"}),
        state_msg({"pos": 2}),
        record_msg(stream, {"id": 1, "v": "a2"}),  # input line 5
        record_msg(stream, {"id": 3, "v": "c"}),  # input line 6
        state_msg({"pos": 4}),
        record_msg(stream, {"id": 3, "v": "c2"}),
        state_msg({"pos": 5}),
    ]


@pytest.mark.parametrize(
    ("at", "error"),
    [("MERGE", LOCK_WAIT), ("COPY", STATEMENT_TIMEOUT), ("COMMIT", STATEMENT_TIMEOUT)],
    ids=["000625-at-MERGE", "000630-at-COPY", "000630-at-COMMIT"],
)
def test_a_snowflake_timeout_mid_batch_is_redone_and_the_table_ends_exact(
    wh: Warehouse, faults: Faults, at: str, error: tuple[int, str]
) -> None:
    errno, message = error
    statement = {
        "MERGE": f"MERGE INTO {re.escape(wh.table('tt'))} ",
        "COPY": f"COPY INTO {connector.side_name('tt', 'stage')} ",
        "COMMIT": "COMMIT$",
    }[at]
    merges = faults.count(f"MERGE INTO {re.escape(wh.table('tt'))} ")
    # The second batch's statement is refused once (for COMMIT: the second batch's, after its MERGE ran).
    fault = faults.inject(statement, errno, message, skip=1)
    result = wh.cli(_three_batches("tt"), batch_size_rows=2)
    assert result.returncode == 0, result.stderr[-3000:]
    assert fault.hits == 1
    assert merges.seen == (3 if at == "COPY" else 4)  # three batches; the second one sent again after its fault
    assert f"{errno:06d}: " in result.stderr
    assert "reconnecting and redoing the batch" in result.stderr
    assert result.states == [{"pos": 2}, {"pos": 4}, {"pos": 5}]
    # Exactly as without the fault: no row twice, the newest record per key, nothing left behind.
    assert wh.rows("tt", ["id", "v"]) == [(1, "a2"), (2, "b"), (3, "c2")]
    assert wh.tables() == ["TT"]


@pytest.mark.parametrize("took", [True, False], ids=["commit-took", "commit-did-not-take"])
def test_an_append_batch_whose_commit_answer_was_lost_is_never_appended_twice(
    wh: Warehouse, faults: Faults, *, took: bool
) -> None:
    """The second batch's COMMIT is answered with a timeout: after it went through (`took`), or instead of it.

    The redo cannot tell from the error; it counts the rows carrying the batch's load time, and appends them only
    if they are not there. (Keyed MERGE batches are redone as they are: a MERGE sent twice changes nothing.)
    """
    errno, message = STATEMENT_TIMEOUT
    fault = faults.inject("COMMIT$", errno, message, skip=1, after=took)
    stream = [
        schema_msg("ap", PROPS, []),
        *(record_msg("ap", {"id": i, "v": f"v{i}"}) for i in (1, 2)),
        state_msg({"pos": 2}),
        *(record_msg("ap", {"id": i, "v": f"v{i}"}) for i in (3, 4)),
        state_msg({"pos": 4}),
        record_msg("ap", {"id": 5, "v": "v5"}),
        state_msg({"pos": 5}),
    ]
    result = wh.cli(stream, batch_size_rows=2, load_method="append-only")
    assert result.returncode == 0, result.stderr[-3000:]
    assert fault.hits == 1
    assert wh.rows("ap", ["id", "v"]) == [(i, f"v{i}") for i in range(1, 6)]  # each record once
    assert "reconnecting and redoing the batch" in result.stderr
    assert ("the batch had been committed before the fault" in result.stderr) is took
    assert result.states == [{"pos": 2}, {"pos": 4}, {"pos": 5}]
    stamps = wh.query(f'SELECT COUNT(DISTINCT "__LOADED_AT") FROM {wh.table("ap")}')
    assert stamps == [(3,)]  # one load time per batch


def test_a_permanent_error_mid_batch_stops_in_one_line_with_nothing_of_the_batch(wh: Warehouse, faults: Faults) -> None:
    fault = faults.inject(
        f"MERGE INTO {re.escape(wh.table('pp'))} ",
        3001,
        "Insufficient privileges to operate on table 'PP'",
        sqlstate="42501",
        skip=1,
    )
    result = wh.cli(_three_batches("pp"), batch_size_rows=2)
    line = one_error_line(result)
    assert fault.hits == 1  # not redone: a privilege error is not transient
    assert "stream 'pp', input lines 5-6: loading the batch failed: 003001: Insufficient privileges" in line
    assert line.endswith("(nothing was committed)")
    assert result.states == [{"pos": 2}]  # nothing after the failed batch
    assert wh.rows("pp", ["id", "v"]) == [(1, "a"), (2, "b")]


def _overwrite_run(wh: Warehouse) -> list[Any]:
    wh.run([schema_msg("items", PROPS, ["id"]), *(record_msg("items", {"id": i, "v": "old"}) for i in (1, 2))])
    return [
        schema_msg("items", PROPS, ["id"]),
        record_msg("items", {"id": 3, "v": "new"}),
        record_msg("items", {"id": 4, "v": "new"}),
        state_msg({"pos": 2}),
        record_msg("items", {"id": 5, "v": "new"}),
        state_msg({"pos": 3}),
    ]


def test_overwrite_failing_at_the_final_replace_keeps_the_previous_rows(wh: Warehouse, faults: Faults) -> None:
    messages = _overwrite_run(wh)
    deletes = faults.count(f"DELETE FROM {re.escape(wh.table('items'))}$")
    fault = faults.inject(
        f"INSERT INTO {re.escape(wh.table('items'))} ",  # the replace; batches go to the side table
        3001,
        "Insufficient privileges to operate on table 'ITEMS'",
        sqlstate="42501",
    )
    result = wh.cli(messages, load_method="overwrite", batch_size_rows=2)
    line = one_error_line(result)
    assert (deletes.seen, fault.hits) == (1, 1)  # the DELETE ran in the transaction the failed INSERT rolled back
    assert f"stream 'items': replacing the rows of {wh.schema}.items failed: 003001: Insufficient privileges" in line
    assert line.endswith("(the table keeps its previous rows)")
    assert result.states == []  # STATE is held until the rows are replaced: none after the failure
    assert wh.rows("items", ["id", "v"]) == [(1, "old"), (2, "old")]
    assert wh.tables() == ["ITEMS"]  # the failed run's side table is dropped
    assert wh.run(messages[:4], load_method="overwrite").states == [{"pos": 2}]
    assert wh.rows("items", ["id", "v"]) == [(3, "new"), (4, "new")]
    assert wh.tables() == ["ITEMS"]


def test_a_timeout_at_the_final_replace_is_redone(wh: Warehouse, faults: Faults) -> None:
    messages = _overwrite_run(wh)
    fault = faults.inject(f"INSERT INTO {re.escape(wh.table('items'))} ", *STATEMENT_TIMEOUT)
    result = wh.cli(messages, load_method="overwrite", batch_size_rows=2)
    assert result.returncode == 0, result.stderr[-3000:]
    assert fault.hits == 1
    assert "reconnecting and replacing the rows again" in result.stderr
    assert result.states == [{"pos": 3}]
    assert wh.rows("items", ["id", "v"]) == [(3, "new"), (4, "new"), (5, "new")]
    assert wh.tables() == ["ITEMS"]
