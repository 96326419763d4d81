"""End to end, as a new user would run it: `tap-clari | target-postgres` into a throwaway PostgreSQL, twice.

The fake Clari serves two Forecast Tabs; the look-back is two quarters. All five tables are loaded, values arrive
exactly in numeric columns, e-mail addresses arrive pseudonymized, and a second run (after a quota change) upserts:
same row counts, the new value in place.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg2
from conftest import KEY
from fake_api import BIG_VALUE, DEFAULT_API_KEY, FakeClari

from harborline_singer_shared.testing.postgres import PostgresServer

SCHEMA = "tap_clari"
TABLES = ("forecast_entries", "users", "fields", "time_periods", "time_frames")


def _target_command() -> list[str]:
    installed = Path(sys.executable).with_name("target-postgres")
    if installed.exists():
        return [str(installed)]
    return [sys.executable, "-m", "harborline_target_postgres"]


def _pipe(tmp_path: Path, tap_config: dict[str, Any], target_config: dict[str, Any]) -> None:
    (tmp_path / "tap.json").write_text(json.dumps(tap_config))
    (tmp_path / "target.json").write_text(json.dumps(target_config))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAP_", "TARGET_", "MELTANO_", "HARBORLINE_"))}
    with (tmp_path / "tap.log").open("w") as tap_log, (tmp_path / "target.log").open("w") as target_log:
        tap = subprocess.Popen(
            [sys.executable, "-m", "harborline_tap_clari", "--config", str(tmp_path / "tap.json")],
            stdout=subprocess.PIPE,
            stderr=tap_log,
            env=env,
        )
        target = subprocess.run(
            [*_target_command(), "--config", str(tmp_path / "target.json")],
            stdin=tap.stdout,
            stdout=subprocess.PIPE,
            stderr=target_log,
            env=env,
            check=False,
            timeout=600,
        )
        assert tap.stdout is not None
        tap.stdout.close()
        tap_status = tap.wait(timeout=600)
    logs = (tmp_path / "tap.log").read_text()[-3000:] + (tmp_path / "target.log").read_text()[-3000:]
    assert (tap_status, target.returncode) == (0, 0), logs


def _query(connect: dict[str, Any], sql: str) -> list[tuple[Any, ...]]:
    with psycopg2.connect(**connect) as connection, connection.cursor() as cursor:
        cursor.execute(sql)
        rows: list[tuple[Any, ...]] = cursor.fetchall()
    connection.close()
    return rows


def test_all_five_tables_load_through_target_postgres_and_a_rerun_upserts(
    tmp_path: Path, postgres_server: PostgresServer, pg_database: str
) -> None:
    connect = postgres_server.connect_kwargs(pg_database)
    target_config = {k: connect[k] for k in ("host", "port", "user", "password") if k in connect}
    target_config |= {"database": pg_database, "default_target_schema": SCHEMA}
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
        counts = {t: _query(connect, f'SELECT count(*) FROM "{SCHEMA}"."{t}"')[0][0] for t in TABLES}
        assert counts == expected

        exact = _query(connect, f'SELECT forecast_value FROM "{SCHEMA}".forecast_entries WHERE forecast_value > 1e16')
        assert sorted(value for (value,) in exact) == [BIG_VALUE] * 4  # one per export, every digit kept
        emails = [email for (email,) in _query(connect, f'SELECT email FROM "{SCHEMA}".users')]
        assert all(email.startswith("hl1:1:") for email in emails)

        # Quota changes without a marker: the next run re-exports the look-back and the target upserts.
        row = next(e for e in fake.document("renewals", "2024_Q4")["entries"] if e["fieldId"] == "quota")
        row["quotaValue"] = Decimal("31415926535897932.38")
        _pipe(tmp_path, tap_config, target_config)
        counts = {t: _query(connect, f'SELECT count(*) FROM "{SCHEMA}"."{t}"')[0][0] for t in TABLES}
        assert counts == expected
        (value,) = _query(
            connect,
            f"SELECT quota_value FROM \"{SCHEMA}\".forecast_entries WHERE forecast_id = 'renewals' "
            f"AND time_period_id = '2024_Q4' AND time_frame_id = '{row['timeFrameId']}' "
            f"AND user_id = '{row['userId']}' AND field_id = 'quota'",
        )[0]
        assert value == Decimal("31415926535897932.38")
