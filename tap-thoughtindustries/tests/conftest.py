"""Shared fixtures: the fake Thought Industries API and helpers to run the tap in-process."""

from __future__ import annotations

import contextlib
import io
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

TESTS_DIR = Path(__file__).parent
if str(TESTS_DIR) not in sys.path:  # fake_api.py is both a script and a test helper module
    sys.path.insert(0, str(TESTS_DIR))

from fake_api import DEFAULT_API_KEY, FakeThoughtIndustries  # noqa: E402

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


@dataclass
class SyncResult:
    """The Singer messages one in-process run wrote, split by type."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    error: BaseException | None = None

    def records(self, stream: str) -> list[dict[str, Any]]:
        return [m["record"] for m in self.messages if m["type"] == "RECORD" and m["stream"] == stream]

    @property
    def states(self) -> list[dict[str, Any]]:
        return [m["value"] for m in self.messages if m["type"] == "STATE"]

    @property
    def last_state(self) -> dict[str, Any]:
        return self.states[-1] if self.states else {}

    def bookmark(self, stream: str) -> str | None:
        return self.last_state.get("bookmarks", {}).get(stream, {}).get("replication_key_value")


def run_tap(
    config: dict[str, Any],
    *,
    streams: list[str] | None = None,
    state: dict[str, Any] | None = None,
    clock: Any = None,
    expect_error: bool = False,
) -> SyncResult:
    """Run a sync in this process, selecting only ``streams``; capture the messages it writes."""
    tap = TapThoughtIndustries(config=config, state=state, setup_mapper=True)
    for name, stream in tap.streams.items():
        if streams is not None and name not in streams:
            stream.selected = False
        if clock is not None:
            stream.clock = clock
    buffer = io.StringIO()
    result = SyncResult()
    with contextlib.redirect_stdout(buffer):
        try:
            tap.sync_all()
        except Exception as exc:  # the caller decides whether a failure was expected
            if not expect_error:
                raise
            result.error = exc
    result.messages = [json.loads(line) for line in buffer.getvalue().splitlines() if line]
    if expect_error and result.error is None:
        pytest.fail("the sync was expected to fail but succeeded")
    return result


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
