# Copyright 2026 The Harborline connectors authors
# SPDX-License-Identifier: Apache-2.0
"""The one HTTP retry policy every Harborline tap uses.

Each vendor API fails differently, but the answer is always the same: retry throttling (429),
server errors (5xx) and network failures with bounded, jittered exponential backoff; honour
``Retry-After``; never retry a request the server rejected (other 4xx). Keeping that logic here,
outside the SDK's own ``backoff`` decorator, means one implementation that also serves non-SDK
callers (an XML POST tap, benchmarks) and that tests can drive with a fake clock instead of real
sleeps.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import requests
from singer_sdk import typing as th
from singer_sdk.exceptions import FatalAPIError
from urllib3.exceptions import DecodeError, ProtocolError, ReadTimeoutError
from urllib3.exceptions import SSLError as Urllib3SSLError

from harborline_singer_shared.deadline import use_deadline_adapters, watch
from harborline_singer_shared.pagination import MAX_PAGES_SETTING

if TYPE_CHECKING:
    import logging
    from collections.abc import Callable, Mapping

__all__ = [
    "CONNECT_TIMEOUT_SECONDS",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_MAX_ELAPSED_SECONDS",
    "DEFAULT_REQUEST_TIMEOUT_SECONDS",
    "DNS_MAX_ATTEMPTS",
    "RETRY_SETTINGS",
    "Clock",
    "HostNotResolvedError",
    "ManualClock",
    "ResponseTooSlowError",
    "RetriesExhaustedError",
    "RetryAfterTooLongError",
    "RetryPolicy",
    "SystemClock",
    "parse_retry_after",
    "redact_url",
    "redact_url_query",
    "send_with_retry",
    "timeout_from_config",
]

DEFAULT_MAX_ATTEMPTS = 8
DEFAULT_MAX_ELAPSED_SECONDS = 600.0
DEFAULT_REQUEST_TIMEOUT_SECONDS = 300
#: A host that does not accept a TCP connection within this long is down; waiting the full read
#: timeout for it would only burn the retry budget.
CONNECT_TIMEOUT_SECONDS = 30.0
#: Attempts for a host name the resolver says is *temporarily* unresolvable (EAI_AGAIN). A name that
#: does not exist (NXDOMAIN) is not retried at all: a configured host that does not resolve is a
#: wrong setting or a network without DNS, and minutes of backoff would only hide that.
DNS_MAX_ATTEMPTS = 2
#: getaddrinfo errors meaning "this name does not exist" (or cannot ever be resolved): never retried.
_PERMANENT_DNS_ERRORS = frozenset(
    code for code in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", None), socket.EAI_FAIL) if code is not None
)
#: Largest piece of a response body read at once; a read returns as soon as any data arrived.
_BODY_READ_SIZE = 1 << 18

#: Network failures worth another attempt. ``ConnectTimeout`` is both a ``ConnectionError`` and a
#: ``Timeout``; ``ChunkedEncodingError`` is a connection dropped while the body was being read.
RETRYABLE_EXCEPTIONS: tuple[type[Exception], ...] = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
)

RETRY_SETTINGS = th.PropertiesList(
    th.Property(
        "request_timeout",
        th.IntegerType(minimum=1),
        default=DEFAULT_REQUEST_TIMEOUT_SECONDS,
        description=(
            "Seconds one HTTP request may take in total (connecting, waiting for the answer and "
            "reading all of it) before it is abandoned and retried; a server that sends its answer "
            "a few bytes at a time is cut off too. Connecting is given at most 30 seconds of this."
        ),
    ),
    th.Property(
        "max_retries",
        th.IntegerType(minimum=1),
        default=DEFAULT_MAX_ATTEMPTS,
        description=(
            "Maximum number of attempts for one HTTP request, the first one included, before the "
            "sync fails. Only throttling (429), server errors (5xx), timeouts and connection "
            "errors are retried. A host name that does not resolve is not retried (one quick "
            "retry when the resolver reports a temporary failure): the sync stops at once naming "
            "the host."
        ),
    ),
    th.Property(
        "max_retry_elapsed_seconds",
        th.NumberType(exclusive_minimum=0),
        default=DEFAULT_MAX_ELAPSED_SECONDS,
        description=(
            "Maximum seconds spent on one HTTP request including all its retries and waits. A "
            "Retry-After longer than what is left of this budget fails the sync at once."
        ),
    ),
    # Not a retry setting, but a bound on requests all the same; it lives here so that every tap,
    # which includes RETRY_SETTINGS, exposes it.
    MAX_PAGES_SETTING,
)


class Clock(Protocol):
    """Time source for retries and pacing; injectable so tests never really sleep."""

    def monotonic(self) -> float:
        """Return seconds on a clock that never goes backwards (for budgets and intervals)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block for ``seconds``."""
        ...

    def now(self) -> datetime:
        """Return the timezone-aware wall-clock time (for HTTP-date ``Retry-After``)."""
        ...


class SystemClock:
    """The real clock; the default everywhere outside tests."""

    def monotonic(self) -> float:
        """Return :func:`time.monotonic`."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        """Sleep for real; negative values are treated as zero."""
        time.sleep(max(0.0, seconds))

    def now(self) -> datetime:
        """Return the current UTC time."""
        return datetime.now(UTC)

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK: Clock = SystemClock()


class ManualClock:
    """A deterministic clock whose ``sleep`` only advances time, for tests and benchmarks.

    It records every sleep so a test can assert the exact waits without taking any time. It is
    thread-safe because the rate limiter may be shared by streams.
    """

    def __init__(self, start: datetime | None = None, monotonic_start: float = 1000.0) -> None:
        start = start or datetime(2024, 1, 1, tzinfo=UTC)
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start datetime")
        self._wall_start = start
        self._monotonic_start = monotonic_start
        self._elapsed = 0.0
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        """Return the start value plus all time slept or advanced so far."""
        with self._lock:
            return self._monotonic_start + self._elapsed

    def sleep(self, seconds: float) -> None:
        """Record the sleep and advance the clock by it, instantly."""
        seconds = max(0.0, seconds)
        with self._lock:
            self.sleeps.append(seconds)
            self._elapsed += seconds

    def advance(self, seconds: float) -> None:
        """Move time forward without recording a sleep (simulates time spent in a request)."""
        with self._lock:
            self._elapsed += seconds

    def now(self) -> datetime:
        """Return the start datetime plus the elapsed time."""
        with self._lock:
            return self._wall_start + timedelta(seconds=self._elapsed)

    @property
    def total_slept(self) -> float:
        """Sum of every recorded sleep."""
        with self._lock:
            return sum(self.sleeps)

    def __repr__(self) -> str:
        return f"ManualClock(elapsed={self._elapsed:.3f})"


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Return how many seconds a ``Retry-After`` header asks us to wait, or None if unusable.

    The header is either delta-seconds (``"120"``) or an HTTP-date; an HTTP-date in the past means
    "now" (0 s). Negative numbers and garbage yield None so the caller falls back to its own backoff
    instead of trusting a broken server.

    Args:
        value: The raw header value (None when absent).
        now: The current timezone-aware time, used to turn an HTTP-date into a delay.

    Returns:
        The delay in seconds, or None.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isascii() and text.isdigit():
        return float(int(text))
    if text[0] in "+-" or text[0].isdigit():
        # A signed or fractional number is not valid delta-seconds; never an HTTP-date either.
        return None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        # RFC 9110 dates are always GMT; "-0000" parses as naive.
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def redact_url(url: str | None) -> str:
    """Return ``scheme://host[:port]/path`` only, so logs and errors never carry keys.

    Query strings and userinfo (``user:pass@host``) can hold credentials; fragments are useless.
    """
    if not url:
        return "<no url>"
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}" if parts.scheme else parts.path


def redact_url_query(url: str | None) -> str:
    """Return the URL with every query value replaced by ``***``, keeping the parameter names.

    For error messages that must say which request failed (``?page=***&api_key=***``) without
    showing any value: a query can carry an API key, and the secret-redaction log filter only knows
    the values of the plugin's own secret settings. Userinfo and fragment are dropped.
    """
    base = redact_url(url)
    query = urlsplit(url or "").query
    if not query:
        return base
    names = [part.split("=", 1)[0] for part in query.split("&") if part]
    return base + "?" + "&".join(f"{name}=***" for name in names)


def _url_path(url: str | None) -> str:
    return urlsplit(url or "").path or "/"


class ResponseTooSlowError(requests.exceptions.ReadTimeout):
    """The whole response did not arrive within its total time limit (``request_timeout``).

    A server that trickles its answer a byte at a time never trips the per-read timeout; this is
    raised instead, and retried like any other timeout. The message never contains the URL.
    """

    def __init__(self, limit_seconds: float) -> None:
        super().__init__(f"the response was not complete after {limit_seconds:g} s (request_timeout)")
        self.limit_seconds = limit_seconds


class HostNotResolvedError(FatalAPIError):
    """The host name of the request did not resolve (DNS); fatal, because retrying rarely helps.

    Attributes:
        host: The host name that did not resolve.
        reason: The resolver's words, e.g. "Name or service not known".
        attempts: How many times it was tried.
    """

    def __init__(self, message: str, *, host: str, reason: str, attempts: int) -> None:
        super().__init__(message)
        self.host = host
        self.reason = reason
        self.attempts = attempts


class RetriesExhaustedError(FatalAPIError):
    """Raised when a request still fails after the policy gave up.

    It is a *fatal* error on purpose: the retrying already happened here, and a
    ``RetriableAPIError`` would invite an outer loop (such as the SDK's backoff decorator) to
    multiply the attempts.
    """

    def __init__(
        self,
        message: str,
        *,
        method: str,
        url: str,
        attempts: int,
        status_code: int | None,
        response: requests.Response | None,
        last_error: Exception | None = None,
    ) -> None:
        super().__init__(message)
        self.method = method
        self.url = url
        self.attempts = attempts
        self.status_code = status_code
        self.response = response
        #: The final network exception, kept as an attribute rather than chained: its text
        #: (from urllib3) often contains the full URL with its query string.
        self.last_error = last_error


class RetryAfterTooLongError(RetriesExhaustedError):
    """Raised when the server asks for a wait that would overrun the retry time budget."""


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff with full jitter, shared by every HTTP call of every tap.

    Attributes:
        max_attempts: Attempts per request, the first one included.
        max_elapsed_seconds: Time budget per request, including waits; no wait may overrun it.
        base_delay: Backoff ceiling before the first retry, in seconds.
        factor: Growth of the ceiling per retry.
        max_delay: Cap on the backoff ceiling (``Retry-After`` is honoured even above it).
        clock: Time source; replace with :class:`ManualClock` in tests.
        random: Returns a float in [0, 1); full jitter waits ``random() * ceiling``.
    """

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    max_elapsed_seconds: float = DEFAULT_MAX_ELAPSED_SECONDS
    base_delay: float = 1.0
    factor: float = 2.0
    max_delay: float = 60.0
    clock: Clock = field(default=SYSTEM_CLOCK, compare=False, repr=False)
    random: Callable[[], float] = field(default=random.random, compare=False, repr=False)

    def __post_init__(self) -> None:
        """Reject settings that would make retrying unbounded or meaningless."""
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.max_elapsed_seconds <= 0:
            raise ValueError("max_elapsed_seconds must be positive")
        if self.base_delay <= 0 or self.max_delay <= 0:
            raise ValueError("base_delay and max_delay must be positive")
        if self.factor < 1:
            raise ValueError("factor must be at least 1 so delays never shrink")

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **overrides: Any) -> RetryPolicy:
        """Build the policy from a tap config that includes :data:`RETRY_SETTINGS`.

        Args:
            config: The tap config; missing settings take their defaults.
            **overrides: Other fields (``clock``, ``random``, ``base_delay`` ...) to set directly.

        Returns:
            A new policy.
        """
        max_retries = config.get("max_retries")
        elapsed = config.get("max_retry_elapsed_seconds")
        values: dict[str, Any] = {
            "max_attempts": DEFAULT_MAX_ATTEMPTS if max_retries is None else int(max_retries),
            "max_elapsed_seconds": (DEFAULT_MAX_ELAPSED_SECONDS if elapsed is None else float(elapsed)),
        }
        values.update(overrides)
        return cls(**values)

    def is_retryable_status(self, status_code: int) -> bool:
        """Return True for 429 and every 5xx; other statuses are answers, not failures."""
        return status_code == HTTPStatus.TOO_MANY_REQUESTS or HTTPStatus.INTERNAL_SERVER_ERROR <= status_code <= 599

    def backoff_ceiling(self, retry_number: int) -> float:
        """Return the un-jittered bound of the wait before retry ``retry_number`` (1-based)."""
        if retry_number < 1:
            raise ValueError("retry_number starts at 1")
        # Cap the exponent first so huge attempt counts never overflow a float.
        ceiling = self.base_delay
        for _ in range(retry_number - 1):
            ceiling *= self.factor
            if ceiling >= self.max_delay:
                return self.max_delay
        return min(ceiling, self.max_delay)

    def backoff_delay(self, retry_number: int) -> float:
        """Return the full-jitter wait before retry ``retry_number``: uniform in [0, ceiling)."""
        return self.random() * self.backoff_ceiling(retry_number)


