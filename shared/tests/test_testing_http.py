from __future__ import annotations

import json
import re
import threading

import pytest
import requests
import requests_mock

from harborline_singer_shared.testing.http import (
    FixtureResponse,
    FixtureServer,
    iter_json_lines,
    load_json_fixture,
    register_json_pages,
    register_responses,
)


def test_handler_receives_parsed_request_and_json_is_returned(fixture_server):
    seen = []

    def handler(request):
        seen.append(request)
        return 201, {"X-Request-Id": "r1"}, {"echo": request.json(), "page": request.query["page"]}

    fixture_server.add_route("POST", "/v1/items", handler)
    response = requests.post(
        f"{fixture_server.url}/v1/items?page=2&tag=a&tag=b",
        json={"name": "x"},
        headers={"Authorization": "Bearer t"},
        timeout=5,
    )
    assert response.status_code == 201
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["x-request-id"] == "r1"
    assert response.json() == {"echo": {"name": "x"}, "page": "2"}
    (request,) = seen
    assert request.method == "POST"
    assert request.path == "/v1/items"
    assert request.query_lists == {"page": ["2"], "tag": ["a", "b"]}
    assert request.query["tag"] == "b"
    assert request.headers["authorization"] == "Bearer t"
    assert json.loads(request.text) == {"name": "x"}
    assert fixture_server.requests == seen
    assert fixture_server.calls("post", "/v1/items") == seen


def test_scripted_sequence_503_then_200_over_one_session(fixture_server):
    fixture_server.add_sequence(
        "GET",
        "/data",
        [(503, {"Retry-After": "0"}, "busy"), FixtureResponse(200, {}, [{"id": 1}])],
    )
    with requests.Session() as session:
        first = session.get(f"{fixture_server.url}/data", timeout=5)
        second = session.get(f"{fixture_server.url}/data", timeout=5)
        third = session.get(f"{fixture_server.url}/data", timeout=5)
    assert first.status_code == 503
    assert first.text == "busy"
    assert first.headers["Content-Type"].startswith("text/plain")
    assert first.headers["Retry-After"] == "0"
    assert (second.status_code, second.json()) == (200, [{"id": 1}])
    assert third.status_code == 500, "exhausted sequence must be loud"
    assert len(fixture_server.errors) == 1
    assert "exhausted" in str(fixture_server.errors[0])
    assert len(fixture_server.calls("GET", "/data")) == 3


def test_sequence_can_repeat_last(fixture_server):
    fixture_server.add_sequence("GET", "/x", [(200, {}, b"\x00\x01")], repeat_last=True)
    for _ in range(3):
        response = requests.get(f"{fixture_server.url}/x", timeout=5)
        assert response.content == b"\x00\x01"
        assert response.headers["Content-Type"] == "application/octet-stream"
    assert fixture_server.errors == []


def test_unknown_route_is_404_and_recorded(fixture_server):
    fixture_server.add_route("GET", "/known", (200, {}, {}))
    response = requests.get(f"{fixture_server.url}/unknown?q=1", timeout=5)
    assert response.status_code == 404
    assert "GET /unknown" in response.json()["error"]
    assert [r.path for r in fixture_server.unmatched] == ["/unknown"]
    assert requests.post(f"{fixture_server.url}/known", timeout=5).status_code == 404


def test_path_params_and_latest_route_wins(fixture_server):
    fixture_server.add_route("GET", "/users/{user_id}/orders", lambda r: (200, {}, r.path_params))
    response = requests.get(f"{fixture_server.url}/users/42/orders", timeout=5)
    assert response.json() == {"user_id": "42"}
    fixture_server.add_route("GET", "/users/{user_id}/orders", (410, {}, None))
    gone = requests.get(f"{fixture_server.url}/users/42/orders", timeout=5)
    assert gone.status_code == 410
    assert gone.content == b""
    assert requests.get(f"{fixture_server.url}/users/42/x/orders", timeout=5).status_code == 404


def test_handler_exception_becomes_500_and_is_recorded(fixture_server):
    def broken(request):
        raise KeyError("boom")

    fixture_server.add_route("GET", "/broken", broken)
    response = requests.get(f"{fixture_server.url}/broken", timeout=5)
    assert response.status_code == 500
    assert isinstance(fixture_server.errors[0], KeyError)


