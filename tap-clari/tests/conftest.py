"""Shared fixtures: the fake Clari API, configs, and running the tap in-process."""

from __future__ import annotations

import contextlib
import io
import json
import sys
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pytest

# tests/ is not a package (no __init__.py): make fake_api importable by name (it is also a script).
TESTS_DIR = Path(__file__).parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

from fake_api import DEFAULT_API_KEY, FakeClari  # noqa: E402

from harborline_singer_shared.retry import ManualClock  # noqa: E402
from harborline_tap_clari.tap import TapClari  # noqa: E402

pytest_plugins = ["harborline_singer_shared.testing.fixtures"]

#: "Today" in the tests: with the default calendar the current quarter is 2025_Q1, the look-back adds 2024_Q4.
TODAY = date(2025, 2, 10)
KEY = "a-test-pseudonymization-key-0123456789"


@dataclass
class SyncResult:
    """The Singer messages one in-process run wrote, and its failure if it failed."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    error: BaseException | None = None
    stdout: str = ""
    tap: TapClari | None = None

    def records(self, stream: str) -> list[dict[str, Any]]:
        return [m["record"] for m in self.messages if m["type"] == "RECORD" and m["stream"] == stream]

    def schema(self, stream: str) -> dict[str, Any]:
        return next(m["schema"] for m in self.messages if m["type"] == "SCHEMA" and m["stream"] == stream)


def run_tap(
    config: dict[str, Any],
    *,
    today: date = TODAY,
    clock: ManualClock | None = None,
    state: dict[str, Any] | None = None,
    streams: set[str] | None = None,
    expect_error: bool = False,
) -> SyncResult:
    """Run a sync in this process with a fixed "today" and a manual clock (no real sleeps); capture stdout."""
    tap = TapClari(config=dict(config), state=state)
    tap.current_date = lambda: today  # type: ignore[method-assign]
    manual = clock or ManualClock()
    for name, stream in tap.streams.items():
        stream.clock = manual
        if streams is not None:
            stream.selected = name in streams
    buffer = io.StringIO()
    result = SyncResult(tap=tap)
    with contextlib.redirect_stdout(buffer):
        try:
            tap.sync_all()
        except Exception as exc:
            if not expect_error:
                raise
            result.error = exc
    result.stdout = buffer.getvalue()
    result.messages = [json.loads(line) for line in result.stdout.splitlines() if line]
    if expect_error and result.error is None:
        pytest.fail("the sync was expected to fail but succeeded")
    return result


@pytest.fixture(autouse=True)
def _no_developer_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's real settings in the environment must never reach a test."""
    import os  # noqa: PLC0415

    for name in list(os.environ):
        if name.startswith("TAP_CLARI_") or name == "HARBORLINE_PSEUDONYMIZATION_KEY":
            monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fake() -> Any:
    """A fake Clari with two forecasts, 6 users, jobs DONE on the third poll."""
    with FakeClari() as api:
        yield api


@pytest.fixture
def config(fake: FakeClari) -> dict[str, Any]:
    """A config for the fake: both forecasts, no poll wait, fast retries, personal data pseudonymized."""
    return {
        "api_url": fake.url,
        "api_key": DEFAULT_API_KEY,
        "forecast_ids": ["net_bookings", "renewals"],
        "poll_interval_seconds": 0,
        "max_retries": 3,
        "request_timeout": 10,
        "pseudonymization_key": KEY,
    }
