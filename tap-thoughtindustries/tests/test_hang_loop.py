"""A server cannot loop this tap: a 200 HTML page, the same users under a new cursor, endless pages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from conftest import run_tap
from fake_api import DEFAULT_API_KEY, FakeThoughtIndustries

from harborline_singer_shared.pagination import RepeatedPageError, TooManyPagesError
from harborline_singer_shared.retry import ManualClock
from harborline_singer_shared.testing.http import FixtureRequest, FixtureServer

HTML = b"<html><head><title>502 Bad Gateway QX-20</title></head><body>nginx</body></html>"


def test_html_page_with_200_is_one_error_line_through_the_cli(tmp_path: Path, fake_api: FakeThoughtIndustries) -> None:
    fake_api.fail_next(200, headers={"Content-Type": "text/html"}, body=HTML, path_contains="/events/login")
    data = fake_api.dataset
    config = {
        "api_url": fake_api.url,
        "api_key": DEFAULT_API_KEY,
        "start_date": data.start.isoformat(),
        "end_date": (data.start + timedelta(days=1)).isoformat(),
        "requests_per_minute": 1_000_000,
        "pseudonymize": {},
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "harborline_tap_thoughtindustries", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ),
        check=False,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1, result.stderr[-3000:]
    assert "stream 'logins': the API answered HTTP 200 OK with a body that is not JSON" in errors[0]
    assert "/incoming/v2/events/login?startDate=***&endDate=***;" in errors[0]
    assert "QX-20" not in result.stderr
    assert DEFAULT_API_KEY not in result.stderr


def _config(server: FixtureServer, **extra: Any) -> dict[str, Any]:
    return {
        "api_url": server.url,
        "api_key": "test-api-key-hang-loop",
        "start_date": "2024-06-01T00:00:00+00:00",
        "end_date": "2024-06-02T00:00:00+00:00",
        "requests_per_minute": 1_000_000,
        **extra,
    }


def test_same_users_under_a_new_cursor_stop_the_stream() -> None:
    cursors = iter(range(1, 1_000_000))

    def ignores_cursor(request: FixtureRequest) -> tuple[int, dict[str, str], Any]:
        users = [{"id": "u1", "email": "a@example.com"}, {"id": "u2", "email": "b@example.com"}]
        return 200, {}, {"users": users, "pageInfo": {"cursor": f"c{next(cursors)}", "hasMore": True}}

    with FixtureServer() as server:
        server.add_route("GET", "/incoming/v2/users", ignores_cursor)
        result = run_tap(_config(server), streams=["users"], clock=ManualClock(), expect_error=True)
        cursors_sent = [r.query.get("cursor") for r in server.requests]
    assert isinstance(result.error, RepeatedPageError)
    assert str(result.error).startswith("stream 'users': page 2 has the same 2 record(s) as page 1")
    assert cursors_sent == [None, "c1"]
    assert [r["id"] for r in result.records("users")] == ["u1", "u2"]


def test_max_pages_bounds_each_event_window() -> None:
    window_start = datetime(2024, 6, 1, tzinfo=UTC)

    def endless(request: FixtureRequest) -> tuple[int, dict[str, str], Any]:
        page = int(request.query.get("cursor", "0"))
        stamp = (window_start + timedelta(minutes=page)).isoformat().replace("+00:00", "Z")
        events = [{"id": f"e{page}", "timestamp": stamp, "userDetail": {"id": "u1"}}]
        return 200, {}, {"events": events, "pageInfo": {"cursor": str(page + 1), "hasMore": True}}

    with FixtureServer() as server:
        server.add_route("GET", "/incoming/v2/events/login", endless)
        result = run_tap(_config(server, max_pages=3), streams=["logins"], clock=ManualClock(), expect_error=True)
        requests_made = len(server.requests)
    assert isinstance(result.error, TooManyPagesError)
    assert str(result.error).startswith("stream 'logins': stopped after max_pages (3) pages in one request chain")
    assert requests_made == 3
    assert len(result.records("logins")) == 3
