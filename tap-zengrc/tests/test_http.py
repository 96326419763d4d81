"""Failure handling: Retry-After, server errors, timeouts and rejected credentials."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import requests
from fake_api import DEFAULT_PASSWORD, FakeZenGRC, Fault
from tap_helpers import MOCK_BASE, MOCK_PASSWORD, MOCK_USERNAME, load_fixture, run_tap

from harborline_singer_shared.http import AuthenticationError
from harborline_singer_shared.retry import ManualClock, RetriesExhaustedError

PEOPLE_URL = f"{MOCK_BASE}/people"


def _ok() -> dict[str, Any]:
    return {"json": load_fixture("people_page1.json"), "status_code": 200}


def test_basic_auth_header_carries_key_id_and_secret(requests_mock: Any, mock_config: dict) -> None:
    matcher = requests_mock.get(PEOPLE_URL, [_ok()])
    run_tap(mock_config, streams={"people"})
    expected = base64.b64encode(f"{MOCK_USERNAME}:{MOCK_PASSWORD}".encode()).decode()
    assert matcher.request_history[0].headers["Authorization"] == f"Basic {expected}"


def test_retry_after_is_honoured(requests_mock: Any, mock_config: dict) -> None:
    matcher = requests_mock.get(
        PEOPLE_URL,
        [{"status_code": 429, "headers": {"Retry-After": "7"}, "json": {"message": "slow down"}}, _ok()],
    )
    clock = ManualClock()
    result = run_tap(mock_config, streams={"people"}, clock=clock)
    assert len(result.records()) == 2
    assert matcher.call_count == 2
    assert clock.sleeps == [7.0]


def test_server_errors_are_retried(requests_mock: Any, mock_config: dict) -> None:
    matcher = requests_mock.get(
        PEOPLE_URL,
        [{"status_code": 503, "text": "busy"}, {"status_code": 502, "text": "bad gateway"}, _ok()],
    )
    clock = ManualClock()
    result = run_tap(mock_config, streams={"people"}, clock=clock)
    assert [r["id"] for r in result.records()] == [41, 42]
    assert matcher.call_count == 3
    assert len(clock.sleeps) == 2


def test_persistent_server_errors_fail_after_max_retries(requests_mock: Any, mock_config: dict) -> None:
    matcher = requests_mock.get(PEOPLE_URL, status_code=500, text="error")
    with pytest.raises(RetriesExhaustedError) as caught:
        run_tap({**mock_config, "max_retries": 3}, streams={"people"})
    assert matcher.call_count == 3
    assert "HTTP 500" in str(caught.value)
    assert MOCK_PASSWORD not in str(caught.value)


@pytest.mark.parametrize(
    "error", [requests.exceptions.ReadTimeout, requests.exceptions.ConnectTimeout, requests.exceptions.ConnectionError]
)
def test_timeouts_and_connection_errors_are_retried(
    requests_mock: Any, mock_config: dict, error: type[Exception]
) -> None:
    matcher = requests_mock.get(PEOPLE_URL, [{"exc": error}, _ok()])
    result = run_tap(mock_config, streams={"people"})
    assert len(result.records()) == 2
    assert matcher.call_count == 2


def test_every_request_has_a_timeout_from_config(requests_mock: Any, mock_config: dict) -> None:
    seen: list[Any] = []
    original = requests.Session.send

    def spy(self: requests.Session, request: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("timeout"))
        return original(self, request, **kwargs)

    requests_mock.get(PEOPLE_URL, [_ok()])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(requests.Session, "send", spy)
        run_tap({**mock_config, "request_timeout": 17}, streams={"people"})
    assert seen == [(17.0, 17.0)]


def test_a_stalled_server_times_out_and_is_retried(fake_api: FakeZenGRC, fake_config: dict) -> None:
    """A real socket: the first answer is held until the client's read timeout gave up on it, the retry succeeds."""
    # Held for up to 120 s, far beyond the 5 s timeout, but only until the client closes the connection: the test
    # waits on the client giving up, and the other requests keep a timeout a loaded machine can meet.
    fake_api.inject(Fault(status=200, body={"data": []}, delay=120, path="/api/v2/objectives"))
    assert fake_config["request_timeout"] == 5
    result = run_tap(fake_config, streams={"objectives"})
    assert len(result.records()) == 25
    assert len(fake_api.requests) >= 3  # the stalled attempt, then the three pages


def test_401_is_one_clear_error_naming_the_settings(requests_mock: Any, mock_config: dict) -> None:
    matcher = requests_mock.get(
        PEOPLE_URL,
        status_code=401,
        headers={"WWW-Authenticate": 'Basic realm="api"'},
        json={"message": f"invalid key {MOCK_USERNAME}:{MOCK_PASSWORD}"},
    )
    with pytest.raises(AuthenticationError) as caught:
        run_tap(mock_config, streams={"people"})
    message = str(caught.value)
    assert matcher.call_count == 1  # a rejected credential is not retried
    assert "401" in message
    assert "`username`" in message
    assert "`password`" in message
    assert MOCK_PASSWORD not in message
    assert MOCK_USERNAME not in message  # the response body is not echoed


def test_403_names_the_settings_too(requests_mock: Any, mock_config: dict) -> None:
    requests_mock.get(PEOPLE_URL, status_code=403, json={"message": "forbidden"})
    with pytest.raises(AuthenticationError, match=r"lack permission.*`username` and `password`"):
        run_tap(mock_config, streams={"people"})


def test_fake_api_rejects_a_wrong_secret(fake_api: FakeZenGRC, fake_config: dict) -> None:
    with pytest.raises(AuthenticationError) as caught:
        run_tap({**fake_config, "password": "wrong-secret-value"}, streams={"risks"})
    assert "wrong-secret-value" not in str(caught.value)
    assert DEFAULT_PASSWORD not in str(caught.value)
    assert [r.status for r in fake_api.requests] == [401]
