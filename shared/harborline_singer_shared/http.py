# Copyright 2026 The Harborline connectors authors
# SPDX-License-Identifier: Apache-2.0
"""The REST stream base class every Harborline tap's client.py subclasses.

It exists so that retrying, timeouts, pacing and error messages are decided once: every request
goes through :func:`~harborline_singer_shared.retry.send_with_retry` (the SDK's own ``backoff``
decorator is switched off so attempts are not multiplied), every request has a timeout taken from
the config that bounds its total time, an optional ``requests_per_minute`` pacer is shared by all
streams of one tap, and a rejected credential produces one clear message naming the setting to
check, with no secret and no response body in it.

Nothing a server does can hang or loop a tap: the page loop (:meth:`HarborlineRESTStream.request_records`)
stops with one clear error on a page that repeats the previous one and after ``max_pages`` pages,
a 200 answer that is not JSON is one line naming the stream and the (redacted) URL, and a host that
does not resolve is one line naming the host and the setting, without minutes of retries.
"""

from __future__ import annotations

import json
import logging
import threading
from functools import cached_property
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import ParseResult, urlsplit

import requests
from singer_sdk import typing as th
from singer_sdk.exceptions import FatalAPIError
from singer_sdk.pagination import SinglePagePaginator
from singer_sdk.streams import RESTStream

