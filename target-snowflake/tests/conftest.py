"""Fixtures: one fakesnow server per test session (in this process, so `fakesnow_shims` can patch it), reached by
the real connector over HTTP through the `host`/`port`/`protocol` settings, and a fresh schema per test."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

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


def open_connection(settings: dict[str, Any]) -> Any:
    """A connection with short timeouts: the emulator answers what it cannot run with HTTP 500, which the
    connector would otherwise retry for minutes."""
    params = session_parameters_for_tests(settings)
    return connector.connect(settings, session_parameters=params, **TEST_TIMEOUTS)


@pytest.fixture
def sf(snowflake_settings: dict[str, Any]) -> Iterator[tuple[Any, str]]:
    """(connection, schema): a new schema, current on the connection."""
    conn = open_connection(snowflake_settings)
    schema = f"t{next(_schemas)}"
    cur = conn.cursor()
    connector.ensure_schema(cur, schema)
    yield conn, schema
    conn.close()


@pytest.fixture
def wh(tmp_path: Path) -> Iterator[Any]:
    """A fresh schema to run the target into (see st_helpers.Warehouse)."""
    from st_helpers import Warehouse  # noqa: PLC0415

    warehouse = Warehouse(tmp_path)
    yield warehouse
    warehouse.close()


@pytest.fixture(autouse=True)
def _no_meltano_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests decide the schema themselves; a MELTANO_EXTRACTOR_NAMESPACE from the caller must not leak in."""
    monkeypatch.delenv("MELTANO_EXTRACTOR_NAMESPACE", raising=False)
