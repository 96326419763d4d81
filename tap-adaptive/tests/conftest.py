"""Shared fixtures: the fake Adaptive API, configs, and running the tap in-process."""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

# tests/ is not a package (no __init__.py): make fake_api importable by name (it is also a script).
TESTS_DIR = Path(__file__).parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

from fake_api import PASSWORD, USERNAME, FakeAdaptive  # noqa: E402

from harborline_singer_shared.retry import ManualClock  # noqa: E402
from harborline_tap_adaptive.tap import TapAdaptive  # noqa: E402

pytest_plugins = ["harborline_singer_shared.testing.fixtures"]

KEY = "a-test-pseudonymization-key-0123456789"
ACCOUNT_CODES = ["4000", "5000", "Revenue Total"]


@dataclass
class SyncResult:
    """The Singer messages one in-process run wrote, and its failure if it failed."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    error: BaseException | None = None
    stdout: str = ""
    tap: TapAdaptive | None = None

    def records(self, stream: str) -> list[dict[str, Any]]:
        return [m["record"] for m in self.messages if m["type"] == "RECORD" and m["stream"] == stream]

    def schema(self, stream: str) -> dict[str, Any]:
        return next(m["schema"] for m in self.messages if m["type"] == "SCHEMA" and m["stream"] == stream)

    def states(self) -> list[dict[str, Any]]:
        return [m["value"] for m in self.messages if m["type"] == "STATE"]


def run_tap(
    config: dict[str, Any],
    *,
    clock: ManualClock | None = None,
    state: dict[str, Any] | None = None,
    streams: set[str] | None = None,
    expect_error: bool = False,
) -> SyncResult:
    """Run a sync in this process with a manual clock (no real sleeps); capture stdout."""
    tap = TapAdaptive(config=dict(config), state=state)
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
    for name in list(os.environ):
        if name.startswith("TAP_ADAPTIVE_") or name == "HARBORLINE_PSEUDONYMIZATION_KEY":
            monkeypatch.delenv(name, raising=False)


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
