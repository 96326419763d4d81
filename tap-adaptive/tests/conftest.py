"""Shared fixtures: the fake Adaptive API, configs, and running the tap in-process."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any

import pytest

# tests/ is not a package (no __init__.py): make fake_api importable by name (it is also a script).
TESTS_DIR = Path(__file__).parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

from fake_api import PASSWORD, USERNAME, FakeAdaptive  # noqa: E402

from harborline_singer_shared.testing import taps  # noqa: E402
from harborline_tap_adaptive.tap import TapAdaptive  # noqa: E402

pytest_plugins = ["harborline_singer_shared.testing.fixtures"]

KEY = "a-test-pseudonymization-key-0123456789"
ACCOUNT_CODES = ["4000", "5000", "Revenue Total"]


#: The shared in-process runner for this tap (a fresh ManualClock per run: no real sleeps).
run_tap = functools.partial(taps.run_tap, TapAdaptive)


@pytest.fixture(autouse=True)
def _no_developer_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's real settings in the environment must never reach a test."""
    taps.clear_developer_env(monkeypatch, "TAP_ADAPTIVE_")


@pytest.fixture
def fake() -> Any:
    """A fake Adaptive instance with the default tree and data."""
    with FakeAdaptive() as api:
        yield api


def make_config(fake: FakeAdaptive, **extra: Any) -> dict[str, Any]:
    """A config for the fake: the allow-list, the version folder, fast retries, personal data pseudonymized."""
    return {
        "api_url": fake.url,
        "username": USERNAME,
        "password": PASSWORD,
        "version_folder": "Shared with Data",
        "account_codes": list(ACCOUNT_CODES),
        "max_retries": 3,
        "request_timeout": 10,
        "pseudonymization_key": KEY,
        **extra,
    }


@pytest.fixture
def config(fake: FakeAdaptive) -> dict[str, Any]:
    """See make_config."""
    return make_config(fake)
