"""A dropped connection (backend terminated, server refusing connections), kill -9: nothing lost or repeated."""

from __future__ import annotations

import datetime
import json
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from conftest import HookClock, XcDatabase, run_tap
from xc_fixture import BASE_TIME, insert, row

from harborline_tap_xactly.client import ConnectionLostError
from harborline_tap_xactly.tables import table_by_stream

CREDIT = table_by_stream("xc_credit")
assert CREDIT is not None


def _twenty_credits(xc_db: XcDatabase) -> None:
    xc_db.sql('DELETE FROM "XC_CREDIT"')
    # Pairs of rows share a MODIFIED_DATE, so page boundaries fall inside ties too.
    rows = [row(CREDIT, n, BASE_TIME + datetime.timedelta(minutes=n // 2)) for n in range(1, 21)]
    insert(xc_db.admin, "XC_CREDIT", rows)


def _refuse_connections_and_kill_the_tap(xc_db: XcDatabase) -> None:
    """What a server restart looks like to the tap: its session ends and new ones are refused for a while."""
    xc_db.sql_elsewhere(f'ALTER DATABASE "{xc_db.name}" ALLOW_CONNECTIONS false')
    from xc_fixture import execute  # noqa: PLC0415

    admin = {**xc_db.admin, "dbname": "postgres"}
    pids = [
        pid
        for (pid,) in execute(
            admin,
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = 'tap-xactly'",
            (xc_db.name,),
        )
    ]
    assert len(pids) == 1, pids
    execute(admin, "SELECT pg_terminate_backend(%s)", (pids[0],))
    deadline = time.monotonic() + 30
    while execute(admin, "SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pids[0],)):  # wait for the backend to end
        assert time.monotonic() < deadline, "the backend did not end"
        time.sleep(0.02)


def _allow_connections(xc_db: XcDatabase) -> None:
    xc_db.sql_elsewhere(f'ALTER DATABASE "{xc_db.name}" ALLOW_CONNECTIONS true')


def test_backend_terminated_mid_table_while_the_server_refuses_connections(
    config: dict[str, Any], xc_db: XcDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    _twenty_credits(xc_db)

    def on_record(n: int, _: str) -> None:
        if n == 5:  # inside the second page of three: the next query finds the session gone
            _refuse_connections_and_kill_the_tap(xc_db)

    def on_sleep(n: int) -> None:
        if n == 2:  # the first reconnect was refused; the server is back before the second
            _allow_connections(xc_db)

    clock = HookClock(on_sleep)
    result = run_tap({**config, "page_size": 3}, streams={"xc_credit"}, clock=clock, on_record=on_record)
    assert [r["CREDIT_ID"] for r in result.records("xc_credit")] == list(range(1, 21))
    assert len(clock.sleeps) == 2
    warnings = [r.getMessage() for r in caplog.records if "reconnecting" in r.getMessage()]
    assert len(warnings) == 2
    assert "the connection dropped" in warnings[0]
    assert "connecting failed" in warnings[1]
    assert "not currently accepting connections" in warnings[1]


def test_the_connection_dropped_between_two_streams_is_reopened(config: dict[str, Any], xc_db: XcDatabase) -> None:
    def on_record(n: int, _: str) -> None:
        if n == 3:  # the last row of xc_credit: the connection dies while idle
            _refuse_connections_and_kill_the_tap(xc_db)
            _allow_connections(xc_db)

    clock = HookClock()
    result = run_tap(config, streams={"xc_credit", "xc_role"}, clock=clock, on_record=on_record)
    assert len(result.records("xc_credit")) == 3
    assert [r["ROLE_ID"] for r in result.records("xc_role")] == [1, 2, 3]
    assert len(clock.sleeps) == 1


def test_more_than_max_reconnects_fails_in_one_line_and_the_next_run_resumes_after_the_last_row(
    config: dict[str, Any], xc_db: XcDatabase
) -> None:
    _twenty_credits(xc_db)

    def on_record(n: int, _: str) -> None:
        if n == 7:
            _refuse_connections_and_kill_the_tap(xc_db)

    clock = HookClock()
    settings = {**config, "page_size": 3, "max_reconnects": 2}
    failed = run_tap(settings, streams={"xc_credit"}, clock=clock, on_record=on_record, expect_error=True)
    assert isinstance(failed.error, ConnectionLostError)
    assert str(failed.error).startswith(
        "stream 'xc_credit' (table XC_CREDIT): connecting failed 3 times in a row, more than max_reconnects (2); "
        "check `sql_dsn` (OperationalError: "
    )
    assert len(clock.sleeps) == 2
    first = [r["CREDIT_ID"] for r in failed.records("xc_credit")]
    assert first == list(range(1, 10))  # the 7th row is in the third page, emitted whole before the next query
    _allow_connections(xc_db)
    state = failed.state  # the last STATE written: after the 9th row (one per page of 3)
    assert state["bookmarks"]["xc_credit"]["keyset"]["key"] == [{"decimal": "9"}]
    second = run_tap(settings, streams={"xc_credit"}, state=state)
    assert [r["CREDIT_ID"] for r in second.records("xc_credit")] == list(range(10, 21))


def test_kill_9_and_a_rerun_from_the_last_state_loses_nothing_and_rereads_only_that_stream(
    tmp_path: Path, config: dict[str, Any], xc_db: XcDatabase
) -> None:
    xc_db.sql('DELETE FROM "XC_CREDIT"')
    insert(
        xc_db.admin,
        "XC_CREDIT",
        [row(CREDIT, n, BASE_TIME + datetime.timedelta(seconds=n // 3)) for n in range(1, 401)],
    )
    settings = {**config, "page_size": 5}
    (tmp_path / "config.json").write_text(json.dumps(settings))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAP_XACTLY_", "HARBORLINE_"))}
    process = subprocess.Popen(
        [sys.executable, "-m", "harborline_tap_xactly", "--config", str(tmp_path / "config.json")],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    first: list[dict[str, Any]] = []
    state: dict[str, Any] | None = None
    for line in process.stdout:
        message = json.loads(line, parse_float=Decimal)
        first.append(message)
        if message["type"] == "STATE":
            credit = message["value"].get("bookmarks", {}).get("xc_credit", {})
            if credit.get("keyset", {}).get("key") == [{"decimal": "200"}]:  # half-way through xc_credit
                state = message["value"]
                process.send_signal(signal.SIGKILL)
                break
    process.wait(timeout=60)
    process.stdout.close()
    assert state is not None
    assert process.returncode == -signal.SIGKILL
    done_before = {
        m["stream"] for m in first if m["type"] == "RECORD" and m["stream"] < "xc_credit"
    }  # streams run in name order
    assert done_before

    second = run_tap(settings, state=state)
    streams_read = {m["stream"] for m in second.messages if m["type"] == "RECORD"}
    assert not streams_read & done_before  # finished streams are not read again
    credits_first = [m["record"]["CREDIT_ID"] for m in first if m["type"] == "RECORD" and m["stream"] == "xc_credit"]
    credits_second = [r["CREDIT_ID"] for r in second.records("xc_credit")]
    assert credits_first == list(range(1, 201))
    assert credits_second == list(range(201, 401))
    later = sorted(s for s in xc_db.counts if s > "xc_credit")
    assert all(len(second.records(s)) == xc_db.counts[s] for s in later)
