"""Keyset paging on a real PostgreSQL: nothing lost or repeated at a page boundary, between runs, or by the peer bug."""

from __future__ import annotations

import datetime
from typing import Any

from conftest import XcDatabase, run_tap
from xc_fixture import BASE_TIME, EXACT_AMOUNT, row

from harborline_tap_xactly.tables import table_by_stream

CREDIT = table_by_stream("xc_credit")
QUOTA_HIST = table_by_stream("xc_quota_hist")
assert CREDIT is not None
assert QUOTA_HIST is not None


def _ids(records: list[dict[str, Any]], *columns: str) -> list[tuple[Any, ...]]:
    return [tuple(r[c] for c in columns) for r in records]


def test_rows_with_one_modified_date_straddling_page_boundaries_are_each_read_once(
    config: dict[str, Any], xc_db: XcDatabase
) -> None:
    batch = datetime.datetime(2024, 5, 1, 2, 0, 0)  # noqa: DTZ001 - no zone in the source; a batch job stamps 25 rows with one MODIFIED_DATE
    xc_db.sql('DELETE FROM "XC_CREDIT"')
    from xc_fixture import insert  # noqa: PLC0415

    insert(xc_db.admin, "XC_CREDIT", [row(CREDIT, n, batch) for n in range(100, 125)])
    result = run_tap({**config, "page_size": 4}, streams={"xc_credit"})
    assert _ids(result.records("xc_credit"), "CREDIT_ID") == [(n,) for n in range(100, 125)]
    pages = [s for s in result.tap._sql_source.statements if 'FROM "XC_CREDIT"' in s and "LIMIT 4" in s]
    assert len(pages) == 7  # 6 full pages of 4, then a short one of 1 ends the table
    again = run_tap({**config, "page_size": 4}, streams={"xc_credit"}, state=result.state)
    assert again.records("xc_credit") == []


def test_versions_of_one_hist_row_across_a_page_boundary(config: dict[str, Any], xc_db: XcDatabase) -> None:
    from xc_fixture import insert  # noqa: PLC0415

    xc_db.sql('DELETE FROM "XC_QUOTA_HIST"')
    stamp = datetime.datetime(2024, 6, 1)  # noqa: DTZ001 - no zone in the source
    insert(xc_db.admin, "XC_QUOTA_HIST", [row(QUOTA_HIST, 7, stamp, VERSION=v) for v in range(1, 10)])
    result = run_tap({**config, "page_size": 4}, streams={"xc_quota_hist"})
    assert _ids(result.records("xc_quota_hist"), "QUOTA_ID", "VERSION") == [(7, v) for v in range(1, 10)]
    assert result.tap.streams["xc_quota_hist"].primary_keys == ["QUOTA_ID", "VERSION"]


def test_a_later_date_with_a_smaller_key_is_not_dropped(config: dict[str, Any], xc_db: XcDatabase) -> None:
    first = run_tap(config, streams={"xc_credit"})
    assert _ids(first.records("xc_credit"), "CREDIT_ID") == [(1,), (2,), (3,)]
    from xc_fixture import insert  # noqa: PLC0415

    # `MODIFIED_DATE >= bookmark AND CREDIT_ID > 3` (the public peer's query) would never read this row.
    insert(xc_db.admin, "XC_CREDIT", [row(CREDIT, 0, BASE_TIME + datetime.timedelta(days=3))])
    second = run_tap(config, streams={"xc_credit"}, state=first.state)
    assert _ids(second.records("xc_credit"), "CREDIT_ID") == [(0,)]


def test_rows_updated_and_added_between_two_runs_are_exactly_what_the_second_run_emits(
    config: dict[str, Any], xc_db: XcDatabase
) -> None:
    first = run_tap(config)
    from xc_fixture import insert  # noqa: PLC0415

    later = BASE_TIME + datetime.timedelta(days=10)
    xc_db.sql('UPDATE "XC_CREDIT" SET "MODIFIED_DATE" = %s, "NAME" = %s WHERE "CREDIT_ID" = 2', (later, "renamed"))
    insert(xc_db.admin, "XC_CREDIT", [row(CREDIT, 50, later)])
    insert(xc_db.admin, "XC_ROLE", [row(table_by_stream("xc_role"), 9, later)])  # type: ignore[arg-type]
    second = run_tap(config, state=first.state)
    emitted = {m["stream"] for m in second.messages if m["type"] == "RECORD"}
    assert emitted == {"xc_credit", "xc_role"}
    assert [(r["CREDIT_ID"], r["NAME"]) for r in second.records("xc_credit")] == [(2, "renamed"), (50, "xc_credit 50")]
    assert _ids(second.records("xc_role"), "ROLE_ID") == [(9,)]


def test_start_date_is_inclusive(config: dict[str, Any], xc_db: XcDatabase) -> None:
    (stamp,) = xc_db.sql('SELECT "MODIFIED_DATE" FROM "XC_CREDIT" WHERE "CREDIT_ID" = 2')[0]
    result = run_tap({**config, "start_date": stamp.isoformat() + "Z"}, streams={"xc_credit"})
    assert _ids(result.records("xc_credit"), "CREDIT_ID") == [(2,), (3,)]


