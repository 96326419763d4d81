"""Shared fixtures: the fake ZenGRC API and configs (helpers live in tap_helpers.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

# tests/ is not a package (no __init__.py): make its helper modules importable by name.
TESTS_DIR = Path(__file__).parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

from fake_api import DEFAULT_PASSWORD, DEFAULT_USERNAME, FakeZenGRC  # noqa: E402
from tap_helpers import MOCK_BASE, MOCK_PASSWORD, MOCK_USERNAME  # noqa: E402


@pytest.fixture(autouse=True)
def _no_credential_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's real credentials in the environment must never leak into a test."""
    for name in (
        "ZENGRC_USERNAME",
        "ZENGRC_PASSWORD",
        "TAP_ZENGRC_USERNAME",
        "TAP_ZENGRC_PASSWORD",
        "TAP_ZENGRC_API_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    # Personal-data fields are pseudonymized by default, which needs a key: a test key, never a developer's.
    # Tests of the keyless case remove it themselves.
    monkeypatch.setenv("HARBORLINE_PSEUDONYMIZATION_KEY", TEST_PSEUDONYMIZATION_KEY)


#: The key every test runs with unless it says otherwise (not a secret: test data only).
TEST_PSEUDONYMIZATION_KEY = "tap-zengrc-tests-key-0123456789"


@pytest.fixture
def mock_config() -> dict[str, Any]:
    """Config for requests-mock tests (no real host is contacted)."""
    return {
        "api_url": MOCK_BASE,
        "username": MOCK_USERNAME,
        "password": MOCK_PASSWORD,
        "max_retries": 4,
        "request_timeout": 5,
    }


@pytest.fixture
def fake_api() -> Any:
    """A running fake API with 25 records per stream."""
    with FakeZenGRC(records=25, seed=7) as fake:
        yield fake


@pytest.fixture
def fake_config(fake_api: FakeZenGRC) -> dict[str, Any]:
    """Config pointing at the fake API, small pages so pagination is exercised."""
    return {
        "api_url": fake_api.url,
        "username": DEFAULT_USERNAME,
        "password": DEFAULT_PASSWORD,
        "page_size": 10,
        "request_timeout": 5,
        "max_retries": 3,
    }
