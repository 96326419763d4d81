"""Vendor-shaped HTTP fixtures for tap tests.

Why two tools: ``requests-mock`` is fastest and enough for most stream tests (it patches the
``requests`` transport), while :class:`FixtureServer` is a real socket for what mocking hides:
connection reuse, timeouts, retries on 503, redirects, and clients that are not ``requests``.
"""

from __future__ import annotations

import json
import re
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from requests.structures import CaseInsensitiveDict

if TYPE_CHECKING:
    from types import TracebackType
    from typing import Self

__all__ = [
    "Body",
    "FixtureRequest",
    "FixtureResponse",
    "FixtureServer",
    "Handler",
    "ResponseSpec",
    "hold_answer",
    "iter_json_lines",
    "load_json_fixture",
    "register_json_pages",
    "register_responses",
]

Body = Mapping[str, Any] | Sequence[Any] | str | bytes | None
"""A response body: dict/list are sent as JSON, str as UTF-8 text, bytes verbatim."""


@dataclass(frozen=True)
class FixtureRequest:
    """A request as the fixture server received it (also what handlers get)."""

    method: str
    path: str
    query: dict[str, str]
    """Last value of each query parameter; see ``query_lists`` for repeated ones."""
    query_lists: dict[str, list[str]]
    headers: CaseInsensitiveDict[str]
    body: bytes
    path_params: dict[str, str] = field(default_factory=dict)
    """Values of ``{name}`` placeholders in the route's path."""

    @property
    def text(self) -> str:
        """The body decoded as UTF-8."""
        return self.body.decode("utf-8")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


