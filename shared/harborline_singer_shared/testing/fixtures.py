"""Pytest plugin with the shared PostgreSQL and HTTP fixtures.

Enable it from a package's ``tests/conftest.py``::

    pytest_plugins = ["harborline_singer_shared.testing.fixtures"]

Why session scope for the server and a fresh database per test: starting PostgreSQL costs about a
second, creating a database a few milliseconds, and a database per test keeps tests independent
(and runnable in any order) without cleanup code in each test.
"""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any

import pytest

from harborline_singer_shared.testing.http import FixtureServer
from harborline_singer_shared.testing.postgres import PostgresServer

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "fixture_server",
    "pg_connect_kwargs",
    "pg_database",
    "pg_dsn",
    "postgres_server",
]

_MAX_IDENTIFIER = 63


def unique_database_name(test_name: str) -> str:
    """A valid, unique database name that still says which test made it (for debugging)."""
    stem = re.sub(r"[^a-z0-9_]+", "_", test_name.lower()).strip("_") or "test"
    suffix = uuid.uuid4().hex[:10]
    stem = stem[: _MAX_IDENTIFIER - len(suffix) - 4]
    return f"t_{stem}_{suffix}"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL server for the whole test session (see PostgresServer)."""
    with PostgresServer() as server:
        yield server


@pytest.fixture
def pg_database(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """Name of a fresh, empty database created for this test only.

    On an external server (``HARBORLINE_TEST_PG_DSN``) it is dropped after the test; throwaway
    servers are deleted whole at the end of the session, which is faster.
    """
    name = unique_database_name(request.node.name)
    postgres_server.create_database(name)
    yield name
    if postgres_server.kind == "external":
        postgres_server.drop_database(name)


@pytest.fixture
def pg_dsn(postgres_server: PostgresServer, pg_database: str) -> str:
    """The libpq URI of this test's fresh database."""
    return postgres_server.dsn(pg_database)


@pytest.fixture
def pg_connect_kwargs(postgres_server: PostgresServer, pg_database: str) -> dict[str, Any]:
    """``psycopg2.connect(**kwargs)`` arguments for this test's fresh database."""
    return postgres_server.connect_kwargs(pg_database)


@pytest.fixture
def fixture_server() -> Iterator[FixtureServer]:
    """A running :class:`FixtureServer` for this test; stopped afterwards."""
    with FixtureServer() as server:
        yield server
