"""Fixtures: one fakesnow server per test session (in this process, so `fakesnow_shims` can patch it), reached by
the real connector over HTTP through the `host`/`port`/`protocol` settings, and a fresh schema per test."""

from __future__ import annotations

import itertools
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import fakesnow_shims
from sf_helpers import TEST_TIMEOUTS, session_parameters_for_tests

from harborline_target_snowflake import connector

_schemas = itertools.count(1)


def pytest_configure(config: pytest.Config) -> None:
    """The emulator's DuckDB warns about its own result copies; pytest.ini turns warnings into errors."""
    config.addinivalue_line("filterwarnings", "ignore:Arrow output on a DB-API result:UserWarning")


@pytest.fixture(scope="session")
def snowflake_settings() -> Iterator[dict[str, Any]]:
    """Settings of the emulated account (database HARBORLINE; the emulator creates it at first login)."""
    import fakesnow  # noqa: PLC0415 - imported only when a test needs the emulator

    fakesnow_shims.install()
    with fakesnow.server() as kwargs:
        yield {
            "account": "fakesnow",
            "user": "fake",
            "password": "snow-secret-password",
            "database": "HARBORLINE",
            "host": kwargs["host"],
            "port": kwargs["port"],
            "protocol": "http",
            "query_tag": "harborline-tests",
        }
    # The emulator keeps internal stages in a temporary folder it never removes.
    from fakesnow.transforms import stage  # noqa: PLC0415

    shutil.rmtree(stage.LOCAL_BUCKET_PATH, ignore_errors=True)


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