def timeout_from_config(config: Mapping[str, Any]) -> tuple[float, float]:
    """Return the ``(connect, read)`` timeout for :func:`send_with_retry` from a tap config."""
    raw = config.get("request_timeout")
    read = float(DEFAULT_REQUEST_TIMEOUT_SECONDS if raw is None else raw)
    if read <= 0:
        raise ValueError("request_timeout must be positive")
    return (min(CONNECT_TIMEOUT_SECONDS, read), read)


def _name_resolution_failure(error: BaseException) -> socket.gaierror | None:
    """Return the resolver error behind a ``requests`` connection error, if that is what it was.

    ``requests`` wraps urllib3's ``MaxRetryError``, whose ``reason`` is a ``NameResolutionError``
    (urllib3 2) or ``NewConnectionError`` (urllib3 1.26) caused by a ``socket.gaierror``; the chain
    is followed through ``args``, ``reason``, ``__cause__`` and ``__context__``.
    """
    pending: list[BaseException] = [error]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if id(current) in seen or len(seen) > 20:
            continue
        seen.add(id(current))
        if isinstance(current, socket.gaierror):
            return current
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        linked.extend(current.args[:1])
        pending.extend(item for item in linked if isinstance(item, BaseException))
    return None


def _socket_of(raw: Any) -> socket.socket | None:
    """The socket a streamed urllib3 response reads from, when there is one (not under mocks)."""
    sock = getattr(getattr(raw, "connection", None), "sock", None)
    return sock if callable(getattr(sock, "settimeout", None)) else None


