"""Shared fixtures: the fake Clari API, configs, and running the tap in-process."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest

# tests/ is not a package (no __init__.py): make fake_api importable by name (it is also a script).
TESTS_DIR = Path(__file__).parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

from fake_api import DEFAULT_API_KEY, FakeClari  # noqa: E402

from harborline_singer_shared.testing import taps  # noqa: E402
from harborline_singer_shared.testing.taps import SyncResult  # noqa: E402
from harborline_tap_clari.tap import TapClari  # noqa: E402

pytest_plugins = ["harborline_singer_shared.testing.fixtures"]

#: "Today" in the tests: with the default calendar the current quarter is 2025_Q1, the look-back adds 2024_Q4.
TODAY = date(2025, 2, 10)
KEY = "a-test-pseudonymization-key-0123456789"


def run_tap(config: dict[str, Any], *, today: date = TODAY, **options: Any) -> SyncResult[TapClari]:
    """The shared in-process runner with "today" pinned: the tap's current quarter follows the calendar."""

    def pin_today(tap: TapClari) -> None:
        tap.current_date = lambda: today  # type: ignore[method-assign]

    return taps.run_tap(TapClari, config, prepare=pin_today, **options)


@pytest.fixture(autouse=True)
def _no_developer_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's real settings in the environment must never reach a test."""
    taps.clear_developer_env(monkeypatch, "TAP_CLARI_")


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