@dataclass(frozen=True)
class FixtureResponse:
    """A canned response."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Body = None


ResponseSpec = FixtureResponse | tuple[int, Mapping[str, str], Body]
"""What a handler returns: a :class:`FixtureResponse` or ``(status, headers, body)``."""

Handler = Callable[[FixtureRequest], ResponseSpec]


def _encode_body(body: Body, headers: dict[str, str]) -> bytes:
    """Serialize a body and set a matching Content-Type unless the caller gave one."""
    lowered = {k.lower() for k in headers}
    if body is None:
        return b""
    if isinstance(body, bytes):
        content_type, data = "application/octet-stream", body
    elif isinstance(body, str):
        content_type, data = "text/plain; charset=utf-8", body.encode("utf-8")
    else:
        content_type, data = "application/json", json.dumps(body).encode("utf-8")
    if "content-type" not in lowered:
        headers["Content-Type"] = content_type
    return data


def _as_response(spec: ResponseSpec) -> FixtureResponse:
    if isinstance(spec, FixtureResponse):
        return spec
    status, headers, body = spec
    return FixtureResponse(status, headers, body)


class _Route:
    """One (method, path template) with either a handler or a scripted response sequence."""

    def __init__(
        self,
        method: str,
        path: str,
        handler: Handler | None,
        sequence: list[FixtureResponse] | None,
        *,
        repeat_last: bool,
    ) -> None:
        self.method = method.upper()
        self.path = path
        names = re.findall(r"{(\w+)}", path)
        pattern = re.escape(path)
        for name in names:
            pattern = pattern.replace(re.escape("{" + name + "}"), f"(?P<{name}>[^/]+)")
        self.regex = re.compile(pattern)
        self.handler = handler
        self.sequence = sequence
        self.repeat_last = repeat_last
        self.calls = 0

    def respond(self, request: FixtureRequest, index: int) -> FixtureResponse:
        """Response for the ``index``-th (0-based) call of this route."""
        if self.handler is not None:
            return _as_response(self.handler(request))
        assert self.sequence is not None  # noqa: S101 - one of the two is always set
        if index < len(self.sequence):
            return self.sequence[index]
        if self.repeat_last and self.sequence:
            return self.sequence[-1]
        raise AssertionError(
            f"scripted responses for {self.method} {self.path} exhausted after {len(self.sequence)} call(s)",
        )


class _QuietHandler(BaseHTTPRequestHandler):
    """Request handler that delegates to the FixtureServer and never writes to stderr."""

    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silence the per-request stderr line; requests are recorded instead."""

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        query_lists = parse_qs(parts.query, keep_blank_values=True)
        request = FixtureRequest(
            method=self.command,
            path=parts.path,
            query={k: v[-1] for k, v in query_lists.items()},
            query_lists=query_lists,
            headers=CaseInsensitiveDict(dict(self.headers.items())),
            body=body,
        )
        response = self.server.owner.dispatch(request)
        headers = dict(response.headers)
        data = _encode_body(response.body, headers)
        self.send_response(response.status)
        for name, value in headers.items():
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = _handle  # noqa: N815 - names set by the stdlib
    do_DELETE = do_HEAD = do_OPTIONS = _handle  # noqa: N815 - names set by the stdlib


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: FixtureServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Client disconnects are normal in tests; do not print tracebacks to stderr."""


class FixtureServer:
    """A local threaded HTTP server on 127.0.0.1 with a free port, for vendor-shaped fixtures.

    Example::

        with FixtureServer() as server:
            server.add_sequence("GET", "/v1/users", [(503, {}, "busy"), (200, {}, {"data": []})])
            run_tap(api_url=server.url)
            assert [r.path for r in server.requests] == ["/v1/users", "/v1/users"]

    Unknown routes answer 404 and are recorded in ``unmatched``; handler errors and exhausted
    sequences answer 500 and are recorded in ``errors``, so a test can assert both are empty.
    """

    def __init__(self) -> None:
        self._routes: list[_Route] = []
        self._lock = threading.Lock()
        self.requests: list[FixtureRequest] = []
        self.unmatched: list[FixtureRequest] = []
        self.errors: list[BaseException] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind a free port and serve in a daemon thread; returns self."""
        if self._server is not None:
            return self
        server = _Server(("127.0.0.1", 0), _QuietHandler)
        server.owner = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="FixtureServer",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; safe to call twice."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port."""
        if self._server is None:
            raise RuntimeError("FixtureServer is not running")
        port: int = self._server.server_address[1]
        return port

    @property
    def url(self) -> str:
        """Base URL without trailing slash, e.g. ``http://127.0.0.1:40123``."""
        return f"http://127.0.0.1:{self.port}"

    # -- routes ------------------------------------------------------------------------------

    def add_route(
        self,
        method: str,
        path: str,
        handler: Handler | ResponseSpec,
    ) -> None:
        """Serve ``method path`` with a handler callable or one fixed response.

        ``path`` may contain ``{name}`` placeholders (one path segment each); later routes take
        precedence over earlier ones with the same pattern.
        """
        with self._lock:
            if callable(handler):
                route = _Route(method, path, handler, None, repeat_last=True)
            else:
                route = _Route(method, path, None, [_as_response(handler)], repeat_last=True)
            self._routes.insert(0, route)

    def add_sequence(
        self,
        method: str,
        path: str,
        responses: Sequence[ResponseSpec],
        *,
        repeat_last: bool = False,
    ) -> None:
        """Serve scripted responses in order, e.g. ``503`` then ``200``.

        Args:
            method: HTTP method.
            path: Path template.
            responses: Responses for the 1st, 2nd, ... call.
            repeat_last: Keep answering with the last response once exhausted; if false an extra
                call answers 500 and is recorded in ``errors`` (catches runaway pagination).
        """
        with self._lock:
            sequence = [_as_response(r) for r in responses]
            self._routes.insert(0, _Route(method, path, None, sequence, repeat_last=repeat_last))

    def calls(self, method: str, path: str) -> list[FixtureRequest]:
        """Recorded requests with this method and exact path."""
        with self._lock:
            return [r for r in self.requests if r.method == method.upper() and r.path == path]

    def dispatch(self, request: FixtureRequest) -> FixtureResponse:
        """Find the route and produce the response (called from server threads).

        The handler runs outside the lock, so a slow handler (e.g. testing client timeouts)
        does not block other requests and may call :meth:`calls`.
        """
        with self._lock:
            for route in self._routes:
                match = route.regex.fullmatch(request.path)
                if route.method == request.method and match:
                    request = replace(request, path_params=match.groupdict())
                    index = route.calls
                    route.calls += 1
                    self.requests.append(request)
                    break
            else:
                self.requests.append(request)
                self.unmatched.append(request)
                route = None
        if route is None:
            return FixtureResponse(
                404,
                {},
                {"error": f"no fixture route for {request.method} {request.path}"},
            )
        try:
            return route.respond(request, index)
        except Exception as err:  # noqa: BLE001 - reported via .errors and a 500
            with self._lock:
                self.errors.append(err)
            return FixtureResponse(500, {}, {"error": f"fixture failed: {err}"})