def _read_body(response: requests.Response, *, deadline: float, limit: float, read_timeout: float) -> None:
    """Read a streamed response's whole body into ``response.content``, by ``deadline`` at the latest.

    Each read returns as soon as any data arrived, so the deadline is checked however slowly the
    server sends; the socket's own timeout is shortened to what is left, so a server that stalls
    just before the deadline is not waited for a whole read timeout more.

    Raises:
        ResponseTooSlowError: The deadline passed before the body was complete.
        requests.exceptions.RequestException: The same errors ``requests`` raises when it reads a
            body itself (``ChunkedEncodingError``, ``ReadTimeout``, ``ContentDecodingError``,
            ``SSLError``).
    """
    raw = response.raw
    if raw is None or not hasattr(raw, "closed"):  # not urllib3 (a custom adapter): let requests read it
        _ = response.content
        return
    read1 = getattr(raw, "read1", None)
    sock = _socket_of(raw)
    chunks: list[bytes] = []
    try:
        while True:
            # Once the last byte arrived urllib3 closes the stream; what is left to read is buffered.
            if not raw.closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ResponseTooSlowError(limit)
                if sock is not None and remaining < read_timeout:
                    sock.settimeout(remaining)
            chunk = (
                read1(_BODY_READ_SIZE, decode_content=True)
                if read1 is not None
                else raw.read(1024, decode_content=True)  # urllib3 1.26 has no read1
            )
            if not chunk:
                break
            chunks.append(chunk)
    except ReadTimeoutError as exc:
        if time.monotonic() >= deadline - 0.001:
            raise ResponseTooSlowError(limit) from None
        raise requests.exceptions.ReadTimeout(exc) from None
    except ProtocolError as exc:
        raise requests.exceptions.ChunkedEncodingError(exc) from None
    except DecodeError as exc:
        raise requests.exceptions.ContentDecodingError(exc) from None
    except Urllib3SSLError as exc:
        raise requests.exceptions.SSLError(exc) from None
    response._content = b"".join(chunks)  # noqa: SLF001 - what requests itself sets once a body is read
    response._content_consumed = True  # type: ignore[attr-defined]  # noqa: SLF001


