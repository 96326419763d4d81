"""End to end, as a new user would run it: `tap-adaptive | target-postgres` into a throwaway PostgreSQL, twice.

Every stream lands in its table; amounts arrive exactly in a numeric column; MNPI accounts are nowhere; users' e-mail
addresses arrive pseudonymized. The second run gets the first run's state from the target: only the version added in
between is exported, and the metadata tables are upserted (same row counts).
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
from conftest import KEY, make_config
from fake_api import BIG, MNPI, FakeAdaptive, Version

from harborline_singer_shared.testing.postgres import PostgresServer
from harborline_tap_adaptive.tap import STREAM_TYPES

SCHEMA = "tap_adaptive"
TABLES = sorted(stream.name for stream in STREAM_TYPES)


def _target_command() -> list[str]:
    installed = Path(sys.executable).with_name("target-postgres")
    if installed.exists():
        return [str(installed)]
    return [sys.executable, "-m", "harborline_target_postgres"]


def _pipe(tmp_path: Path, tap_config: dict[str, Any], target_config: dict[str, Any], state: str | None) -> str:
    """Run tap | target; the target's last STATE line."""
    (tmp_path / "tap.json").write_text(json.dumps(tap_config))
    (tmp_path / "target.json").write_text(json.dumps(target_config))
    tap_args = [sys.executable, "-m", "harborline_tap_adaptive", "--config", str(tmp_path / "tap.json")]
    if state is not None:
        (tmp_path / "state.json").write_text(state)
        tap_args += ["--state", str(tmp_path / "state.json")]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAP_", "TARGET_", "MELTANO_", "HARBORLINE_"))}
    with (tmp_path / "tap.log").open("w") as tap_log, (tmp_path / "target.log").open("w") as target_log:
        tap = subprocess.Popen(tap_args, stdout=subprocess.PIPE, stderr=tap_log, env=env)
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
    return target.stdout.decode().strip().splitlines()[-1]


def _query(connect: dict[str, Any], sql: str) -> list[tuple[Any, ...]]:
    with psycopg2.connect(**connect) as connection, connection.cursor() as cursor:
        cursor.execute(sql)
        rows: list[tuple[Any, ...]] = cursor.fetchall()
    connection.close()
    return rows


def _counts(connect: dict[str, Any]) -> dict[str, int]:
    return {t: _query(connect, f'SELECT count(*) FROM "{SCHEMA}"."{t}"')[0][0] for t in TABLES}


def test_every_stream_loads_through_target_postgres_and_the_next_run_exports_only_the_new_version(
    tmp_path: Path, postgres_server: PostgresServer, pg_database: str
) -> None:
    connect = postgres_server.connect_kwargs(pg_database)
    target_config = {k: connect[k] for k in ("host", "port", "user", "password") if k in connect}
    target_config |= {"database": pg_database, "default_target_schema": SCHEMA}
    with FakeAdaptive() as fake:
        tap_config = {**make_config(fake), "modeled_sheets": ["Personnel"], "pseudonymization_key": KEY}
        state = _pipe(tmp_path, tap_config, target_config, None)
        counts = _counts(connect)
        assert all(counts[t] > 0 for t in TABLES), counts
        assert counts["data"] == 2 * 16

        (amount,) = _query(
            connect,
            f"SELECT amount FROM \"{SCHEMA}\".data WHERE version_id = 11 AND account_code = '4000' "
            f"AND level_name = 'Europe & Asia' AND period = '03/2025'",
        )[0]
        assert amount == Decimal(BIG)
        codes = {code for (code,) in _query(connect, f'SELECT DISTINCT account_code FROM "{SCHEMA}".data')}
        assert codes == {"4000", "5000", "Revenue Total"}
        assert not codes & set(MNPI)
        emails = [email for (email,) in _query(connect, f'SELECT email FROM "{SCHEMA}".users')]
        assert emails
        assert all(email.startswith("hl1:1:") for email in emails)

        fake.versions[2].children.append(Version(16, "FY26 Budget"))
        fake.calls.clear()
        _pipe(tmp_path, tap_config, target_config, state)
        assert fake.data_calls() == ["FY26 Budget"]
        again = _counts(connect)
        assert again == {**counts, "data": 3 * 16, "versions": counts["versions"] + 1}
