"""End to end, as a new user would run it: `tap-clari | target-postgres` into a throwaway PostgreSQL, twice.

The fake Clari serves two Forecast Tabs; the look-back is two quarters. All five tables are loaded, values arrive
exactly in numeric columns, e-mail addresses arrive pseudonymized, and a second run (after a quota change) upserts:
same row counts, the new value in place.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from conftest import KEY
from fake_api import BIG_VALUE, DEFAULT_API_KEY, FakeClari

from harborline_singer_shared.testing.postgres import PostgresServer
from harborline_singer_shared.testing.taps import pipe_to_target_postgres, query_rows, target_postgres_config

SCHEMA = "tap_clari"
TABLES = ("forecast_entries", "users", "fields", "time_periods", "time_frames")


def _pipe(tmp_path: Path, tap_config: dict[str, Any], target_config: dict[str, Any]) -> None:
    pipe_to_target_postgres(tmp_path, "harborline_tap_clari", tap_config, target_config)


def test_all_five_tables_load_through_target_postgres_and_a_rerun_upserts(
    tmp_path: Path, postgres_server: PostgresServer, pg_database: str
) -> None:
    connect = postgres_server.connect_kwargs(pg_database)
    target_config = target_postgres_config(postgres_server, pg_database, SCHEMA)
    with FakeClari(users=5) as fake:
        tap_config = {
            "api_url": fake.url,
            "api_key": DEFAULT_API_KEY,
            "forecast_ids": ["net_bookings", "renewals"],
            "time_periods": ["2024_Q4", "2025_Q1"],
            "poll_interval_seconds": 0,
            "pseudonymization_key": KEY,
        }
        expected = {
            "forecast_entries": sum(
                len(fake.document(f, p)["entries"])
                for f in ("net_bookings", "renewals")
                for p in ("2024_Q4", "2025_Q1")
            ),
            "users": 5,
            "fields": 2 * 4,
            "time_periods": 2,
            "time_frames": 2 * 14,
        }
        _pipe(tmp_path, tap_config, target_config)
        counts = {t: query_rows(connect, f'SELECT count(*) FROM "{SCHEMA}"."{t}"')[0][0] for t in TABLES}
        assert counts == expected

        exact = query_rows(
            connect, f'SELECT forecast_value FROM "{SCHEMA}".forecast_entries WHERE forecast_value > 1e16'
        )
        assert sorted(value for (value,) in exact) == [BIG_VALUE] * 4  # one per export, every digit kept
        emails = [email for (email,) in query_rows(connect, f'SELECT email FROM "{SCHEMA}".users')]
        assert all(email.startswith("hl1:1:") for email in emails)

        # Quota changes without a marker: the next run re-exports the look-back and the target upserts.
        row = next(e for e in fake.document("renewals", "2024_Q4")["entries"] if e["fieldId"] == "quota")
        row["quotaValue"] = Decimal("31415926535897932.38")
        _pipe(tmp_path, tap_config, target_config)
        counts = {t: query_rows(connect, f'SELECT count(*) FROM "{SCHEMA}"."{t}"')[0][0] for t in TABLES}
        assert counts == expected
        (value,) = query_rows(
            connect,
            f"SELECT quota_value FROM \"{SCHEMA}\".forecast_entries WHERE forecast_id = 'renewals' "
            f"AND time_period_id = '2024_Q4' AND time_frame_id = '{row['timeFrameId']}' "
            f"AND user_id = '{row['userId']}' AND field_id = 'quota'",
        )[0]
        assert value == Decimal("31415926535897932.38")
