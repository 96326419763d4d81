# Copyright 2026 The Harborline connectors authors
# SPDX-License-Identifier: Apache-2.0
"""The REST stream base class every Harborline tap's client.py subclasses.

It exists so that retrying, timeouts, pacing and error messages are decided once: every request
goes through :func:`~harborline_singer_shared.retry.send_with_retry` (the SDK's own ``backoff``
decorator is switched off so attempts are not multiplied), every request has a timeout taken from
the config, an optional ``requests_per_minute`` pacer is shared by all streams of one tap, and a
rejected credential produces one clear message naming the setting to check, with no secret and no
response body in it.
"""

from __future__ import annotations

import threading
from functools import cached_property
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import ParseResult, urlsplit

from singer_sdk import typing as th
from singer_sdk.exceptions import FatalAPIError
from singer_sdk.streams import RESTStream

from harborline_singer_shared.pagination import apply_next_link
from harborline_singer_shared.retry import (
    DEFAULT_REQUEST_TIMEOUT_SECONDS,
    SYSTEM_CLOCK,
    Clock,
    RetryPolicy,
    send_with_retry,
    timeout_from_config,
)

if TYPE_CHECKING:
    import requests
    from singer_sdk.helpers.types import Context, RequestFunc
    from singer_sdk.streams.rest import HTTPRequest, PageContext

__all__ = [
    "RATE_LIMIT_SETTINGS",
    "AuthenticationError",
    "HarborlineRESTStream",
    "RateLimiter",
    "auth_error_message",
    "check_response",
    "rate_limiter_for_tap",
]

#: Attribute of the tap object holding its shared pacer: one per tap instance, never global, so
#: two taps in one process (tests, benchmarks) do not slow each other down.
_TAP_LIMITER_ATTRIBUTE = "_harborline_rate_limiter"

RATE_LIMIT_SETTINGS = th.PropertiesList(
    th.Property(
        "requests_per_minute",
        th.NumberType(exclusive_minimum=0),
        description=(
            "Client-side pacing: at most this many HTTP requests per minute across all streams "
            "(retries included), evenly spaced. Unset means no pacing."
        ),
    ),
)


