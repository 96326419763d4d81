# Copyright 2026 The Harborline connectors authors
# SPDX-License-Identifier: Apache-2.0
"""A server cannot hang or loop a tap: total time per request, non-JSON bodies, repeated pages,
``max_pages`` and host names that do not resolve. Real local servers where timing or sockets matter.
"""

from __future__ import annotations

import gzip
import json
import logging
import select
import socket
import threading
import time
from typing import Any, Self

import pytest
import requests
import requests_mock
from singer_sdk import Tap
from singer_sdk import typing as th
from urllib3.exceptions import MaxRetryError, NameResolutionError

from harborline_singer_shared.auth import bearer_auth_from_config
from harborline_singer_shared.http import HarborlineRESTStream, ResponseNotJSONError
from harborline_singer_shared.pagination import (
    DEFAULT_MAX_PAGES,
    BodyNextLinkPaginator,
    CursorPaginator,
    PageGuard,
    RepeatedPageError,
    TooManyPagesError,
    page_fingerprint,
)
from harborline_singer_shared.retry import (
    DNS_MAX_ATTEMPTS,
    RETRY_SETTINGS,
    HostNotResolvedError,
    ManualClock,
    ResponseTooSlowError,
    RetriesExhaustedError,
    RetryPolicy,
    redact_url_query,
    send_with_retry,
)
from harborline_singer_shared.testing.http import FixtureRequest, FixtureServer

TOKEN = "tok-LIMITS-SECRET-77"
LOGGER = logging.getLogger("test.http_limits")


# --- a server that sends its headers, then the body one byte at a time ----------------------


class TrickleServer:
    """Answers every request with ``200`` headers at once, then trickles the body a byte at a time.

    It never finishes on its own (within a minute): a client that is not bounded in total would hang.
    Each connection the client closes is counted and signalled, so a test waits on that event.
    """

    def __init__(self, *, chunked: bool = False, interval: float = 0.005, headers: bool = False) -> None:
        self.chunked = chunked
        #: Trickle the status line and headers instead (they never end): the body is never reached.
        self.headers = headers
        self.interval = interval
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._lock = threading.Lock()
        self._closed = threading.Condition(self._lock)
        self.connections = 0
        self.closed_by_client = 0
        self.bytes_sent = 0
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._listener.close()

    def wait_closed_by_client(self, count: int) -> bool:
        """Wait until the client has hung up ``count`` connections (a safety bound only)."""
        with self._closed:
            return self._closed.wait_for(lambda: self.closed_by_client >= count, timeout=60)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return  # listener closed
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                data = conn.recv(4096)
                if not data:
                    return
                request += data
            framing = b"Transfer-Encoding: chunked" if self.chunked else b"Content-Length: 1000000"
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + framing + b"\r\n"
            if self.headers:
                conn.sendall(head)  # then header lines, a byte at a time, that never end
            else:
                conn.sendall(head + b"\r\n")
            give_up = time.monotonic() + 60  # never hang a broken test run for ever
            while time.monotonic() < give_up:
                readable, _, _ = select.select([conn], [], [], self.interval)
                try:
                    if readable and conn.recv(1, socket.MSG_PEEK) == b"":
                        break  # the client closed the connection
                    if self.headers:
                        conn.sendall(b"X" if self.bytes_sent % 60 else b"\r\nX-Slow: ")
                    else:
                        conn.sendall(b"1\r\n \r\n" if self.chunked else b" ")
                except OSError:
                    break  # reset by the client
                with self._lock:
                    self.bytes_sent += 1
            else:
                return
        with self._closed:
            self.closed_by_client += 1
            self._closed.notify_all()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_trickled_body_is_cut_off_at_the_total_deadline_and_retried_like_a_timeout(chunked):
    clock = ManualClock()
    with TrickleServer(chunked=chunked) as server, requests.Session() as session:
        request = session.prepare_request(requests.Request("GET", f"{server.url}/v1/items?page=1"))
        with pytest.raises(RetriesExhaustedError) as caught:
            send_with_retry(
                session,
                request,
                RetryPolicy(max_attempts=2, clock=clock, random=lambda: 1.0),
                timeout=(5.0, 5.0),
                total_timeout=0.2,
                logger=LOGGER,
            )
        assert server.wait_closed_by_client(2), "the client never hung up on the trickling server"
        assert server.connections == 2  # the second attempt came after a timeout, like any timeout
        assert server.bytes_sent > 2  # bytes did arrive: no single read ever timed out
    error = caught.value
    assert isinstance(error.last_error, ResponseTooSlowError)
    assert "after 2 attempt(s)" in str(error)
    assert "ResponseTooSlowError: the response was not complete after 0.2 s (request_timeout)" in str(error)
    assert clock.sleeps == [1.0]  # one backoff wait, on the fake clock


