# Copyright 2026 The Harborline connectors authors
# SPDX-License-Identifier: Apache-2.0
"""Tests of the REST stream base class and the client-side pacer, on a fake clock."""

from __future__ import annotations

import itertools
import logging
from datetime import UTC, datetime

import pytest
import requests
import requests_mock
from singer_sdk import Tap
from singer_sdk import typing as th
from singer_sdk.exceptions import FatalAPIError

from harborline_singer_shared.auth import bearer_auth_from_config
from harborline_singer_shared.http import (
    RATE_LIMIT_SETTINGS,
    AuthenticationError,
    HarborlineRESTStream,
    RateLimiter,
    check_response,
    rate_limiter_for_tap,
)
from harborline_singer_shared.pagination import BodyNextLinkPaginator
from harborline_singer_shared.retry import (
    RETRY_SETTINGS,
    ManualClock,
    RetriesExhaustedError,
    RetryPolicy,
)

BASE = "https://api.example.com/v1"
URL = f"{BASE}/items"
TOKEN = "tok-VERY-SECRET-42"


class ItemsStream(HarborlineRESTStream):
    name = "items"
    path = "/items"
    url_base = BASE
    records_jsonpath = "$.data[*]"
    primary_keys = ("id",)
    auth_settings_hint = "`api_token`"
    schema = th.PropertiesList(th.Property("id", th.IntegerType)).to_dict()

    @property
    def authenticator(self):
        return bearer_auth_from_config(self.config, "api_token")

    def build_retry_policy(self) -> RetryPolicy:
        # Jitter pinned to the top of its range so waits are exact.
        return RetryPolicy.from_config(self.config, clock=self.clock, random=lambda: 1.0)

    def get_new_paginator(self):
        return None


class LinkedStream(ItemsStream):
    name = "linked"
    path = "/linked"

    def get_new_paginator(self):
        return BodyNextLinkPaginator("links.next.href", base_url=self.url_base)

    def get_url_params(self, context, next_page_token):
        return {"page": 1, "page_size": 2}


class DemoTap(Tap):
    name = "tap-demo"
    config_jsonschema = th.PropertiesList(
        th.Property("api_token", th.StringType, required=True, secret=True),
        *RETRY_SETTINGS,
        *RATE_LIMIT_SETTINGS,
    ).to_dict()

    def discover_streams(self):
        return [ItemsStream(self), LinkedStream(self)]


def make_tap(**config) -> DemoTap:
    return DemoTap(config={"api_token": TOKEN, **config}, parse_env_config=False)


def stream_of(tap: DemoTap, name: str = "items", clock: ManualClock | None = None):
    stream = tap.streams[name]
    stream.clock = clock or ManualClock()
    return stream


@pytest.fixture
def mock():
    with requests_mock.Mocker() as m:
        yield m


# --- retrying through the stream -----------------------------------------------------------


def test_503_503_200_succeeds(mock):
    mock.get(
        URL,
        [{"status_code": 503}, {"status_code": 503}, {"json": {"data": [{"id": 1}, {"id": 2}]}}],
    )
    stream = stream_of(make_tap())
    assert list(stream.get_records(None)) == [{"id": 1}, {"id": 2}]
    assert mock.call_count == 3
    assert stream.clock.sleeps == [1.0, 2.0]
    assert all(r.headers["Authorization"] == f"Bearer {TOKEN}" for r in mock.request_history)


def test_429_retry_after_7_waits_7_seconds(mock):
    mock.get(
        URL,
        [{"status_code": 429, "headers": {"Retry-After": "7"}}, {"json": {"data": [{"id": 1}]}}],
    )
    stream = stream_of(make_tap())
    assert list(stream.get_records(None)) == [{"id": 1}]
    assert stream.clock.sleeps == [7.0]


def test_timeout_is_retried(mock):
    mock.get(
        URL,
        [{"exc": requests.exceptions.ReadTimeout}, {"json": {"data": [{"id": 3}]}}],
    )
    stream = stream_of(make_tap())
    assert list(stream.get_records(None)) == [{"id": 3}]
    assert mock.call_count == 2
    assert stream.clock.sleeps == [1.0]


