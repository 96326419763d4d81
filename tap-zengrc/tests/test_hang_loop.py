"""Through the real CLI: a server cannot hang or loop the tap, and what stops it is one clear line.

A body trickled a byte at a time, a 200 answer that is an HTML page, an API that ignores the page
parameter (same records under a new next link), a chain of pages that never ends (`max_pages`),
and a host name that does not resolve.
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from fake_api import DEFAULT_PASSWORD, DEFAULT_USERNAME, FakeZenGRC, Fault

from harborline_singer_shared.testing.http import FixtureRequest, FixtureServer

HTML = b"<!DOCTYPE html><html><head><title>Portal ZX-4471</title></head><body>Back soon</body></html>"


def _run(tmp_path: Path, config: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"pseudonymize": {}, **config}), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZENGRC_", "TAP_ZENGRC_"))}
    return subprocess.run(
        [sys.executable, "-m", "harborline_tap_zengrc", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )


def _the_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The run failed with exactly one ERROR line and no traceback; return that line."""
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1, result.stderr[-3000:]
    return errors[0]


def _records(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    messages = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return [m["record"] for m in messages if m["type"] == "RECORD"]


def _fixture_config(server: FixtureServer, **extra: Any) -> dict[str, Any]:
    return {"api_url": f"{server.url}/api/v2", "username": "id-hang-loop", "password": "pw-hang-loop-1234", **extra}


def test_html_page_with_200_is_one_line_naming_stream_and_url(tmp_path: Path) -> None:
    with FakeZenGRC(records=3, seed=1) as fake:
        fake.inject(Fault(status=200, body=HTML, path="/api/v2/people"))
        result = _run(
            tmp_path,
            {"api_url": fake.url, "username": DEFAULT_USERNAME, "password": DEFAULT_PASSWORD, "page_size": 2},
        )
        url = fake.url
    line = _the_error_line(result)
    assert "stream 'people': the API answered HTTP 200 OK with a body that is not JSON" in line
    assert f"{len(HTML)} bytes) for GET {url}/people?page_size=***;" in line
    assert "`api_url`" in line
    assert "ZX-4471" not in result.stderr  # never the body
    assert DEFAULT_PASSWORD not in result.stderr


def test_same_records_under_a_new_next_link_stop_at_the_second_page(tmp_path: Path) -> None:
    def ignores_page(request: FixtureRequest) -> tuple[int, dict[str, str], Any]:
        page = int(request.query.get("page", "1"))
        rows = [{"id": 1, "updated_at": "2024-01-02T00:00:00Z"}, {"id": 2, "updated_at": "2024-01-03T00:00:00Z"}]
        return 200, {}, {"data": rows, "links": {"next": {"href": f"{request.path}?page={page + 1}"}}}

    with FixtureServer() as server:
        server.add_route("GET", "/api/v2/{stream}", ignores_page)
        result = _run(tmp_path, _fixture_config(server))
        requests_made = len(server.requests)
    line = _the_error_line(result)
    assert "stream 'assessments': page 2 has the same 2 record(s) as page 1" in line
    assert "the API seems to ignore the page parameter" in line
    assert requests_made == 2
    assert [r["id"] for r in _records(result)] == [1, 2]  # no duplicate was written


def test_max_pages_ends_a_chain_of_pages_that_never_ends(tmp_path: Path) -> None:
    def endless(request: FixtureRequest) -> tuple[int, dict[str, str], Any]:
        page = int(request.query.get("page", "1"))
        rows = [{"id": page, "updated_at": "2024-01-02T00:00:00Z"}]
        return 200, {}, {"data": rows, "links": {"next": {"href": f"{request.path}?page={page + 1}"}}}

    with FixtureServer() as server:
        server.add_route("GET", "/api/v2/{stream}", endless)
        result = _run(tmp_path, _fixture_config(server, max_pages=4))
        requests_made = len(server.requests)
    line = _the_error_line(result)
    assert "stream 'assessments': stopped after max_pages (4) pages in one request chain" in line
    assert "raise the `max_pages` setting" in line
    assert requests_made == 4
    assert [r["id"] for r in _records(result)] == [1, 2, 3, 4]


def test_unresolvable_host_is_one_line_naming_host_and_setting(tmp_path: Path) -> None:
    """`.invalid` never resolves (RFC 2606); the default 8 attempts must not be spent on it."""
    result = _run(tmp_path, {"api_url": "https://acme.api.zengrc.invalid", "username": "i", "password": "p"})
    line = _the_error_line(result)
    assert "stream 'assessments': host 'acme.api.zengrc.invalid' did not resolve" in line
    assert line.endswith("check the `api_url` setting.")
    assert "ConnectionError" not in result.stderr
    assert result.stderr.count("Retrying") <= 1


class _Trickle:
    """Headers at once, then one body byte every few milliseconds until the client hangs up."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.hung_up = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            while b"\r\n\r\n" not in conn.recv(65536, socket.MSG_PEEK):
                pass
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n")
            for _ in range(12_000):  # about a minute at most, so a broken client cannot hang the suite
                readable, _, _ = select.select([conn], [], [], 0.005)
                try:
                    if readable and conn.recv(1, socket.MSG_PEEK) == b"":
                        break
                    conn.sendall(b" ")
                except OSError:
                    break
            else:
                return
        self.hung_up.set()


def test_trickling_server_is_cut_off_after_request_timeout(tmp_path: Path) -> None:
    server = _Trickle()
    with server.listener:
        port = server.listener.getsockname()[1]
        config = {"api_url": f"http://127.0.0.1:{port}", "username": "i", "password": "p"}
        result = _run(tmp_path, {**config, "request_timeout": 1, "max_retries": 1})
        assert server.hung_up.wait(60)
    line = _the_error_line(result)
    assert "Giving up on GET /api/v2/assessments after 1 attempt(s)" in line
    assert "ResponseTooSlowError: the response was not complete after 1 s (request_timeout)" in line