def test_trickled_headers_are_cut_off_at_the_total_deadline_too():
    # The headers are read inside requests' send, where no check of ours runs: a watchdog cuts the socket.
    with TrickleServer(headers=True) as server, requests.Session() as session:
        request = session.prepare_request(requests.Request("GET", f"{server.url}/v1/items"))
        with pytest.raises(RetriesExhaustedError) as caught:
            send_with_retry(
                session,
                request,
                RetryPolicy(max_attempts=1, clock=ManualClock()),
                timeout=(5.0, 5.0),
                total_timeout=0.2,
                logger=LOGGER,
            )
        assert server.wait_closed_by_client(1), "the client never hung up on the trickling server"
        assert server.bytes_sent > 2  # header bytes did arrive: no single read ever timed out
    assert isinstance(caught.value.last_error, ResponseTooSlowError)
    assert "the response was not complete after 0.2 s (request_timeout)" in str(caught.value)


def test_stream_gives_up_on_a_trickling_server_with_request_timeout():
    with TrickleServer() as server:
        stream = stream_of(make_tap(url_base=server.url, request_timeout=1, max_retries=1))
        with pytest.raises(RetriesExhaustedError, match=r"Giving up on GET /v1/items after 1 attempt"):
            list(stream.get_records(None))
        assert server.wait_closed_by_client(1)
        assert server.connections == 1


def test_request_timeout_is_described_as_a_total_bound():
    description = RETRY_SETTINGS.to_dict()["properties"]["request_timeout"]["description"]
    assert "in total" in description
    assert "a few bytes at a time" in description


# --- the body is read here, as requests would have read it ----------------------------------


def test_complete_body_reads_as_with_requests(fixture_server: FixtureServer):
    body = {"data": [{"id": i, "name": "x" * 100} for i in range(2000)]}  # several reads
    fixture_server.add_route("GET", "/v1/items", (200, {}, body))
    with requests.Session() as session:
        for _ in range(2):  # the second request reuses the pooled connection
            request = session.prepare_request(requests.Request("GET", f"{fixture_server.url}/v1/items"))
            response = send_with_retry(session, request, RetryPolicy(), timeout=(5.0, 5.0), logger=LOGGER)
            assert response.json() == body
            assert list(response.iter_content(10)) != []  # consumed content is replayed, not re-read


def test_gzip_body_is_decoded(fixture_server: FixtureServer):
    payload = json.dumps({"data": [{"id": 1}]}).encode()
    fixture_server.add_route("GET", "/v1/items", (200, {"Content-Encoding": "gzip"}, gzip.compress(payload)))
    with requests.Session() as session:
        request = session.prepare_request(requests.Request("GET", f"{fixture_server.url}/v1/items"))
        response = send_with_retry(session, request, RetryPolicy(), timeout=5.0, logger=LOGGER)
    assert response.json() == {"data": [{"id": 1}]}


def test_a_streaming_session_gets_the_body_unread(fixture_server: FixtureServer):
    fixture_server.add_route("GET", "/v1/file", (200, {}, b"x" * 1000))
    with requests.Session() as session:
        session.stream = True
        request = session.prepare_request(requests.Request("GET", f"{fixture_server.url}/v1/file"))
        response = send_with_retry(session, request, RetryPolicy(), timeout=5.0, logger=LOGGER)
        assert response._content is False  # not read yet: the caller streams it
        assert b"".join(response.iter_content(100)) == b"x" * 1000


# --- streams over a local server -------------------------------------------------------------


class ItemsStream(HarborlineRESTStream):
    name = "items"
    path = "/v1/items"
    records_jsonpath = "$.data[*]"
    primary_keys = ("id",)
    auth_settings_hint = "`api_token`"
    schema = th.PropertiesList(th.Property("id", th.IntegerType), th.Property("note", th.StringType)).to_dict()

    @property
    def url_base(self) -> str:
        return self.config["url_base"]

    @property
    def authenticator(self):
        return bearer_auth_from_config(self.config, "api_token")

    def get_new_paginator(self):
        return BodyNextLinkPaginator("links.next.href", base_url=self.url_base)

    def get_url_params(self, context, next_page_token):
        return {"page_size": 2, "api_key": TOKEN}