def test_sdk_backoff_does_not_multiply_attempts(mock):
    mock.get(URL, status_code=503)
    stream = stream_of(make_tap(max_retries=3))
    with pytest.raises(RetriesExhaustedError) as info:
        list(stream.get_records(None))
    # Exactly our 3 attempts, not 3 x the SDK's 5.
    assert mock.call_count == 3
    assert "503" in str(info.value)
    assert "/v1/items" in str(info.value)

    def func(request, context):
        return None

    assert stream.request_decorator(func) is func


def test_elapsed_budget_from_config(mock):
    mock.get(URL, status_code=429, headers={"Retry-After": "120"})
    stream = stream_of(make_tap(max_retry_elapsed_seconds=60))
    with pytest.raises(RetriesExhaustedError, match="Retry-After 120"):
        list(stream.get_records(None))
    assert stream.clock.sleeps == []


@pytest.mark.parametrize(
    ("config", "expected"),
    [({}, (30.0, 300.0)), ({"request_timeout": 45}, (30.0, 45.0)), ({"request_timeout": 5}, (5, 5))],
)
def test_timeouts_from_config_sent_with_every_request(mock, config, expected):
    mock.get(URL, [{"status_code": 500}, {"json": {"data": []}}])
    stream = stream_of(make_tap(**config))
    list(stream.get_records(None))
    assert [r.timeout for r in mock.request_history] == [expected, expected]
    assert stream.timeout == int(expected[1])


def test_retry_warning_has_no_token_or_query(mock, caplog):
    mock.get(URL, [{"status_code": 502}, {"json": {"data": []}}])
    stream = stream_of(make_tap())
    caplog.set_level(logging.INFO)
    list(stream.get_records(None))
    assert "Retrying GET https://api.example.com/v1/items after 502 (attempt 1/8)" in caplog.text
    assert TOKEN not in caplog.text


# --- error mapping -------------------------------------------------------------------------


def test_401_clear_error_naming_setting_without_token(mock):
    mock.get(URL, status_code=401, text=f'{{"error": "bad token {TOKEN}"}}')
    stream = stream_of(make_tap())
    with pytest.raises(AuthenticationError) as info:
        list(stream.get_records(None))
    message = str(info.value)
    assert "`api_token`" in message
    assert "401" in message
    assert "GET /v1/items" in message
    assert TOKEN not in message
    assert "bad token" not in message  # no body dump
    assert isinstance(info.value, FatalAPIError)
    assert mock.call_count == 1  # never retried
    assert stream.clock.sleeps == []


def test_403_says_permission(mock):
    mock.get(URL, status_code=403, text="secret body")
    stream = stream_of(make_tap())
    with pytest.raises(AuthenticationError, match="permission") as info:
        list(stream.get_records(None))
    assert info.value.status_code == 403
    assert "secret body" not in str(info.value)


def test_404_fatal_without_body_or_query(mock):
    mock.get(URL, status_code=404, text=f"not found {TOKEN}")
    stream = stream_of(make_tap())
    with pytest.raises(FatalAPIError) as info:
        list(stream.get_records(None))
    message = str(info.value)
    assert not isinstance(info.value, AuthenticationError)
    assert "404" in message
    assert "/v1/items" in message
    assert TOKEN not in message
    assert mock.call_count == 1


def test_response_error_message_is_body_free(mock):
    mock.get(f"{URL}?api_key=SECRET", status_code=500, text="body SECRET")
    stream = stream_of(make_tap())
    with requests.Session() as s:
        resp = s.get(f"{URL}?api_key=SECRET", timeout=1)
    message = stream.response_error_message(resp)
    assert message == "HTTP 500 Internal Server Error for GET /v1/items"


def test_check_response_outside_sdk(mock):
    mock.post(URL, [{"status_code": 200}, {"status_code": 401}, {"status_code": 422}])
    with requests.Session() as s:
        check_response(s.post(URL, timeout=1), auth_settings_hint="x")
        with pytest.raises(AuthenticationError, match="`username` and `password`"):
            check_response(s.post(URL, timeout=1), auth_settings_hint="`username` and `password`")
        with pytest.raises(FatalAPIError, match="422"):
            check_response(s.post(URL, timeout=1), auth_settings_hint="x")


# --- pagination through the stream ---------------------------------------------------------


