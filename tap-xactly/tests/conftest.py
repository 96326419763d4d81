"""Shared fixtures: XC-shaped tables in the shared PostgreSQL, a password-checked reader role, in-process runs."""

from __future__ import annotations

import contextlib
import io
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

# tests/ is not a package (no __init__.py): make the helpers importable by name.
TESTS_DIR = Path(__file__).parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

from xc_fixture import READER, READER_PASSWORD, create_tables, execute, seed  # noqa: E402

from harborline_singer_shared.retry import ManualClock  # noqa: E402
from harborline_singer_shared.testing.postgres import PostgresServer  # noqa: E402
from harborline_tap_xactly.tap import TapXactly  # noqa: E402

pytest_plugins = ["harborline_singer_shared.testing.fixtures"]

KEY = "a-test-pseudonymization-key-0123456789"


class HookClock(ManualClock):
    """A manual clock (no real sleeping) that tells the test each time the tap waits before reconnecting."""

    def __init__(self, on_sleep: Callable[[int], None] | None = None) -> None:
        super().__init__()
        self.on_sleep = on_sleep

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        if self.on_sleep is not None:
            self.on_sleep(len(self.sleeps))


class Capture(io.StringIO):
    """The tap's stdout; calls `on_record(n)` after the n-th RECORD message was written (to inject faults)."""

    def __init__(self, on_record: Callable[[int, str], None] | None = None) -> None:
        super().__init__()
        self.on_record = on_record
        self.records = 0

    def write(self, text: str) -> int:
        written = super().write(text)
        if '"type":"RECORD"' in text:
            self.records += 1
            if self.on_record is not None:
                self.on_record(self.records, text)
        return written


@dataclass
class SyncResult:
    """The Singer messages one in-process run wrote, and its failure if it failed."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    error: BaseException | None = None
    tap: TapXactly | None = None

    def records(self, stream: str) -> list[dict[str, Any]]:
        return [m["record"] for m in self.messages if m["type"] == "RECORD" and m["stream"] == stream]

    def schema(self, stream: str) -> dict[str, Any]:
        return next(m["schema"] for m in self.messages if m["type"] == "SCHEMA" and m["stream"] == stream)

    @property
    def state(self) -> dict[str, Any]:
        return [m["value"] for m in self.messages if m["type"] == "STATE"][-1]

    def bookmark(self, stream: str) -> dict[str, Any]:
        return self.state["bookmarks"][stream]


def run_tap(
    config: dict[str, Any],
    *,
    state: dict[str, Any] | None = None,
    streams: set[str] | None = None,
    clock: ManualClock | None = None,
    on_record: Callable[[int, str], None] | None = None,
    expect_error: bool = False,
) -> SyncResult:
    """Run a sync in this process with a manual clock (no real sleeps); capture stdout."""
    tap = TapXactly(config=dict(config), state=state)
    manual = clock or ManualClock()
    tap.clock = manual
    if tap._sql_source is not None:
        tap._sql_source.clock = manual
    for name, stream in tap.streams.items():
        if streams is not None:
            stream.selected = name in streams
    buffer = Capture(on_record)
    result = SyncResult(tap=tap)
    with contextlib.redirect_stdout(buffer):
        try:
            tap.sync_all()
        except Exception as exc:
            if not expect_error:
                raise
            result.error = exc
    result.messages = [json.loads(line, parse_float=Decimal) for line in buffer.getvalue().splitlines() if line]
    if expect_error and result.error is None:
        pytest.fail("the sync was expected to fail but succeeded")
    return result


@pytest.fixture(autouse=True)
def _no_developer_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's real settings in the environment must never reach a test."""
    import os  # noqa: PLC0415

    for name in list(os.environ):
        if name.startswith("TAP_XACTLY_") or name == "HARBORLINE_PSEUDONYMIZATION_KEY":
            monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def reader_role(postgres_server: PostgresServer) -> str:
    """A login role whose password the server checks (the throwaway server trusts everyone else)."""
    if postgres_server.data_dir is None:
        pytest.skip("an external server: its authentication cannot be changed")
    hba = postgres_server.data_dir / "pg_hba.conf"
    rules = f"local all {READER} scram-sha-256\nhost all {READER} 0.0.0.0/0 scram-sha-256\n"
    hba.write_text(rules + hba.read_text())
    postgres_server.execute(
        [f"CREATE ROLE {READER} LOGIN PASSWORD '{READER_PASSWORD}'", "SELECT pg_reload_conf()"],
    )
    return READER


@dataclass
class XcDatabase:
    """One test's database of XC tables: superuser connect arguments, the reader's DSN, seeded row counts."""

    name: str
    admin: dict[str, Any]
    reader_dsn: str
    counts: dict[str, int]
    server: PostgresServer

    def sql(self, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        return execute(self.admin, statement, params)

    def sql_elsewhere(self, statement: str) -> None:
        """A statement run from the `postgres` database (ALTER DATABASE on this one)."""
        self.server.execute([statement])


@pytest.fixture
def xc_db(postgres_server: PostgresServer, pg_database: str, reader_role: str) -> XcDatabase:
    """Every XC table with three rows each, readable by the reader role."""
    admin = postgres_server.connect_kwargs(pg_database)
    create_tables(admin)
    counts = seed(admin)
    dsn = f"host={postgres_server.host} port={postgres_server.port} dbname={pg_database}"
    return XcDatabase(pg_database, admin, dsn, counts, postgres_server)


@pytest.fixture
def config(xc_db: XcDatabase) -> dict[str, Any]:
    """postgresql transport, the reader's credentials as settings (not in the DSN), personal data pseudonymized."""
    return {
        "sql_driver": "postgresql",
        "sql_dsn": xc_db.reader_dsn,
        "username": READER,
        "password": READER_PASSWORD,
        "pseudonymization_key": KEY,
        "max_reconnects": 3,
    }