class CursorItemsStream(ItemsStream):
    name = "cursor_items"
    path = "/v1/cursor_items"

    def get_new_paginator(self):
        return CursorPaginator("meta.cursor")

    def get_url_params(self, context, next_page_token):
        return {"cursor": next_page_token} if next_page_token else {}


class PartitionedStream(ItemsStream):
    name = "partitioned"
    path = "/v1/{part}/items"
    partitions = [{"part": "a"}, {"part": "b"}]  # noqa: RUF012


class LimitsTap(Tap):
    name = "tap-limits"
    config_jsonschema = th.PropertiesList(
        th.Property("api_token", th.StringType, required=True, secret=True),
        th.Property("url_base", th.StringType, required=True),
        *RETRY_SETTINGS,
    ).to_dict()

    def discover_streams(self):
        return [ItemsStream(self), CursorItemsStream(self), PartitionedStream(self)]


def make_tap(**config: Any) -> LimitsTap:
    return LimitsTap(config={"api_token": TOKEN, **config}, parse_env_config=False)


def stream_of(tap: LimitsTap, name: str = "items") -> HarborlineRESTStream:
    stream = tap.streams[name]
    stream.clock = ManualClock()
    return stream


# --- a 200 that is not JSON -------------------------------------------------------------------


def test_html_200_is_one_error_naming_stream_and_url_without_query_values(fixture_server: FixtureServer):
    html = "<!DOCTYPE html><html><title>Sign in</title><body>Please log in</body></html>"
    fixture_server.add_route("GET", "/v1/items", (200, {"Content-Type": "text/html; charset=utf-8"}, html))
    stream = stream_of(make_tap(url_base=fixture_server.url))
    with pytest.raises(ResponseNotJSONError) as caught:
        list(stream.get_records(None))
    message = str(caught.value)
    assert message.startswith("stream 'items': the API answered HTTP 200 OK with a body that is not JSON")
    assert f"(text/html; charset=utf-8, {len(html)} bytes)" in message
    assert f"for GET {fixture_server.url}/v1/items?page_size=***&api_key=***;" in message
    assert "`api_url`" in message
    assert TOKEN not in message
    assert "Sign in" not in message  # never the body: it may echo a credential
    assert "\n" not in message
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_empty_200_is_named_as_empty(fixture_server: FixtureServer):
    fixture_server.add_route("GET", "/v1/items", (200, {}, b""))
    stream = stream_of(make_tap(url_base=fixture_server.url))
    with pytest.raises(ResponseNotJSONError, match=r"^stream 'items': the API answered HTTP 200 OK with an empty body"):
        list(stream.get_records(None))


def test_a_json_error_inside_a_valid_body_is_not_called_html(fixture_server: FixtureServer):
    class EmbeddedJSONStream(ItemsStream):
        def parse_response(self, response):
            for row in response.json()["data"]:
                yield json.loads(row["payload"])

    fixture_server.add_route("GET", "/v1/items", (200, {}, {"data": [{"payload": "{not json"}]}))
    stream = EmbeddedJSONStream(make_tap(url_base=fixture_server.url))
    stream.clock = ManualClock()
    with pytest.raises(json.JSONDecodeError):
        list(stream.get_records(None))


def test_redact_url_query_keeps_names_and_hides_values():
    assert redact_url_query("https://u:p@h.example:8443/a/b?key=SECRET&page=2&flag#frag") == (
        "https://h.example:8443/a/b?key=***&page=***&flag=***"
    )
    assert redact_url_query("https://h.example/a") == "https://h.example/a"
    assert redact_url_query(None) == "<no url>"


# --- repeated pages and max_pages ---------------------------------------------------------------


def _same_page_with_a_new_link(request: FixtureRequest) -> tuple[int, dict[str, str], Any]:
    """An API that ignores `page` but always offers the next one."""
    page = int(request.query.get("page", "1"))
    return 200, {}, {"data": [{"id": 1}, {"id": 2}], "links": {"next": {"href": f"/v1/items?page={page + 1}"}}}


def test_a_page_repeating_the_previous_one_under_a_new_link_stops_the_stream(fixture_server: FixtureServer):
    fixture_server.add_route("GET", "/v1/items", _same_page_with_a_new_link)
    stream = stream_of(make_tap(url_base=fixture_server.url))
    emitted = []
    with pytest.raises(RepeatedPageError) as caught:
        emitted.extend(stream.get_records(None))
    assert str(caught.value) == (
        "stream 'items': page 2 has the same 2 record(s) as page 1 although the API offered it as a new "
        "page; the API seems to ignore the page parameter. Stopping to avoid an endless loop of duplicates."
    )
    assert emitted == [{"id": 1}, {"id": 2}]  # the repeated page's records were never emitted
    assert len(fixture_server.requests) == 2


