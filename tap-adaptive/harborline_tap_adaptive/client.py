"""The base stream of every Adaptive stream: one POST per call, through the shared retry policy.

Every call goes to ``{api_url}/v{api_version}`` (one URL for every method; the method is in the body). Throttling
(429, with ``Retry-After``), 5xx, timeouts and connection resets are retried by
:func:`~harborline_singer_shared.retry.send_with_retry`; an answer of ``success="false"`` is not retried (the same
call gets the same answer) and is one error naming the stream, the method and each message. The request body holds
the password, so it is never logged: retry lines name the method of the call and the URL only.
"""

from __future__ import annotations

import contextlib
import time
from functools import cached_property
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, ClassVar

import requests
from singer_sdk.exceptions import FatalAPIError
from singer_sdk.helpers.conform import TypeConformanceLevel

from harborline_singer_shared.http import HarborlineRESTStream, check_response
from harborline_singer_shared.output import AllSelectedFastPathMixin
from harborline_singer_shared.plugin import STREAM_ATTR
from harborline_singer_shared.pseudonymize import PseudonymizedStreamMixin
from harborline_singer_shared.retry import (
    RETRYABLE_EXCEPTIONS,
    HostNotResolvedError,
    ResponseTooSlowError,
    send_with_retry,
)
from harborline_tap_adaptive.xmlapi import AUTH_SETTINGS, Credentials, build_call, parse_response

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from xml.etree.ElementTree import Element

__all__ = ["DEFAULT_API_URL", "DEFAULT_API_VERSION", "DEFAULT_CALLER_NAME", "AdaptiveStream"]

DEFAULT_API_URL = "https://api.adaptiveinsights.com/api"
DEFAULT_API_VERSION = 40
DEFAULT_CALLER_NAME = "harborline-tap-adaptive"
_DOWNLOAD_CHUNK = 1 << 16


class AdaptiveStream(AllSelectedFastPathMixin, PseudonymizedStreamMixin, HarborlineRESTStream):
    """Base of all streams: the endpoint, the credentials, one call = one retried POST, errors naming the stream."""

    auth_settings_hint: ClassVar[str] = AUTH_SETTINGS
    #: Records are typed field by field from the XML (see streams.py), so the SDK's conversion has nothing to do.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE
    path = ""
    replication_key = None

    @property
    def url_base(self) -> str:
        """``{api_url}/v{api_version}``: every method is posted there."""
        base = str(self.config.get("api_url") or DEFAULT_API_URL).rstrip("/")
        return f"{base}/v{int(self.config.get('api_version') or DEFAULT_API_VERSION)}"

    @property
    def credentials(self) -> Credentials:
        """The login of every call, from the settings."""
        config = self.config
        return Credentials(
            login=str(config["username"]),
            password=str(config["password"]),
            caller_name=str(config.get("caller_name") or DEFAULT_CALLER_NAME),
            instance_code=str(config["instance_code"]) if config.get("instance_code") else None,
        )

    @cached_property
    def download_session(self) -> requests.Session:
        """A session whose answers are read by the caller as they arrive (exportData)."""
        session = requests.Session()
        session.stream = True
        return session

    @contextlib.contextmanager
    def tagged(self) -> Iterator[None]:
        """Tag a clear error with this stream, so the tap's one error line names it."""
        try:
            yield
        except FatalAPIError as exc:
            if getattr(exc, STREAM_ATTR, None) is None:
                setattr(exc, STREAM_ATTR, self.name)
            raise

    def post(self, method: str, children: Sequence[Element] = (), *, stream: bool = False) -> requests.Response:
        """POST one call through the shared retry policy; an HTTP error status left after retrying is fatal."""
        body = build_call(method, self.credentials, children)
        request = requests.Request(
            "POST",
            self.url_base,
            data=body,
            headers={"Content-Type": "text/xml; charset=utf-8", "Accept": "text/xml", **self.http_headers},
        )
        prepared = self.requests_session.prepare_request(request)
        limiter = self.rate_limiter
        try:
            response = send_with_retry(
                self.download_session if stream else self.requests_session,
                prepared,
                self.retry_policy,
                timeout=self.request_timeouts,
                logger=self.logger,
                before_attempt=limiter.acquire if limiter is not None else None,
            )
        except HostNotResolvedError as exc:
            raise HostNotResolvedError(
                f"{method}: {exc}; check the `api_url` setting.",
                host=exc.host,
                reason=exc.reason,
                attempts=exc.attempts,
            ) from None
        if response.status_code >= HTTPStatus.BAD_REQUEST:
            response.close()
            try:
                check_response(response, auth_settings_hint=self.auth_settings_hint)
            except FatalAPIError as exc:
                exc.args = (f"{method}: {exc}",)
                raise
        return response

    def call(self, method: str, children: Sequence[Element] = ()) -> Element | None:
        """One whole call: its ``<output>`` element (None when the answer has none)."""
        response = self.post(method, children)
        return parse_response(response.content, method)

    def stream_call(
        self,
        method: str,
        children: Sequence[Element],
        consume: Callable[[Iterator[bytes]], Iterator[Any]],
    ) -> Iterator[Any]:
        """A call whose answer is consumed as it arrives; a connection lost mid-answer is retried from the start.

        Each attempt is bounded like every other request: ``request_timeout`` per read and for the whole answer.

        ``consume`` turns the body's chunks into items. Items of an attempt that broke off were already yielded: the
        caller must make a repeat harmless (the data stream's records are keyed, so a target upserts them again).
        """
        policy = self.retry_policy
        attempt = 0
        while True:
            attempt += 1
            response = self.post(method, children, stream=True)
            try:
                yield from consume(_within(response.iter_content(_DOWNLOAD_CHUNK), float(self.timeout)))
            except RETRYABLE_EXCEPTIONS as exc:
                if attempt >= policy.max_attempts:
                    raise FatalAPIError(
                        f"{method}: the answer broke off ({type(exc).__name__}) {attempt} time(s); giving up"
                    ) from None
                wait = policy.backoff_delay(attempt)
                self.logger.warning(
                    "%s: the answer broke off (%s); calling again (attempt %d/%d) in %.2f s",
                    method,
                    type(exc).__name__,
                    attempt + 1,
                    policy.max_attempts,
                    wait,
                )
                policy.clock.sleep(wait)
                continue
            finally:
                response.close()
            return

    def post_process(self, row: dict[str, Any], context: Any = None) -> dict[str, Any] | None:
        """Pseudonymize the configured fields; a stream with none configured skips the per-record walk."""
        wanted = self.__dict__.get("_adaptive_pseudonymized")
        if wanted is None:
            pseudonymizer = self.pseudonymizer
            wanted = bool(pseudonymizer is not None and pseudonymizer.paths_for(self.name))
            self.__dict__["_adaptive_pseudonymized"] = wanted
        return super().post_process(row, context) if wanted else row


def _within(chunks: Iterator[bytes], limit: float) -> Iterator[bytes]:
    """The chunks, as long as the whole answer takes at most ``limit`` seconds (a trickling server is cut off)."""
    deadline = time.monotonic() + limit
    for chunk in chunks:
        if time.monotonic() > deadline:
            raise ResponseTooSlowError(limit)
        yield chunk
