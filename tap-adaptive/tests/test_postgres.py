"""End to end, as a new user would run it: `tap-adaptive | target-postgres` into a throwaway PostgreSQL, twice.

Every stream lands in its table; amounts arrive exactly in a numeric column; MNPI accounts are nowhere; users' e-mail
addresses arrive pseudonymized. The second run gets the first run's state from the target: only the version added in
between is exported, and the metadata tables are upserted (same row counts).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from conftest import KEY, make_config
from fake_api import BIG, MNPI, FakeAdaptive, Version

from harborline_singer_shared.testing.postgres import PostgresServer
from harborline_singer_shared.testing.taps import pipe_to_target_postgres, query_rows, target_postgres_config
from harborline_tap_adaptive.tap import STREAM_TYPES

SCHEMA = "tap_adaptive"
TABLES = sorted(stream.name for stream in STREAM_TYPES)


def _pipe(tmp_path: Path, tap_config: dict[str, Any], target_config: dict[str, Any], state: str | None) -> str:
    """Run tap | target; the target's last STATE line."""
    stdout = pipe_to_target_postgres(tmp_path, "harborline_tap_adaptive", tap_config, target_config, state=state)
    return stdout.strip().splitlines()[-1]


def _counts(connect: dict[str, Any]) -> dict[str, int]:
    return {t: query_rows(connect, f'SELECT count(*) FROM "{SCHEMA}"."{t}"')[0][0] for t in TABLES}


def test_every_stream_loads_through_target_postgres_and_the_next_run_exports_only_the_new_version(
    tmp_path: Path, postgres_server: PostgresServer, pg_database: str
) -> None:
    connect = postgres_server.connect_kwargs(pg_database)
    target_config = target_postgres_config(postgres_server, pg_database, SCHEMA)
    with FakeAdaptive() as fake:
        tap_config = {**make_config(fake), "modeled_sheets": ["Personnel"], "pseudonymization_key": KEY}
        state = _pipe(tmp_path, tap_config, target_config, None)
        counts = _counts(connect)
        assert all(counts[t] > 0 for t in TABLES), counts
        assert counts["data"] == 2 * 16

        (amount,) = query_rows(
            connect,
            f"SELECT amount FROM \"{SCHEMA}\".data WHERE version_id = 11 AND account_code = '4000' "
            f"AND level_name = 'Europe & Asia' AND period = '03/2025'",
        )[0]
        assert amount == Decimal(BIG)
        codes = {code for (code,) in query_rows(connect, f'SELECT DISTINCT account_code FROM "{SCHEMA}".data')}
        assert codes == {"4000", "5000", "Revenue Total"}
        assert not codes & set(MNPI)
        emails = [email for (email,) in query_rows(connect, f'SELECT email FROM "{SCHEMA}".users')]
        assert emails
        assert all(email.startswith("hl1:1:") for email in emails)

        fake.versions[2].children.append(Version(16, "FY26 Budget"))
        fake.calls.clear()
        _pipe(tmp_path, tap_config, target_config, state)
        assert fake.data_calls() == ["FY26 Budget"]
        again = _counts(connect)
        assert again == {**counts, "data": 3 * 16, "versions": counts["versions"] + 1}