def test_source_timezone_converts_modified_date_to_utc_with_an_offset(
    config: dict[str, Any], xc_db: XcDatabase
) -> None:
    result = run_tap({**config, "source_timezone": "America/New_York"}, streams={"xc_credit"})
    (stamp,) = xc_db.sql('SELECT "MODIFIED_DATE" FROM "XC_CREDIT" WHERE "CREDIT_ID" = 1')[0]
    first = result.records("xc_credit")[0]
    assert first["MODIFIED_DATE"] == (stamp + datetime.timedelta(hours=5)).isoformat() + "+00:00"  # EST in March
    # The bookmark keeps the source's own value, so the next query binds exactly what the source wrote.
    assert result.bookmark("xc_credit")["keyset"]["modified_date"] == {
        "datetime": (stamp + datetime.timedelta(minutes=2)).isoformat()
    }


def test_decimals_are_exact_and_ids_are_integers(config: dict[str, Any], xc_db: XcDatabase) -> None:
    result = run_tap(config, streams={"xc_credit"})
    first = result.records("xc_credit")[0]
    assert first["AMOUNT"] == EXACT_AMOUNT
    assert type(first["CREDIT_ID"]) is int
    schema = result.schema("xc_credit")["properties"]
    assert schema["AMOUNT"]["type"] == ["number", "null"]
    assert schema["MODIFIED_DATE"] == {"type": ["string", "null"], "format": "date-time"}
    assert schema["INCENTIVE_DATE"] == {"type": ["string", "null"], "format": "date"}


def test_uppercase_identifiers_are_quoted_and_values_are_bound_never_formatted(
    config: dict[str, Any], xc_db: XcDatabase
) -> None:
    result = run_tap({**config, "page_size": 2, "start_date": "2024-01-01T00:00:00Z"}, streams={"xc_credit"})
    assert len(result.records("xc_credit")) == 3
    assert set(result.schema("xc_credit")["properties"]) >= {"CREDIT_ID", "MODIFIED_DATE", "AMOUNT"}
    statements = result.tap._sql_source.statements
    pages = [s for s in statements if 'FROM "XC_CREDIT" WHERE "MODIFIED_DATE" IS NOT NULL' in s]
    assert len(pages) == 2
    assert all("OFFSET" not in s.upper() for s in statements)
    assert all("2024" not in s for s in pages)  # the start date and the bookmark are bound parameters
    assert '("MODIFIED_DATE" > %(p1)s OR ("MODIFIED_DATE" = %(p2)s AND ("CREDIT_ID" > %(p3)s)))' in pages[1]
    assert 'ORDER BY "MODIFIED_DATE", "CREDIT_ID" LIMIT 2' in pages[1]


def test_unquoted_identifiers_fold_to_lower_case_and_fail_at_once_naming_stream_and_table(
    config: dict[str, Any], xc_db: XcDatabase
) -> None:
    result = run_tap({**config, "quote_identifiers": False}, streams={"xc_credit"}, expect_error=True)
    message = str(result.error)
    assert message.startswith("stream 'xc_credit' (table XC_CREDIT): ")
    assert 'relation "xc_credit" does not exist' in message
    assert result.tap._sql_source.clock.sleeps == []  # not taken for a lost connection: never retried


def test_permission_denied_on_a_selected_stream_fails_at_once_naming_it(
    config: dict[str, Any], xc_db: XcDatabase
) -> None:
    xc_db.sql('REVOKE SELECT ON "XC_ROLE" FROM xc_reader')
    # Not selected: the other streams are read.
    fine = run_tap(config, streams={"xc_credit"})
    assert len(fine.records("xc_credit")) == 3
    failed = run_tap(config, streams={"xc_credit", "xc_role"}, expect_error=True)
    assert str(failed.error).startswith("stream 'xc_role' (table XC_ROLE): ")
    assert "permission denied" in str(failed.error)
    assert len(failed.records("xc_credit")) == 3


def test_a_key_override_naming_a_missing_column_fails_naming_the_setting(
    config: dict[str, Any], xc_db: XcDatabase
) -> None:
    result = run_tap(
        {**config, "key_overrides": {"xc_planrules": ["PLAN_ID", "NO_SUCH"]}},
        streams={"xc_planrules"},
        expect_error=True,
    )
    assert str(result.error) == (
        "stream 'xc_planrules' (table XC_PLANRULES): the table has no column NO_SUCH (its replication key or key; "
        "set key_overrides for this stream)"
    )


def test_key_overrides_change_the_key_and_the_order(config: dict[str, Any], xc_db: XcDatabase) -> None:
    result = run_tap({**config, "key_overrides": {"xc_credit": ["PARTICIPANT_ID", "CREDIT_ID"]}}, streams={"xc_credit"})
    assert result.tap.streams["xc_credit"].primary_keys == ["PARTICIPANT_ID", "CREDIT_ID"]
    assert [len(m["key_properties"]) for m in result.messages if m["type"] == "SCHEMA"] == [2]
    assert result.bookmark("xc_credit")["keyset"]["key"] == [{"decimal": "30"}, {"decimal": "3"}]