# -- requests-mock helpers ---------------------------------------------------------------------


def register_json_pages(
    mocker: Any,
    url: str | re.Pattern[str],
    pages: Sequence[Any],
    *,
    method: str = "GET",
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
    **matcher_kwargs: Any,
) -> Any:
    """Answer successive calls to ``url`` with successive JSON ``pages`` (requests-mock).

    Works with a ``requests_mock`` fixture, ``Mocker`` or ``Adapter``. After the last page the
    last one repeats (requests-mock's rule), so assert ``matcher.call_count`` to catch runaway
    pagination. Extra keyword arguments (``complete_qs``, ``additional_matcher``,
    ``request_headers``) are passed to ``register_uri``.

    Returns:
        The requests-mock matcher (``call_count``, ``request_history``).
    """
    if not pages:
        raise ValueError("register_json_pages needs at least one page")
    responses = [{"json": page, "status_code": status_code, "headers": dict(headers or {})} for page in pages]
    return mocker.register_uri(method, url, responses, **matcher_kwargs)


def register_responses(
    mocker: Any,
    url: str | re.Pattern[str],
    responses: Sequence[ResponseSpec],
    *,
    method: str = "GET",
    **matcher_kwargs: Any,
) -> Any:
    """Answer successive calls with scripted responses, e.g. 503 then 200 (requests-mock).

    Bodies follow :data:`Body`: dict/list as JSON, str as text, bytes verbatim.

    Returns:
        The requests-mock matcher.
    """
    if not responses:
        raise ValueError("register_responses needs at least one response")
    specs: list[dict[str, Any]] = []
    for spec in map(_as_response, responses):
        headers = dict(spec.headers)
        content = _encode_body(spec.body, headers)
        specs.append({"status_code": spec.status, "headers": headers, "content": content})
    return mocker.register_uri(method, url, specs, **matcher_kwargs)


def load_json_fixture(path: str | Path, *, base: str | Path | None = None) -> Any:
    """Load a JSON fixture file (UTF-8).

    Args:
        path: File path; relative paths are resolved against ``base``.
        base: A directory, or a file such as the test module's ``__file__`` (its directory is
            used), so tests do not depend on the working directory.
    """
    file = Path(path)
    if base is not None and not file.is_absolute():
        base_path = Path(base)
        file = (base_path.parent if base_path.is_file() else base_path) / file
    with file.open(encoding="utf-8") as handle:
        return json.load(handle)


def iter_json_lines(path: str | Path) -> Iterator[Any]:
    """Yield each JSON document of a JSON-lines fixture (blank lines skipped)."""
    with Path(path).open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def hold_answer(connection: socket.socket, seconds: float) -> None:
    """For a fake server's handler: wait `seconds` before answering, or less if the client gives up first.

    The client giving up (its timeout) closes the connection, which ends the wait.

    A stalled answer thus lasts exactly as long as the client waits, however slow a loaded machine makes it: a test
    of the client's timeout waits on the client giving up, not on a guess of how long that takes.
    """
    deadline = time.monotonic() + seconds
    readable, _, _ = select.select([connection], [], [], seconds)
    if not readable:
        return  # held the whole time
    try:
        gone = connection.recv(1, socket.MSG_PEEK) == b""  # end of stream: the client closed the connection
    except OSError:
        gone = True  # reset by the client
    if not gone:  # the client sent more (pipelining): hold the rest of the time
        time.sleep(max(0.0, deadline - time.monotonic()))