def test_a_repeated_page_under_a_new_cursor_stops_the_stream(fixture_server: FixtureServer):
    counter = iter(range(1, 1_000_000))

    def handler(request: FixtureRequest) -> tuple[int, dict[str, str], Any]:
        return 200, {}, {"data": [{"id": 7, "note": "same"}], "meta": {"cursor": f"c{next(counter)}"}}

    fixture_server.add_route("GET", "/v1/cursor_items", handler)
    stream = stream_of(make_tap(url_base=fixture_server.url), "cursor_items")
    with pytest.raises(RepeatedPageError, match=r"^stream 'cursor_items': page 2 has the same 1 record"):
        list(stream.get_records(None))
    assert [r.query.get("cursor") for r in fixture_server.requests] == [None, "c1"]


def _endless_distinct_pages(request: FixtureRequest) -> tuple[int, dict[str, str], Any]:
    page = int(request.query.get("page", "1"))
    rows = [{"id": 2 * page}, {"id": 2 * page + 1}]
    return 200, {}, {"data": rows, "links": {"next": {"href": f"{request.path}?page={page + 1}"}}}


def test_max_pages_stops_a_chain_that_never_ends(fixture_server: FixtureServer):
    fixture_server.add_route("GET", "/v1/items", _endless_distinct_pages)
    stream = stream_of(make_tap(url_base=fixture_server.url, max_pages=3))
    emitted = []
    with pytest.raises(TooManyPagesError) as caught:
        emitted.extend(stream.get_records(None))
    assert str(caught.value) == (
        "stream 'items': stopped after max_pages (3) pages in one request chain and the API still offers a "
        "next page; raise the `max_pages` setting if this stream really has more pages."
    )
    assert len(fixture_server.requests) == 3
    assert [r["id"] for r in emitted] == [2, 3, 4, 5, 6, 7]


def test_max_pages_counts_each_request_chain_on_its_own(fixture_server: FixtureServer):
    def three_pages(request: FixtureRequest) -> tuple[int, dict[str, str], Any]:
        page = int(request.query.get("page", "1"))
        links = {"next": {"href": f"{request.path}?page={page + 1}"}} if page < 3 else {}
        return 200, {}, {"data": [{"id": page}], "links": links}

    fixture_server.add_route("GET", "/v1/{part}/items", three_pages)
    stream = stream_of(make_tap(url_base=fixture_server.url, max_pages=3), "partitioned")
    records = list(stream.request_records({"part": "a"})) + list(stream.request_records({"part": "b"}))
    assert [r["id"] for r in records] == [1, 2, 3, 1, 2, 3]  # six pages in all, three per partition


def test_max_pages_is_a_setting_with_a_generous_default():
    prop = RETRY_SETTINGS.to_dict()["properties"]["max_pages"]
    assert prop["default"] == DEFAULT_MAX_PAGES == 100_000
    assert prop["minimum"] == 1
    assert "repeat" in prop["description"]
    assert stream_of(make_tap(url_base="http://x")).max_pages == 100_000


def test_empty_pages_while_the_api_advances_are_not_repeats(fixture_server: FixtureServer):
    class SkipEmptyPaginator(BodyNextLinkPaginator):
        def continue_if_empty(self, response):
            return True

    class SparseStream(ItemsStream):
        def get_new_paginator(self):
            return SkipEmptyPaginator("links.next.href", base_url=self.url_base)

    def sparse(request: FixtureRequest) -> tuple[int, dict[str, str], Any]:
        page = int(request.query.get("page", "1"))
        links = {"next": {"href": f"/v1/items?page={page + 1}"}} if page < 5 else {}
        rows = [{"id": page}] if page in {1, 5} else []
        return 200, {}, {"data": rows, "links": links}

    fixture_server.add_route("GET", "/v1/items", sparse)
    stream = SparseStream(make_tap(url_base=fixture_server.url))
    stream.clock = ManualClock()
    assert [r["id"] for r in stream.get_records(None)] == [1, 5]
    assert len(fixture_server.requests) == 5


