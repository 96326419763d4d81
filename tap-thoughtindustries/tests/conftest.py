"""Shared fixtures: the fake Thought Industries API and helpers to run the tap in-process."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any

import pytest

TESTS_DIR = Path(__file__).parent
if str(TESTS_DIR) not in sys.path:  # fake_api.py is both a script and a test helper module
    sys.path.insert(0, str(TESTS_DIR))

from fake_api import DEFAULT_API_KEY, FakeThoughtIndustries  # noqa: E402

from harborline_singer_shared.testing import taps  # noqa: E402
from harborline_tap_thoughtindustries.tap import TapThoughtIndustries  # noqa: E402

FIXTURES = TESTS_DIR / "fixtures"


#: The key every test runs with unless it says otherwise (not a secret: test data only).
TEST_PSEUDONYMIZATION_KEY = "tap-thoughtindustries-tests-key-0123456789"


@pytest.fixture(autouse=True)
def _test_pseudonymization_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Personal-data fields are pseudonymized by default, which needs a key: a test key, never a developer's.

    Tests of the keyless case remove it themselves.
    """
    monkeypatch.setenv("HARBORLINE_PSEUDONYMIZATION_KEY", TEST_PSEUDONYMIZATION_KEY)


def load_fixture(name: str) -> Any:
    """A vendor-shaped JSON response from tests/fixtures."""
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


#: The shared in-process runner for this tap. As this suite always ran, streams keep their real clock unless a test
#: passes one (tests that check waits pass a ManualClock).
run_tap = functools.partial(taps.run_tap, TapThoughtIndustries, manual_clock=False)


@pytest.fixture
def fake_api():
    """A small fake API (300 users, 3000 events over 6 days) for one test."""
    with FakeThoughtIndustries(users=300, events=3000, days=6, seed=7) as api:
        yield api


@pytest.fixture
def base_config(fake_api: FakeThoughtIndustries) -> dict[str, Any]:
    """A config reading the whole fake data range, with fast retries and no pacing waits."""
    data = fake_api.dataset
    return {
        "api_url": fake_api.url,
        "api_key": DEFAULT_API_KEY,
        "start_date": data.start.isoformat(),
        "end_date": data.end.isoformat(),
        "requests_per_minute": 1_000_000,
        "max_retries": 3,
        "request_timeout": 5,
    }
