# Copyright 2026 The Harborline connectors authors
# SPDX-License-Identifier: Apache-2.0
"""Tests of the shared retry policy, driven by a fake clock so nothing really sleeps."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
import requests
import requests_mock
from singer_sdk.exceptions import FatalAPIError, RetriableAPIError

from harborline_singer_shared.retry import (
    RETRY_SETTINGS,
    ManualClock,
    RetriesExhaustedError,
    RetryAfterTooLongError,
    RetryPolicy,
    SystemClock,
    parse_retry_after,
    redact_url,
    send_with_retry,
    timeout_from_config,
)

URL = "https://api.example.com/v1/items"
SECRET_URL = f"{URL}?api_key=SECRET&page=2"
TOKEN = "Bearer tok-SUPERSECRET-123"
NOW = datetime(2024, 1, 1, tzinfo=UTC)
LOGGER = logging.getLogger("test.retry")


def always_max() -> float:
    """Jitter source returning the top of the range, so waits equal the backoff ceiling."""
    return 1.0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=NOW)


@pytest.fixture
def session():
    with requests.Session() as s:
        yield s


@pytest.fixture
def mock():
    with requests_mock.Mocker() as m:
        yield m


def policy(clock: ManualClock, **kwargs) -> RetryPolicy:
    kwargs.setdefault("random", always_max)
    return RetryPolicy(clock=clock, **kwargs)


def prepared(session: requests.Session, url: str = URL, **kwargs) -> requests.PreparedRequest:
    return session.prepare_request(requests.Request("GET", url, **kwargs))


def send(session, clock, pol=None, url=URL, **kwargs) -> requests.Response:
    return send_with_retry(
        session,
        prepared(session, url, **kwargs),
        pol or policy(clock),
        timeout=(5.0, 30.0),
        logger=LOGGER,
    )


# --- parse_retry_after ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7", 7.0),
        (" 120 ", 120.0),
        ("0", 0.0),
        ("Mon, 01 Jan 2024 00:00:30 GMT", 30.0),
        ("Mon, 01 Jan 2024 01:00:00 GMT", 3600.0),
        ("Sun, 31 Dec 2023 23:59:00 GMT", 0.0),  # a date in the past means "now"
    ],
)
def test_parse_retry_after_valid(value, expected):
    assert parse_retry_after(value, NOW) == expected


@pytest.mark.parametrize("value", [None, "", "   ", "-1", "-0", "+5", "1.5", "soon", "Mon, 99 Foo", "\u0663"])
def test_parse_retry_after_garbage_is_none(value):
    assert parse_retry_after(value, NOW) is None


def test_parse_retry_after_uses_now_argument():
    later = NOW + timedelta(seconds=10)
    assert parse_retry_after("Mon, 01 Jan 2024 00:00:30 GMT", later) == 20.0


# --- policy shape --------------------------------------------------------------------------


def test_policy_defaults():
    p = RetryPolicy()
    assert p.max_attempts == 8
    assert p.max_elapsed_seconds == 600.0
    assert isinstance(p.clock, SystemClock)


def test_policy_is_frozen():
    p = RetryPolicy()
    with pytest.raises(AttributeError):
        p.max_attempts = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"max_elapsed_seconds": 0},
        {"base_delay": 0},
        {"max_delay": -1},
        {"factor": 0.5},
    ],
)
def test_policy_rejects_unbounded_settings(kwargs):
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)


def test_backoff_ceiling_grows_exponentially_and_is_capped():
    p = RetryPolicy(base_delay=1.0, factor=2.0, max_delay=10.0)
    assert [p.backoff_ceiling(n) for n in range(1, 8)] == [1, 2, 4, 8, 10, 10, 10]
    assert p.backoff_ceiling(10_000) == 10.0  # no overflow on absurd retry numbers
    with pytest.raises(ValueError):
        p.backoff_ceiling(0)


def test_full_jitter_scales_ceiling_by_random():
    values = iter([0.0, 0.5, 0.25])
    p = RetryPolicy(base_delay=2.0, factor=3.0, max_delay=100.0, random=lambda: next(values))
    assert [p.backoff_delay(n) for n in (1, 2, 3)] == [0.0, 3.0, 4.5]


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        *[(s, True) for s in (429, 500, 502, 503, 504, 599)],
        *[(s, False) for s in (200, 301, 400, 401, 403, 404, 408, 422, 600)],
    ],
)
def test_retryable_statuses(status, retryable):
    assert RetryPolicy().is_retryable_status(status) is retryable


def test_from_config_maps_settings_and_defaults():
    p = RetryPolicy.from_config({"max_retries": 3, "max_retry_elapsed_seconds": 42})
    assert (p.max_attempts, p.max_elapsed_seconds) == (3, 42.0)
    d = RetryPolicy.from_config({})
    assert (d.max_attempts, d.max_elapsed_seconds) == (8, 600.0)
    n = RetryPolicy.from_config({"max_retries": None, "max_retry_elapsed_seconds": None})
    assert (n.max_attempts, n.max_elapsed_seconds) == (8, 600.0)
    c = ManualClock()
    o = RetryPolicy.from_config({"max_retries": 2}, clock=c, base_delay=0.5)
    assert o.clock is c
    assert o.base_delay == 0.5


def test_retry_settings_schema_fragment():
    props = RETRY_SETTINGS.to_dict()["properties"]
    assert props["request_timeout"]["default"] == 300
    assert props["max_retries"]["default"] == 8
    assert props["max_retry_elapsed_seconds"]["default"] == 600
    assert props["max_pages"]["default"] == 100_000  # a bound on requests too, so every tap has it
    # A tap appends it to its own list.
    names = [p.name for p in RETRY_SETTINGS]
    assert names == ["request_timeout", "max_retries", "max_retry_elapsed_seconds", "max_pages"]


def test_timeout_from_config():
    assert timeout_from_config({}) == (30.0, 300.0)
    assert timeout_from_config({"request_timeout": 45}) == (30.0, 45.0)
    assert timeout_from_config({"request_timeout": 10}) == (10.0, 10.0)
    with pytest.raises(ValueError):
        timeout_from_config({"request_timeout": 0})


def test_redact_url_drops_query_userinfo_and_fragment():
    assert redact_url("https://user:pw@api.example.com:8443/v1/x?api_key=S#frag") == (
        "https://api.example.com:8443/v1/x"
    )
    assert redact_url(None) == "<no url>"


# --- send_with_retry -----------------------------------------------------------------------


def test_success_first_try_no_sleep(session, mock, clock):
    mock.get(URL, status_code=200, json={"ok": True})
    assert send(session, clock).json() == {"ok": True}
    assert mock.call_count == 1
    assert clock.sleeps == []


def test_exact_backoff_growth_bounded_by_max_delay(session, mock, clock):
    mock.get(URL, status_code=503)
    pol = policy(clock, max_attempts=8, base_delay=1.0, factor=2.0, max_delay=10.0)
    with pytest.raises(RetriesExhaustedError) as info:
        send(session, clock, pol)
    assert mock.call_count == 8
    assert clock.sleeps == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
    assert info.value.attempts == 8
    assert info.value.status_code == 503


def test_jitter_is_injectable_and_applied(session, mock, clock):
    mock.get(URL, [{"status_code": 500}, {"status_code": 500}, {"status_code": 200}])
    pol = policy(clock, base_delay=4.0, random=lambda: 0.25)
    assert send(session, clock, pol).status_code == 200
    assert clock.sleeps == [1.0, 2.0]


def test_retry_after_seconds_honoured(session, mock, clock):
    mock.get(URL, [{"status_code": 429, "headers": {"Retry-After": "7"}}, {"status_code": 200}])
    assert send(session, clock).status_code == 200
    assert clock.sleeps == [7.0]


def test_retry_after_http_date_honoured(session, mock, clock):
    mock.get(
        URL,
        [
            {"status_code": 503, "headers": {"Retry-After": "Mon, 01 Jan 2024 00:00:30 GMT"}},
            {"status_code": 200},
        ],
    )
    assert send(session, clock).status_code == 200
    assert clock.sleeps == [30.0]


def test_retry_after_above_max_delay_is_still_honoured(session, mock, clock):
    mock.get(URL, [{"status_code": 429, "headers": {"Retry-After": "90"}}, {"status_code": 200}])
    assert send(session, clock, policy(clock, max_delay=5.0)).status_code == 200
    assert clock.sleeps == [90.0]


def test_garbage_retry_after_falls_back_to_backoff(session, mock, clock):
    mock.get(URL, [{"status_code": 429, "headers": {"Retry-After": "-3"}}, {"status_code": 200}])
    assert send(session, clock, policy(clock, base_delay=2.0)).status_code == 200
    assert clock.sleeps == [2.0]


def test_retry_after_beyond_budget_gives_up_without_sleeping(session, mock, clock):
    mock.get(URL, status_code=429, headers={"Retry-After": "3600"})
    with pytest.raises(RetryAfterTooLongError) as info:
        send(session, clock, policy(clock, max_elapsed_seconds=600))
    assert clock.sleeps == []
    assert mock.call_count == 1
    message = str(info.value)
    assert "429" in message
    assert "/v1/items" in message
    assert "3600" in message
    assert "max_retry_elapsed_seconds" in message


def test_retry_after_counts_time_already_spent(session, mock, clock):
    def slow_429(request, context):
        clock.advance(50)  # the request itself took 50 s
        context.status_code = 429
        context.headers["Retry-After"] = "30"
        return ""

    mock.get(URL, text=slow_429)
    with pytest.raises(RetryAfterTooLongError):
        send(session, clock, policy(clock, max_elapsed_seconds=100))
    # First wait fits (50 spent + 30 < 100); the second (130 spent) does not.
    assert clock.sleeps == [30.0]
    assert mock.call_count == 2


def test_attempt_bound(session, mock, clock):
    mock.get(URL, status_code=500)
    with pytest.raises(RetriesExhaustedError) as info:
        send(session, clock, policy(clock, max_attempts=3))
    assert mock.call_count == 3
    assert len(clock.sleeps) == 2
    message = str(info.value)
    assert "500" in message
    assert "/v1/items" in message
    assert "3 attempt" in message


def test_single_attempt_policy_never_retries(session, mock, clock):
    mock.get(URL, status_code=503)
    with pytest.raises(RetriesExhaustedError):
        send(session, clock, policy(clock, max_attempts=1))
    assert mock.call_count == 1
    assert clock.sleeps == []


def test_elapsed_time_bound(session, mock, clock):
    mock.get(URL, status_code=502)
    pol = policy(clock, max_attempts=100, max_elapsed_seconds=10, base_delay=4.0, factor=2.0)
    with pytest.raises(RetriesExhaustedError) as info:
        send(session, clock, pol)
    # Waits 4 (4 s spent, 6 left), then the next wait of 8 would pass the 10 s budget.
    assert clock.sleeps == [4.0]
    assert mock.call_count == 2
    assert clock.total_slept <= 10
    assert "max_retry_elapsed_seconds" in str(info.value)


def test_gave_up_error_is_fatal_not_retriable(session, mock, clock):
    mock.get(URL, status_code=503)
    with pytest.raises(FatalAPIError) as info:
        send(session, clock, policy(clock, max_attempts=2))
    # A RetriableAPIError would make an outer retry loop multiply the attempts.
    assert not isinstance(info.value, RetriableAPIError)
    assert info.value.response is not None
    assert info.value.response.status_code == 503


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 409, 410, 422])
def test_other_4xx_never_retried(session, mock, clock, status):
    mock.get(URL, status_code=status)
    assert send(session, clock).status_code == status
    assert mock.call_count == 1
    assert clock.sleeps == []


@pytest.mark.parametrize("status", [500, 501, 502, 503, 504, 520, 599, 429])
def test_every_5xx_and_429_retried(session, mock, clock, status):
    mock.get(URL, [{"status_code": status}, {"status_code": 200}])
    assert send(session, clock).status_code == 200
    assert mock.call_count == 2
    assert clock.sleeps == [1.0]


@pytest.mark.parametrize(
    "exc",
    [
        requests.exceptions.ConnectionError,
        requests.exceptions.ConnectTimeout,
        requests.exceptions.ReadTimeout,
        requests.exceptions.Timeout,
        requests.exceptions.ChunkedEncodingError,
    ],
)
def test_network_errors_retried(session, mock, clock, exc):
    mock.get(URL, [{"exc": exc}, {"exc": exc}, {"status_code": 200, "text": "ok"}])
    assert send(session, clock).text == "ok"
    assert mock.call_count == 3
    assert clock.sleeps == [1.0, 2.0]


def test_other_exceptions_propagate_unretried(session, mock, clock):
    mock.get(URL, exc=requests.exceptions.InvalidURL)
    with pytest.raises(requests.exceptions.InvalidURL):
        send(session, clock)
    assert mock.call_count == 1


def test_network_errors_exhausted(session, mock, clock):
    mock.get(URL, exc=requests.exceptions.ReadTimeout(f"Read timed out for {SECRET_URL}"))
    with pytest.raises(RetriesExhaustedError) as info:
        send(session, clock, policy(clock, max_attempts=3))
    assert mock.call_count == 3
    assert "ReadTimeout" in str(info.value)
    assert info.value.status_code is None
    assert isinstance(info.value.last_error, requests.exceptions.ReadTimeout)
    # Not chained: the network exception's text would print the URL with its query.
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


def test_timeout_always_passed(session, mock, clock):
    mock.get(URL, status_code=200)
    send(session, clock)
    assert mock.request_history[0].timeout == (5.0, 30.0)


@pytest.mark.parametrize("bad", [None, 0, -1, (None, 10.0), (5.0, 0)])
def test_missing_timeout_refused(session, mock, clock, bad):
    mock.get(URL, status_code=200)
    with pytest.raises(ValueError, match="timeout"):
        send_with_retry(session, prepared(session), policy(clock), timeout=bad, logger=LOGGER)
    assert mock.call_count == 0


def test_before_attempt_called_for_every_attempt(session, mock, clock):
    mock.get(URL, [{"status_code": 503}, {"exc": requests.exceptions.ConnectionError}, {}])
    calls = []
    send_with_retry(
        session,
        prepared(session),
        policy(clock),
        timeout=1.0,
        logger=LOGGER,
        before_attempt=lambda: calls.append(clock.monotonic()),
    )
    assert len(calls) == 3


def test_post_body_resent_unchanged(session, mock, clock):
    mock.post(URL, [{"status_code": 503}, {"status_code": 200}])
    request = session.prepare_request(
        requests.Request("POST", URL, data=b"<xml>q</xml>", headers={"Content-Type": "text/xml"})
    )
    send_with_retry(session, request, policy(clock), timeout=(1.0, 2.0), logger=LOGGER)
    assert [r.body for r in mock.request_history] == [b"<xml>q</xml>", b"<xml>q</xml>"]


# --- logging -------------------------------------------------------------------------------


def test_retry_logged_without_credentials(session, mock, clock, caplog):
    mock.get(
        URL,
        [
            {"status_code": 503, "text": f"upstream echo {TOKEN} SECRET"},
            {"exc": requests.exceptions.ConnectionError(f"failed {SECRET_URL} {TOKEN}")},
            {"status_code": 200},
        ],
    )
    # INFO and up: the DEBUG lines of urllib3/requests_mock print full URLs by design, which is
    # why production logging must never run at DEBUG with live credentials.
    caplog.set_level(logging.INFO)
    send(session, clock, url=SECRET_URL, headers={"Authorization": TOKEN})
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    first, second = (r.getMessage() for r in warnings)
    assert first.startswith(f"Retrying GET {URL} after 503 (attempt 1/8); waiting 1.00 s")
    assert second.startswith(f"Retrying GET {URL} after ConnectionError (attempt 2/8)")
    assert "waiting 2.00 s" in second
    assert "SECRET" not in caplog.text
    assert TOKEN not in caplog.text
    assert "tok-SUPERSECRET" not in caplog.text
    assert "api_key" not in caplog.text


def test_giving_up_error_contains_no_credentials(session, mock, clock):
    mock.get(URL, status_code=500, text=f"echo {TOKEN}")
    with pytest.raises(RetriesExhaustedError) as info:
        send(
            session,
            clock,
            policy(clock, max_attempts=2),
            url=SECRET_URL,
            headers={"Authorization": TOKEN},
        )
    text = str(info.value) + repr(info.value) + info.value.url
    assert "SECRET" not in text
    assert "/v1/items" in str(info.value)
    assert info.value.url == URL


def test_manual_clock_requires_aware_start():
    with pytest.raises(ValueError):
        ManualClock(start=datetime(2024, 1, 1))  # noqa: DTZ001


def test_manual_clock_advances_wall_and_monotonic():
    c = ManualClock(start=NOW)
    m0 = c.monotonic()
    c.sleep(5)
    c.advance(2)
    c.sleep(-1)  # negative sleeps are clamped, as with the system clock
    assert c.monotonic() - m0 == 7
    assert c.now() == NOW + timedelta(seconds=7)
    assert c.sleeps == [5, 0.0]
    assert c.total_slept == 5