def test_page_fingerprint_and_guard():
    assert page_fingerprint([]) is None
    assert page_fingerprint([{"id": 1}]) == page_fingerprint([{"id": 1}])
    assert page_fingerprint([{"id": 1}, {"id": 2}]) != page_fingerprint([{"id": 2}, {"id": 3}])
    guard = PageGuard("s", max_pages=2)
    guard.before_request()
    guard.check_page([{"id": 1}])
    guard.before_request()
    guard.check_page([])  # empty: never a repeat, and it resets the comparison
    with pytest.raises(TooManyPagesError):
        guard.before_request()
    with pytest.raises(ValueError, match="max_pages"):
        PageGuard("s", max_pages=0)


# --- host names that do not resolve --------------------------------------------------------------


def test_unresolvable_host_fails_at_once_naming_host_and_setting():
    """`.invalid` never resolves (RFC 2606)."""
    stream = stream_of(make_tap(url_base="https://api.harborline-test.invalid", max_retries=8))
    with pytest.raises(HostNotResolvedError) as caught:
        list(stream.get_records(None))
    error = caught.value
    assert error.host == "api.harborline-test.invalid"
    assert str(error).startswith("stream 'items': host 'api.harborline-test.invalid' did not resolve: ")
    assert str(error).endswith("; check the `api_url` setting.")
    assert error.attempts <= DNS_MAX_ATTEMPTS  # not the 8 attempts of max_retries
    assert len(stream.clock.sleeps) == error.attempts - 1


def _dns_failure(errno: int, text: str) -> requests.exceptions.ConnectionError:
    """The exception chain requests raises for a failed lookup (urllib3 2)."""
    try:
        try:
            raise socket.gaierror(errno, text)
        except socket.gaierror as exc:
            raise NameResolutionError("api.example.com", None, exc) from exc  # type: ignore[arg-type]
    except NameResolutionError as exc:
        reason = exc
    return requests.exceptions.ConnectionError(MaxRetryError(None, "/v1/items", reason))  # type: ignore[arg-type]


def _send(mock_exc: Exception, clock: ManualClock) -> tuple[Exception, int]:
    with requests_mock.Mocker() as mock, requests.Session() as session:
        mock.get("https://api.example.com/v1/items", exc=mock_exc)
        request = session.prepare_request(requests.Request("GET", "https://api.example.com/v1/items?key=S"))
        with pytest.raises(Exception) as caught:  # the type is asserted by the callers
            send_with_retry(
                session, request, RetryPolicy(max_attempts=8, clock=clock), timeout=(1.0, 1.0), logger=LOGGER
            )
        return caught.value, mock.call_count


def test_a_name_that_does_not_exist_is_not_retried():
    clock = ManualClock()
    error, calls = _send(_dns_failure(socket.EAI_NONAME, "Name or service not known"), clock)
    assert isinstance(error, HostNotResolvedError)
    assert str(error) == "host 'api.example.com' did not resolve: Name or service not known"
    assert (calls, error.attempts, clock.sleeps) == (1, 1, [])


def test_a_temporary_resolver_failure_gets_one_quick_retry():
    clock = ManualClock()
    error, calls = _send(_dns_failure(socket.EAI_AGAIN, "Temporary failure in name resolution"), clock)
    assert isinstance(error, HostNotResolvedError)
    assert str(error) == "host 'api.example.com' did not resolve: Temporary failure in name resolution (2 attempts)"
    assert calls == DNS_MAX_ATTEMPTS == 2
    assert len(clock.sleeps) == 1
    assert clock.sleeps[0] <= 1.0


def test_a_temporary_resolver_failure_with_max_retries_1_still_names_the_host():
    clock = ManualClock()
    with requests_mock.Mocker() as mock, requests.Session() as session:
        mock.get("https://api.example.com/v1/items", exc=_dns_failure(socket.EAI_AGAIN, "Temporary failure"))
        request = session.prepare_request(requests.Request("GET", "https://api.example.com/v1/items"))
        expected = r"^host 'api\.example\.com' did not resolve: Temporary failure$"
        with pytest.raises(HostNotResolvedError, match=expected):
            send_with_retry(session, request, RetryPolicy(max_attempts=1, clock=clock), timeout=1.0, logger=LOGGER)
        assert mock.call_count == 1


def test_other_connection_errors_are_still_retried_in_full():
    clock = ManualClock()
    error, calls = _send(requests.exceptions.ConnectionError("Connection refused"), clock)
    assert isinstance(error, RetriesExhaustedError)
    assert calls == 8
