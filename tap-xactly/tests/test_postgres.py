"""End to end, as a new user would run it: `tap-xactly | target-postgres`, twice, from XC tables in PostgreSQL.

The first run loads all 40 tables; after rows are updated and added, the second run emits exactly those rows (the
STATE of the first run is passed on) and the target upserts them. Decimals arrive exact, names and e-mail addresses
as tokens.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from conftest import KEY, XcDatabase
from xc_fixture import BASE_TIME, EXACT_AMOUNT, READER, READER_PASSWORD, insert, row

from harborline_singer_shared.testing.taps import query_rows, target_postgres_command
from harborline_tap_xactly.tables import TABLES, table_by_stream

SCHEMA = "tap_xactly"
COLUMNS_OF = "SELECT column_name FROM information_schema.columns WHERE table_name = '{}'"


def _pipe(
    tmp_path: Path, tap_config: dict[str, Any], target_config: dict[str, Any], state: str | None
) -> tuple[int, str]:
    """Run the tap, then the target on its output: the tap's RECORD count and the target's last STATE."""
    (tmp_path / "tap.json").write_text(json.dumps(tap_config))
    (tmp_path / "target.json").write_text(json.dumps(target_config))
    tap_args = ["--config", str(tmp_path / "tap.json")]
    if state:
        (tmp_path / "state.json").write_text(state)
        tap_args += ["--state", str(tmp_path / "state.json")]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAP_", "TARGET_", "MELTANO_", "HARBORLINE_"))}
    output = tmp_path / "tap.out"
    with (tmp_path / "tap.log").open("w") as tap_log, output.open("wb") as tap_out:
        tap_status = subprocess.run(
            [sys.executable, "-m", "harborline_tap_xactly", *tap_args],
            stdout=tap_out,
            stderr=tap_log,
            env=env,
            check=False,
            timeout=600,
        ).returncode
    records = sum(b'"type":"RECORD"' in line for line in output.read_bytes().splitlines())
    with (tmp_path / "target.log").open("w") as target_log, output.open("rb") as tap_out:
        target = subprocess.run(
            [*target_postgres_command(), "--config", str(tmp_path / "target.json")],
            stdin=tap_out,
            stdout=subprocess.PIPE,
            stderr=target_log,
            env=env,
            check=False,
            timeout=600,
        )
    logs = (tmp_path / "tap.log").read_text()[-3000:] + (tmp_path / "target.log").read_text()[-3000:]
    assert (tap_status, target.returncode) == (0, 0), logs
    states = [line for line in target.stdout.decode().splitlines() if line.strip()]
    return records, states[-1] if states else ""


def test_every_table_loads_through_target_postgres_and_a_second_run_loads_only_what_changed(
    tmp_path: Path, xc_db: XcDatabase
) -> None:
    server = xc_db.server
    target_db = f"t_e2e_{uuid.uuid4().hex[:12]}"
    server.create_database(target_db)
    connect = server.connect_kwargs(target_db)
    target_config = {k: connect[k] for k in ("host", "port", "user", "password") if k in connect}
    target_config |= {"database": target_db, "default_target_schema": SCHEMA}
    tap_config = {
        "sql_driver": "postgresql",
        "sql_dsn": xc_db.reader_dsn,
        "username": READER,
        "password": READER_PASSWORD,
        "pseudonymization_key": KEY,
        "page_size": 2,
    }
    emitted, state = _pipe(tmp_path, tap_config, target_config, None)
    assert emitted == sum(xc_db.counts.values())
    for table in TABLES:
        (count,) = query_rows(connect, f'SELECT count(*) FROM "{SCHEMA}"."{table.stream}"')[0]
        assert count == xc_db.counts[table.stream], table.stream
    columns = {
        c
        for (c,) in query_rows(
            connect, "SELECT column_name FROM information_schema.columns WHERE table_name = 'xc_credit'"
        )
    }
    amount = next(c for c in columns if c.lower() == "amount")
    (exact,) = query_rows(connect, f'SELECT "{amount}" FROM "{SCHEMA}".xc_credit ORDER BY "{amount}" DESC LIMIT 1')[0]
    assert exact == EXACT_AMOUNT
    user_columns = {
        c
        for (c,) in query_rows(
            connect, "SELECT column_name FROM information_schema.columns WHERE table_name = 'xc_user'"
        )
    }
    email = next(c for c in user_columns if c.lower() == "email")
    assert all(e.startswith("hl1:1:") for (e,) in query_rows(connect, f'SELECT "{email}" FROM "{SCHEMA}".xc_user'))

    later = BASE_TIME + datetime.timedelta(days=30)
    credit_id = next(c for c in columns if c.lower() == "credit_id")
    name = next(c for c in columns if c.lower() == "name")
    xc_db.sql('UPDATE "XC_CREDIT" SET "MODIFIED_DATE" = %s, "NAME" = %s WHERE "CREDIT_ID" = 3', (later, "changed"))
    insert(xc_db.admin, "XC_CREDIT", [row(table_by_stream("xc_credit"), 77, later)])  # type: ignore[arg-type]
    emitted, _ = _pipe(tmp_path, tap_config, target_config, state)
    assert emitted == 2
    rows = dict(query_rows(connect, f'SELECT "{credit_id}", "{name}" FROM "{SCHEMA}".xc_credit'))
    assert len(rows) == xc_db.counts["xc_credit"] + 1
    assert rows[3] == "changed"
    assert rows[77] == "xc_credit 77"
