"""Fixtures: one fakesnow server per test session (in this process, so `fakesnow_shims` can patch it), reached by
the real connector over HTTP through the `host`/`port`/`protocol` settings, and a fresh schema per test.

`account` is the emulator, or for tests marked `sf_live.both_accounts` also a live account (`TARGET_SNOWFLAKE_*`;
skipped without it); `wh` and `sf` work in the account it gives."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import fakesnow_errors
import sf_live
import sf_probe  # noqa: F401 - registers the shared warehouse suite for assertion rewriting before it is imported
import sf_server
from sf_helpers import TEST_TIMEOUTS, session_parameters_for_tests

from harborline_target_snowflake import connector

_schemas = itertools.count(1)


def pytest_configure(config: pytest.Config) -> None:
    """The emulator's DuckDB warns about its own result copies; pytest.ini turns warnings into errors."""
    config.addinivalue_line("filterwarnings", "ignore:Arrow output on a DB-API result:UserWarning")


@pytest.fixture(scope="session")
def snowflake_settings() -> dict[str, Any]:
    """Settings of the emulated account (database HARBORLINE; the emulator creates it at first login)."""
    return sf_server.settings()


def open_connection(settings: dict[str, Any], *, live: bool = False) -> Any:
    """A connection; to the emulator with short timeouts: it answers what it cannot run with HTTP 500, which the
    connector would otherwise retry for minutes (a live account keeps the production timeouts)."""
    params = session_parameters_for_tests(settings)
    return connector.connect(settings, session_parameters=params, **({} if live else TEST_TIMEOUTS))


@pytest.fixture
def account(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings of the account the test runs against: the emulator unless parametrized `live` (sf_live)."""
    if getattr(request, "param", "emulator") != "live":
        return sf_server.settings()
    settings = sf_live.settings()
    if settings is None:
        pytest.skip(sf_live.skip_reason())
    return settings


@pytest.fixture
def sf(account: dict[str, Any]) -> Iterator[tuple[Any, str]]:
    """(connection, schema): a new schema, current on the connection (a live one is dropped afterwards)."""
    live = account.get("account") != sf_server.ACCOUNT
    conn = open_connection(account, live=live)
    schema = sf_live.schema_name() if live else f"t{next(_schemas)}"
    cur = conn.cursor()
    connector.ensure_schema(cur, schema)
    try:
        yield conn, schema
    finally:
        if live:
            cur.execute(f"DROP SCHEMA IF EXISTS {connector.quote(schema)} CASCADE")
        conn.close()


@pytest.fixture
def wh(tmp_path: Path, account: dict[str, Any]) -> Iterator[Any]:
    """A fresh schema to run the target into (see st_helpers.Warehouse); a live one is dropped afterwards."""
    from st_helpers import Warehouse  # noqa: PLC0415

    warehouse = Warehouse(tmp_path, account)
    yield warehouse
    warehouse.close()


@pytest.fixture
def faults() -> Iterator[fakesnow_errors.Faults]:
    """Arm emulator faults (`faults.inject(pattern, errno, message)`); disarmed after the test."""
    sf_server.settings()  # the emulator runs
    yield fakesnow_errors.FAULTS
    fakesnow_errors.FAULTS.clear()


@pytest.fixture(autouse=True)
def _no_meltano_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests decide the schema themselves; a MELTANO_EXTRACTOR_NAMESPACE from the caller must not leak in."""
    monkeypatch.delenv("MELTANO_EXTRACTOR_NAMESPACE", raising=False)