class AuthenticationError(FatalAPIError):
    """The API rejected the credentials (401) or their permissions (403).

    Retrying cannot help, so it is fatal, and its message names the settings to check.
    """

    def __init__(self, message: str, *, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


def _status_text(response: requests.Response) -> str:
    try:
        phrase = HTTPStatus(response.status_code).phrase
    except ValueError:
        phrase = response.reason or ""
    return f"{response.status_code} {phrase}".strip()


def _request_label(response: requests.Response) -> str:
    method = response.request.method if response.request is not None else None
    path = urlsplit(response.url or "").path or "/"
    return f"{method} {path}" if method else path


def auth_error_message(response: requests.Response, auth_settings_hint: str) -> str:
    """Return the one message shown when credentials are rejected.

    It names the status, method and URL path (never the query string, headers or body, which can
    echo the credential back) and the setting(s) the user should check.
    """
    if response.status_code == HTTPStatus.FORBIDDEN:
        problem = "accepted the credentials but they lack permission for this resource"
    else:
        problem = "rejected the credentials (missing, wrong, expired or revoked)"
    return (
        f"Authentication failed: HTTP {_status_text(response)} for {_request_label(response)}. "
        f"The API {problem}. Check the {auth_settings_hint} setting(s)."
    )


def check_response(response: requests.Response, *, auth_settings_hint: str) -> None:
    """Raise a clear, secret-free error for any HTTP error status; return for success.

    Meant for code that sends with :func:`send_with_retry` directly (outside a stream): by then
    transient statuses were already retried, so whatever error remains is final.

    Raises:
        AuthenticationError: For 401 and 403.
        FatalAPIError: For any other status of 400 and above.
    """
    status = response.status_code
    if status in {HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN}:
        raise AuthenticationError(auth_error_message(response, auth_settings_hint), status_code=status)
    if status >= HTTPStatus.BAD_REQUEST:
        kind = "Client" if status < HTTPStatus.INTERNAL_SERVER_ERROR else "Server"
        raise FatalAPIError(f"HTTP {_status_text(response)} ({kind} Error) for {_request_label(response)}")


class RateLimiter:
    """Fixed-interval pacer: requests are spaced at least ``60 / requests_per_minute`` apart.

    Even spacing (rather than a bursty token bucket) guarantees that no 60-second window ever
    holds more than ``requests_per_minute`` requests, which is what vendor quotas count. Slots are
    reserved under a lock and slept outside it, so concurrent callers queue fairly.
    """

    def __init__(self, requests_per_minute: float, clock: Clock = SYSTEM_CLOCK) -> None:
        if requests_per_minute <= 0:
            raise ValueError("requests_per_minute must be positive")
        self.requests_per_minute = float(requests_per_minute)
        self.interval = 60.0 / self.requests_per_minute
        self.clock = clock
        self._next_slot: float | None = None
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Wait until the next request may start; return the seconds waited."""
        with self._lock:
            now = self.clock.monotonic()
            slot = now if self._next_slot is None else max(now, self._next_slot)
            self._next_slot = slot + self.interval
        wait = slot - now
        if wait > 0:
            self.clock.sleep(wait)
        return max(wait, 0.0)

    def __repr__(self) -> str:
        return f"RateLimiter(requests_per_minute={self.requests_per_minute:g})"


def rate_limiter_for_tap(
    tap: object, requests_per_minute: float | None, clock: Clock = SYSTEM_CLOCK
) -> RateLimiter | None:
    """Return the pacer shared by all streams of ``tap``, creating it on first use.

    Returns None when ``requests_per_minute`` is unset, i.e. pacing is off.
    """
    if not requests_per_minute:
        return None
    limiter = getattr(tap, _TAP_LIMITER_ATTRIBUTE, None)
    if not isinstance(limiter, RateLimiter) or limiter.requests_per_minute != float(requests_per_minute):
        limiter = RateLimiter(requests_per_minute, clock)
        setattr(tap, _TAP_LIMITER_ATTRIBUTE, limiter)
    return limiter


class HarborlineRESTStream(RESTStream[Any]):
    """Base REST stream: one retry policy, config timeouts, shared pacing, clear auth errors.

    Subclasses set ``url_base``, ``path``, ``authenticator`` and ``auth_settings_hint`` as usual.
    The SDK's ``backoff_*`` hooks are not used: retrying is configured through the tap config
    (:data:`~harborline_singer_shared.retry.RETRY_SETTINGS`) or by overriding
    :meth:`build_retry_policy`.
    """

    #: Setting name(s) quoted in the 401/403 error, e.g. ``"`api_key`"`` or
    #: ``"`api_key_id` and `api_key_secret`"``.
    auth_settings_hint: ClassVar[str] = "credential"

    #: Time source for retries and pacing; tests replace it with a ``ManualClock``.
    clock: Clock = SYSTEM_CLOCK

    def build_retry_policy(self) -> RetryPolicy:
        """Return the retry policy from the config; override to change backoff shape."""
        return RetryPolicy.from_config(self.config, clock=self.clock)

    @cached_property
    def retry_policy(self) -> RetryPolicy:
        """The policy every request of this stream is sent with."""
        return self.build_retry_policy()

    @property
    def timeout(self) -> int:
        """Read timeout in seconds, from the ``request_timeout`` setting (default 300)."""
        value = self.config.get("request_timeout")
        return int(DEFAULT_REQUEST_TIMEOUT_SECONDS if value is None else value)

    @property
    def request_timeouts(self) -> tuple[float, float]:
        """``(connect, read)`` timeouts passed with every request; never None."""
        return timeout_from_config({"request_timeout": self.timeout})

    @property
    def rate_limiter(self) -> RateLimiter | None:
        """The tap-wide pacer when ``requests_per_minute`` is set, else None."""
        return rate_limiter_for_tap(self._tap, self.config.get("requests_per_minute"), self.clock)

    def request_decorator(self, func: RequestFunc) -> RequestFunc:
        """Return ``func`` undecorated: :meth:`_request` already retries.

        Keeping the SDK's backoff as well would multiply attempts (8 x 5) and ignore the time
        budget and ``Retry-After``.
        """
        return func

    def _request(
        self,
        prepared_request: requests.PreparedRequest,
        context: Context | None,
    ) -> requests.Response:
        """Send one request through the shared retry policy and pacer, then validate it."""
        authenticated_request = self.authenticator(prepared_request)
        limiter = self.rate_limiter
        response = send_with_retry(
            self.requests_session,
            authenticated_request,
            self.retry_policy,
            timeout=self.request_timeouts,
            logger=self.logger,
            allow_redirects=self.allow_redirects,
            before_attempt=limiter.acquire if limiter is not None else None,
        )
        self._write_request_duration_log(
            endpoint=self.path,
            response=response,
            context=context,
            extra_tags=({"url": authenticated_request.path_url} if self._LOG_REQUEST_METRIC_URLS else None),
        )
        self.validate_response(response)
        return response

    def validate_response(self, response: requests.Response) -> None:
        """Raise :class:`AuthenticationError` for 401/403 and a body-free error for other 4xx/5xx.

        Override to treat API-specific bodies (e.g. errors returned with 200) as failures.
        """
        check_response(response, auth_settings_hint=self.auth_settings_hint)

    def response_error_message(self, response: requests.Response) -> str:
        """Describe an error status by method and path only; bodies and queries may hold secrets."""
        return f"HTTP {_status_text(response)} for {_request_label(response)}"

    def get_http_request(self, *, page: PageContext[Any]) -> HTTPRequest:
        """Build the request, following a next-page link when the paginator produced one."""
        request = super().get_http_request(page=page)
        token = page.next_page_token
        if isinstance(token, ParseResult):
            return apply_next_link(request, token)
        return request