def _check_timeout(timeout: float | tuple[float, float]) -> None:
    values = timeout if isinstance(timeout, tuple) else (timeout,)
    if not values or any(v is None or v <= 0 for v in values):
        # A request without a timeout can hang a sync forever; refuse it outright.
        raise ValueError("every request needs a positive timeout (connect, read); got None or <= 0")


#: The watchdog fires this long after an attempt's deadline: the body's own check, exact to the read, goes first.
WATCHDOG_GRACE_SECONDS = 1.0


def send_with_retry(
    session: requests.Session,
    request: requests.PreparedRequest,
    policy: RetryPolicy,
    *,
    timeout: float | tuple[float, float],
    logger: logging.Logger,
    allow_redirects: bool = True,
    before_attempt: Callable[[], object] | None = None,
    total_timeout: float | None = None,
) -> requests.Response:
    """Send ``request``, retrying transient failures according to ``policy``.

    Usable with or without the SDK. The response of the final attempt is returned for any status
    that is not retryable (2xx, 3xx, other 4xx): deciding what a 404 means is the caller's job.

    Every attempt is bounded in total, not only per socket read: the body is read here (into
    ``response.content``, as ``requests`` would) against a deadline of ``total_timeout`` seconds
    from the start of the attempt, so a server trickling bytes cannot hang a sync; running out is a
    :class:`ResponseTooSlowError`, retried like other timeouts. A session with ``stream = True``
    (a caller streaming a large download itself) gets the response unread, as it asked.

    A host name that does not resolve is not retried (``DNS_MAX_ATTEMPTS`` attempts when the
    resolver calls the failure temporary): :class:`HostNotResolvedError` names the host.

    Args:
        session: The session that sends (and pools connections).
        request: A prepared, already authenticated request; it is re-sent unchanged.
        policy: Attempt and time bounds, backoff shape and clock.
        timeout: ``(connect, read)`` seconds or one number for both; never None.
        logger: Where each retry is logged at WARNING (method, redacted URL, cause, wait).
        allow_redirects: Passed to :meth:`requests.Session.send`.
        before_attempt: Called before every attempt, retries included (client-side pacing).
        total_timeout: Seconds one attempt may take from sending to the last byte of the body;
            default: the read timeout (the ``request_timeout`` setting).

    Returns:
        The first response whose status is not retryable.

    Raises:
        RetriesExhaustedError: The attempt or time budget ran out.
        RetryAfterTooLongError: The server asked to wait past the time budget.
        HostNotResolvedError: The host name did not resolve.
    """
    _check_timeout(timeout)
    read_timeout = float(timeout[1] if isinstance(timeout, tuple) else timeout)
    limit = read_timeout if total_timeout is None else float(total_timeout)
    if limit <= 0:
        raise ValueError("total_timeout must be positive")
    caller_streams = bool(session.stream)
    use_deadline_adapters(session)  # so a watchdog can cut an attempt stuck in the headers (see deadline.py)
    clock = policy.clock
    method = request.method or "GET"
    safe_url = redact_url(request.url)
    path = _url_path(request.url)
    started = clock.monotonic()
    attempt = 0
    while True:
        attempt += 1
        if before_attempt is not None:
            before_attempt()
        response: requests.Response | None = None
        error: Exception | None = None
        try:
            attempt_started = time.monotonic()  # real time: sockets wait in real time, whatever the clock
            # The watchdog is the headers' bound; the body's own deadline (checked per read) normally comes first.
            with watch(limit + WATCHDOG_GRACE_SECONDS) as watchdog:
                try:
                    response = session.send(request, timeout=timeout, allow_redirects=allow_redirects, stream=True)
                    if not caller_streams:
                        _read_body(response, deadline=attempt_started + limit, limit=limit, read_timeout=read_timeout)
                except RETRYABLE_EXCEPTIONS as exc:
                    if watchdog.fired.is_set() and not isinstance(exc, ResponseTooSlowError):
                        raise ResponseTooSlowError(limit) from exc
                    raise
        except RETRYABLE_EXCEPTIONS as exc:
            error = exc
            if response is not None:
                response.close()  # a half-read body: drop the connection rather than reuse it
                response = None
            _raise_if_unresolvable(exc, request, attempt, min(DNS_MAX_ATTEMPTS, policy.max_attempts))
        if response is not None and not policy.is_retryable_status(response.status_code):
            return response

        status_code = response.status_code if response is not None else None
        cause = str(status_code) if status_code is not None else type(error).__name__
        if attempt >= policy.max_attempts:
            raise RetriesExhaustedError(
                f"Giving up on {method} {path} after {attempt} attempt(s): last failure was "
                f"{_describe(status_code, error)}",
                method=method,
                url=safe_url,
                attempts=attempt,
                status_code=status_code,
                response=response,
                last_error=error,
            ) from None

        remaining = policy.max_elapsed_seconds - (clock.monotonic() - started)
        retry_after = (
            parse_retry_after(response.headers.get("Retry-After"), clock.now()) if response is not None else None
        )
        if retry_after is not None:
            if retry_after > remaining:
                raise RetryAfterTooLongError(
                    f"Giving up on {method} {path}: the server answered "
                    f"{_describe(status_code, error)} with Retry-After {retry_after:.0f} s, more "
                    f"than the {max(remaining, 0.0):.0f} s left of max_retry_elapsed_seconds "
                    f"({policy.max_elapsed_seconds:.0f} s)",
                    method=method,
                    url=safe_url,
                    attempts=attempt,
                    status_code=status_code,
                    response=response,
                )
            wait = retry_after
        else:
            wait = policy.backoff_delay(attempt)
            if wait > remaining:
                raise RetriesExhaustedError(
                    f"Giving up on {method} {path} after {attempt} attempt(s) and "
                    f"{policy.max_elapsed_seconds - remaining:.0f} s: the next wait of "
                    f"{wait:.1f} s "
                    f"would pass max_retry_elapsed_seconds ({policy.max_elapsed_seconds:.0f} s); "
                    f"last failure was {_describe(status_code, error)}",
                    method=method,
                    url=safe_url,
                    attempts=attempt,
                    status_code=status_code,
                    response=response,
                    last_error=error,
                ) from None

        logger.warning(
            "Retrying %s %s after %s (attempt %d/%d); waiting %.2f s",
            method,
            safe_url,
            cause,
            attempt,
            policy.max_attempts,
            wait,
        )
        if response is not None:
            response.close()  # hand the pooled connection back before sleeping
        clock.sleep(wait)


def _raise_if_unresolvable(
    error: Exception, request: requests.PreparedRequest, attempt: int, max_attempts: int
) -> None:
    """Raise :class:`HostNotResolvedError` when ``error`` is a DNS failure not worth another attempt."""
    failure = _name_resolution_failure(error)
    if failure is None or (failure.errno not in _PERMANENT_DNS_ERRORS and attempt < max_attempts):
        return
    host = urlsplit(request.url or "").hostname or "<no host>"
    reason = failure.strerror or type(failure).__name__
    tries = f" ({attempt} attempts)" if attempt > 1 else ""
    raise HostNotResolvedError(
        f"host '{host}' did not resolve: {reason}{tries}",
        host=host,
        reason=reason,
        attempts=attempt,
    ) from None


def _describe(status_code: int | None, error: Exception | None) -> str:
    if status_code is not None:
        try:
            phrase = HTTPStatus(status_code).phrase
        except ValueError:
            phrase = "Server Error"
        return f"HTTP {status_code} {phrase}"
    if isinstance(error, ResponseTooSlowError):
        return f"{type(error).__name__}: {error}"  # our own text, without the URL
    # Only the class name: exception text from urllib3 can include the full URL with its query.
    return type(error).__name__