from harborline_singer_shared.pagination import DEFAULT_MAX_PAGES, PageGuard, apply_next_link
from harborline_singer_shared.plugin import STREAM_ATTR
from harborline_singer_shared.progress import Progress
from harborline_singer_shared.retry import (
    DEFAULT_REQUEST_TIMEOUT_SECONDS,
    SYSTEM_CLOCK,
    Clock,
    HostNotResolvedError,
    RetryPolicy,
    redact_url_query,
    send_with_retry,
    timeout_from_config,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

    from singer_sdk.helpers.types import Context, RequestFunc
    from singer_sdk.pagination import BaseAPIPaginator
    from singer_sdk.streams.rest import HTTPRequest, PageContext

__all__ = [
    "RATE_LIMIT_SETTINGS",
    "AuthenticationError",
    "HarborlineRESTStream",
    "RateLimiter",
    "ResponseNotJSONError",
    "auth_error_message",
    "check_response",
    "rate_limiter_for_tap",
]

#: Attribute of the tap object holding its shared pacer: one per tap instance, never global, so
#: two taps in one process (tests, benchmarks) do not slow each other down.
_TAP_LIMITER_ATTRIBUTE = "_harborline_rate_limiter"
#: What ``response.json()`` raises: ``requests`` uses simplejson when it is installed (the SDK
#: installs it), whose error is not a ``json.JSONDecodeError``.
_JSON_ERRORS = (requests.exceptions.JSONDecodeError, json.JSONDecodeError)

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


class ResponseNotJSONError(FatalAPIError):
    """A successful response whose body is not JSON (an HTML error or login page, an empty body)."""


def _body_is_json(response: requests.Response) -> bool:
    try:
        json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return False
    return True


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

    #: Setting quoted when the host does not resolve or answers something that is not JSON.
    url_settings_hint: ClassVar[str] = "`api_url`"

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
        """``(connect, read)`` timeouts passed with every request; never None.

        The read timeout is also the bound on each attempt's total time (see
        :func:`~harborline_singer_shared.retry.send_with_retry`).
        """
        return timeout_from_config({"request_timeout": self.timeout})

    @property
    def max_pages(self) -> int:
        """Pages one request chain may take, from the ``max_pages`` setting (default 100000)."""
        value = self.config.get("max_pages")
        return int(DEFAULT_MAX_PAGES if value is None else value)

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
        try:
            response = send_with_retry(
                self.requests_session,
                authenticated_request,
                self.retry_policy,
                timeout=self.request_timeouts,
                logger=self.logger,
                allow_redirects=self.allow_redirects,
                before_attempt=limiter.acquire if limiter is not None else None,
            )
        except HostNotResolvedError as exc:
            raise HostNotResolvedError(
                f"stream '{self.name}': {exc}; check the {self.url_settings_hint} setting.",
                host=exc.host,
                reason=exc.reason,
                attempts=exc.attempts,
            ) from None
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

    #: Log `stream 'x': N records so far` at a steady interval (a stream with its own progress lines turns it off).
    log_progress: ClassVar[bool] = True
    _records_read = 0

    @cached_property
    def _progress(self) -> Progress | None:
        return Progress(self.logger) if self.log_progress else None

    def request_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """Every record of one request chain (:meth:`request_pages`); a clear error is tagged with this stream.

        The tag lets the plugin's one error line name the stream (`stream 'x': Giving up on GET ...`).
        """
        progress = self._progress
        try:
            for record in self.request_pages(context):
                yield record
                if progress is not None:
                    self._records_read += 1
                    progress.step("stream '%s': %d records so far", self.name, self._records_read)
        except FatalAPIError as exc:
            if getattr(exc, STREAM_ATTR, None) is None:
                setattr(exc, STREAM_ATTR, self.name)
            raise

    def request_pages(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """Request every page of one request chain and yield its records, guarded against loops.

        The SDK's page loop, plus what it lacks: a :class:`~harborline_singer_shared.pagination.PageGuard`
        stops on a page that repeats the previous one (before its records are written) and after
        ``max_pages`` pages, and a body that is not JSON is one clear error instead of a
        ``JSONDecodeError`` traceback. Each page's records are parsed before the first is yielded.

        Raises:
            RepeatedPageError: A page repeated the previous page's records.
            TooManyPagesError: ``max_pages`` pages were read and the API offered another.
            ResponseNotJSONError: A successful response's body is not JSON.
        """
        paginator: BaseAPIPaginator[Any] = self.get_new_paginator() or SinglePagePaginator()
        decorated_request = self.request_decorator(self._request)
        guard = PageGuard(self.name, self.max_pages)
        legacy_prepare = type(self).prepare_request is not RESTStream.prepare_request
        pages = 0
        with self.get_http_request_counter() as request_counter:
            request_counter.with_context(context)
            while not paginator.finished:
                guard.before_request()
                prepared_request = (
                    self.prepare_request(context, paginator.current_value)
                    if legacy_prepare
                    else self._prepare_request(context=context, page=paginator)
                )
                resp = decorated_request(prepared_request, context)
                request_counter.increment()
                self.update_sync_costs(prepared_request, resp, context)
                try:
                    records = list(self.parse_response(resp))
                except _JSON_ERRORS as exc:
                    raise self._not_json_error(resp, exc) from None
                guard.check_page(records)
                if not records:
                    if self._continue_if_empty(paginator, resp):
                        self._advance(paginator, resp)
                        continue
                    # An empty last page is how most APIs end a chain: not news at INFO (a windowed stream would
                    # log it once per window).
                    self.log(
                        "Pagination stopped after %d pages because no records were found in the last response",
                        pages,
                        level=logging.DEBUG,
                    )
                    break
                yield from records
                pages += 1
                self._advance(paginator, resp)

    def _continue_if_empty(self, paginator: BaseAPIPaginator[Any], response: requests.Response) -> bool:
        try:
            return paginator.continue_if_empty(response)
        except _JSON_ERRORS as exc:
            raise self._not_json_error(response, exc) from None

    def _advance(self, paginator: BaseAPIPaginator[Any], response: requests.Response) -> None:
        try:
            paginator.advance(response)
        except _JSON_ERRORS as exc:
            raise self._not_json_error(response, exc) from None

    def _not_json_error(self, response: requests.Response, error: Exception) -> Exception:
        """One line naming the stream, the status and the URL (query values hidden), no body.

        Only when the body itself is not JSON: a decoding error of something inside a valid body
        (a field holding JSON text) is returned unchanged, to be raised with its traceback.
        """
        if _body_is_json(response):
            return error
        content_type = response.headers.get("Content-Type") or "no Content-Type"
        size = len(response.content)
        what = "an empty body" if size == 0 else f"a body that is not JSON ({content_type}, {size} bytes)"
        method = response.request.method if response.request is not None else "GET"
        return ResponseNotJSONError(
            f"stream '{self.name}': the API answered HTTP {_status_text(response)} with {what} for "
            f"{method} {redact_url_query(response.url)}; an HTML page there usually means a wrong "
            f"{self.url_settings_hint} setting, a login or maintenance page, or a proxy error."
        )

    def get_http_request(self, *, page: PageContext[Any]) -> HTTPRequest:
        """Build the request, following a next-page link when the paginator produced one."""
        request = super().get_http_request(page=page)
        token = page.next_page_token
        if isinstance(token, ParseResult):
            return apply_next_link(request, token)
        return request