def test_slow_handler_does_not_block_other_routes(fixture_server):
    entered, release = threading.Event(), threading.Event()

    def slow(request):
        entered.set()
        release.wait(120)  # released by the test once /fast answered (the limit only ends a broken run)
        return 200, {}, "slow"

    fixture_server.add_route("GET", "/slow", slow)
    fixture_server.add_route("GET", "/fast", (200, {}, "fast"))
    thread = threading.Thread(target=requests.get, args=(f"{fixture_server.url}/slow",), kwargs={"timeout": 180})
    thread.start()
    try:
        assert entered.wait(60), "/slow never reached its handler"
        # /slow holds its answer until released, after this: a server that blocked on it would time out here.
        assert requests.get(f"{fixture_server.url}/fast", timeout=60).text == "fast"
    finally:
        release.set()
        thread.join()


def test_server_is_quiet_and_stops(capfd):
    with FixtureServer() as server:
        server.add_route("GET", "/", (200, {}, "ok"))
        url = server.url
        assert requests.get(url + "/", timeout=5).text == "ok"
        requests.get(url + "/missing", timeout=5)
    captured = capfd.readouterr()
    assert captured.err == ""
    assert captured.out == ""
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/", timeout=2)
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.url


def test_two_servers_get_different_ports():
    with FixtureServer() as one, FixtureServer() as two:
        assert one.port != two.port
        assert one.url.startswith("http://127.0.0.1:")


# -- requests-mock helpers ---------------------------------------------------------------------


def test_register_json_pages_serves_pages_in_order():
    pages = [{"data": [1, 2], "next": 2}, {"data": [3], "next": None}]
    with requests_mock.Mocker() as mocker:
        matcher = register_json_pages(mocker, "https://api.example.com/v1/items", pages)
        got = [requests.get("https://api.example.com/v1/items", timeout=5).json() for _ in pages]
        repeated = requests.get("https://api.example.com/v1/items", timeout=5).json()
    assert got == pages
    assert repeated == pages[-1]
    assert matcher.call_count == 3


def test_register_json_pages_with_regex_and_headers(requests_mock):
    matcher = register_json_pages(
        requests_mock,
        re.compile(r"https://api\.example\.com/v1/items\?page=\d+"),
        [{"p": 1}],
        method="POST",
        status_code=202,
        headers={"X-Total": "1"},
    )
    response = requests.post("https://api.example.com/v1/items?page=7", timeout=5)
    assert response.status_code == 202
    assert response.headers["X-Total"] == "1"
    assert response.json() == {"p": 1}
    assert matcher.last_request.qs == {"page": ["7"]}


def test_register_json_pages_rejects_empty():
    with requests_mock.Mocker() as mocker, pytest.raises(ValueError, match="at least one"):
        register_json_pages(mocker, "https://x", [])


def test_register_responses_sequence():
    with requests_mock.Mocker() as mocker:
        register_responses(
            mocker,
            "https://api.example.com/ping",
            [(503, {}, "down"), (429, {"Retry-After": "1"}, None), (200, {}, {"ok": True})],
        )
        results = [requests.get("https://api.example.com/ping", timeout=5) for _ in range(3)]
    assert [r.status_code for r in results] == [503, 429, 200]
    assert results[0].text == "down"
    assert results[1].headers["Retry-After"] == "1"
    assert results[2].json() == {"ok": True}


# -- fixture files -----------------------------------------------------------------------------


def test_load_json_fixture_relative_to_base(tmp_path):
    folder = tmp_path / "fixtures"
    folder.mkdir()
    (folder / "users.json").write_text(json.dumps({"name": "Zoë"}), encoding="utf-8")
    module_file = tmp_path / "test_module.py"
    module_file.write_text("", encoding="utf-8")
    assert load_json_fixture("fixtures/users.json", base=module_file) == {"name": "Zoë"}
    assert load_json_fixture("users.json", base=folder) == {"name": "Zoë"}
    assert load_json_fixture(folder / "users.json") == {"name": "Zoë"}
    with pytest.raises(FileNotFoundError):
        load_json_fixture("missing.json", base=folder)


def test_iter_json_lines(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2}\n', encoding="utf-8")
    assert list(iter_json_lines(path)) == [{"a": 1}, {"a": 2}]