def test_relative_next_link_followed(mock):
    linked = f"{BASE}/linked"
    mock.get(
        f"{linked}?page=1&page_size=2",
        json={"data": [{"id": 1}, {"id": 2}], "links": {"next": {"href": "/v1/linked?page=2"}}},
        complete_qs=True,
    )
    mock.get(
        f"{linked}?page=2&page_size=2",
        json={"data": [{"id": 3}], "links": {"next": None}},
        complete_qs=True,
    )
    stream = stream_of(make_tap(), "linked")
    assert [r["id"] for r in stream.get_records(None)] == [1, 2, 3]
    # The link's page replaced the stream's page; page_size was kept and not duplicated.
    assert [r.qs for r in mock.request_history] == [
        {"page": ["1"], "page_size": ["2"]},
        {"page": ["2"], "page_size": ["2"]},
    ]


# --- rate limiting -------------------------------------------------------------------------


def test_rate_limiter_paces_and_never_exceeds_limit_in_any_window():
    clock = ManualClock()
    rpm = 10
    limiter = RateLimiter(rpm, clock)
    n = 35
    starts = []
    for _ in range(n):
        limiter.acquire()
        starts.append(clock.monotonic())
    # N requests at R per minute take at least (N - 1) * 60 / R seconds.
    assert starts[-1] - starts[0] >= (n - 1) * 60 / rpm
    # Sliding check: no 60 s window [t, t + 60) holds more than R request starts.
    for t in starts:
        assert sum(1 for s in starts if t <= s < t + 60) <= rpm
    assert max(sum(1 for s in starts if t - 60 < s <= t) for t in starts) <= rpm


def test_rate_limiter_first_request_free_and_work_time_counts():
    clock = ManualClock()
    limiter = RateLimiter(60, clock)  # one per second
    assert limiter.acquire() == 0.0
    clock.advance(0.4)  # the request took 0.4 s
    assert limiter.acquire() == pytest.approx(0.6)
    clock.advance(5)  # idle: no debt, no burst credit either
    assert limiter.acquire() == 0.0
    assert limiter.acquire() == pytest.approx(1.0)


def test_rate_limiter_rejects_non_positive():
    with pytest.raises(ValueError):
        RateLimiter(0)


def test_rate_limiter_shared_per_tap_not_global():
    tap_a = make_tap(requests_per_minute=30)
    tap_b = make_tap(requests_per_minute=30)
    a1 = tap_a.streams["items"].rate_limiter
    a2 = tap_a.streams["linked"].rate_limiter
    b1 = tap_b.streams["items"].rate_limiter
    assert a1 is not None
    assert a1 is a2
    assert a1 is not b1
    assert a1.interval == 2.0
    assert make_tap().streams["items"].rate_limiter is None
    assert rate_limiter_for_tap(object(), None) is None


def test_stream_requests_paced_across_streams_and_retries(mock):
    clock = ManualClock()
    times: list[float] = []
    statuses = [503, 200, 200]

    def items_body(request, context):
        times.append(clock.monotonic())
        context.status_code = statuses.pop(0)
        return {"data": []}

    def linked_body(request, context):
        times.append(clock.monotonic())
        return {"data": [], "links": {}}

    mock.get(URL, json=items_body)
    mock.get(f"{BASE}/linked", json=linked_body)
    tap = make_tap(requests_per_minute=6)  # one request every 10 s
    items = stream_of(tap, "items", clock)
    linked = stream_of(tap, "linked", clock)
    assert items.rate_limiter is linked.rate_limiter
    list(items.get_records(None))  # 503, backoff 1 s, then the retry is paced too
    list(linked.get_records(None))
    list(items.get_records(None))
    assert len(times) == 4
    # Every request start is at least 10 s after the previous one, whichever stream sent it.
    assert all(b - a >= 10 - 1e-9 for a, b in itertools.pairwise(times))
    assert times[-1] - times[0] >= 30 - 1e-9


def test_manual_clock_time_is_wall_clock_free():
    clock = ManualClock(start=datetime(2024, 5, 1, tzinfo=UTC))
    RateLimiter(1, clock).acquire()
    assert clock.now() == datetime(2024, 5, 1, tzinfo=UTC)
