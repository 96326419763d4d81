# Copyright 2026 The Harborline connectors authors
# SPDX-License-Identifier: Apache-2.0
"""Tests of the paginators and date windows."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import urlparse

import pytest
import requests
from singer_sdk.exceptions import FatalAPIError
from singer_sdk.streams.rest import HTTPRequest

from harborline_singer_shared.pagination import (
    BodyNextLinkPaginator,
    CountedPageNumberPaginator,
    CursorPaginator,
    DateWindow,
    PaginationError,
    RepeatedCursorError,
    apply_next_link,
    count_at_path,
    iter_date_windows,
    value_at_path,
)

BASE = "https://acme.example.com/api/v2/"


def response(body, url: str = f"{BASE}items?page=1") -> requests.Response:
    r = requests.Response()
    r.status_code = 200
    r._content = json.dumps(body).encode()
    r.url = url
    r.encoding = "utf-8"
    return r


def run(paginator, bodies):
    """Advance through ``bodies`` like the SDK's loop; return tokens seen before each page."""
    tokens = []
    for body in bodies:
        if paginator.finished:
            break
        tokens.append(paginator.current_value)
        paginator.advance(response(body))
    return tokens


# --- path helpers --------------------------------------------------------------------------


def test_value_at_dotted_path():
    data = {"links": {"next": {"href": "/x"}}, "items": [{"id": 1}, {"id": 2}]}
    assert value_at_path(data, "links.next.href") == "/x"
    assert value_at_path(data, "items.1.id") == 2
    assert value_at_path(data, "items.-1.id") == 2
    assert value_at_path(data, "items.5.id") is None
    assert value_at_path(data, "links.prev.href") is None
    assert value_at_path(data, "links.next.href.deeper") is None
    assert value_at_path(data, "$.links.next.href") == "/x"
    assert value_at_path(data, "$.missing") is None


def test_count_at_path():
    data = {"data": [1, 2, 3], "meta": {"n": 3}}
    assert count_at_path(data, "data") == 3
    assert count_at_path(data, "$.data[*]") == 3
    assert count_at_path(data, "missing") == 0
    assert count_at_path({"data": None}, "data") == 0
    assert count_at_path([1, 2], "$[*]") == 2
    with pytest.raises(PaginationError, match="meta"):
        count_at_path(data, "meta")


# --- next link -----------------------------------------------------------------------------


def test_next_link_absolute():
    p = BodyNextLinkPaginator("links.next.href", base_url=BASE)
    p.advance(response({"links": {"next": {"href": f"{BASE}items?page=2"}}}))
    assert not p.finished
    assert p.current_value.geturl() == f"{BASE}items?page=2"


def test_next_link_host_relative_resolved_against_base_url():
    p = BodyNextLinkPaginator("links.next.href", base_url=BASE)
    p.advance(response({"links": {"next": {"href": "/api/v2/x?page=2"}}}))
    assert p.current_value.geturl() == "https://acme.example.com/api/v2/x?page=2"


def test_next_link_path_relative_resolved_against_base_url():
    p = BodyNextLinkPaginator("next", base_url=BASE)
    p.advance(response({"next": "items?page=3"}))
    assert p.current_value.geturl() == f"{BASE}items?page=3"


def test_next_link_relative_without_base_uses_response_url():
    p = BodyNextLinkPaginator("next")
    p.advance(response({"next": "/other/path?cursor=abc"}, url="https://h.example.com/a/b?x=1"))
    assert p.current_value.geturl() == "https://h.example.com/other/path?cursor=abc"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"links": {}},
        {"links": {"next": None}},
        {"links": {"next": {"href": None}}},
        {"links": {"next": {"href": ""}}},
        {"links": {"next": {"href": "   "}}},
    ],
)
def test_next_link_absent_null_or_empty_stops(body):
    p = BodyNextLinkPaginator("links.next.href", base_url=BASE)
    p.advance(response(body))
    assert p.finished
    assert p.count == 1


def test_next_link_full_walk():
    p = BodyNextLinkPaginator("links.next.href", base_url=BASE)
    tokens = run(
        p,
        [
            {"links": {"next": {"href": "/api/v2/items?page=2"}}},
            {"links": {"next": {"href": "/api/v2/items?page=3"}}},
            {"links": {"next": None}},
            {"links": {"next": {"href": "/never"}}},
        ],
    )
    assert [t.geturl() if t else None for t in tokens] == [
        None,
        f"{BASE}items?page=2",
        f"{BASE}items?page=3",
    ]
    assert p.finished
    assert p.count == 3


def test_next_link_other_host_refused():
    p = BodyNextLinkPaginator("next", base_url=BASE)
    with pytest.raises(PaginationError, match=r"evil\.example\.net"):
        p.advance(response({"next": "https://evil.example.net/steal?page=2"}))


def test_next_link_other_scheme_refused():
    p = BodyNextLinkPaginator("next", base_url=BASE)
    with pytest.raises(PaginationError):
        p.advance(response({"next": "http://acme.example.com/api/v2/items?page=2"}))


def test_next_link_other_host_allowed_when_opted_in():
    p = BodyNextLinkPaginator("next", base_url=BASE, allow_other_hosts=True)
    p.advance(response({"next": "https://cdn.example.net/page2"}))
    assert p.current_value.geturl() == "https://cdn.example.net/page2"


def test_next_link_not_a_string():
    p = BodyNextLinkPaginator("next", base_url=BASE)
    with pytest.raises(PaginationError, match="URL string"):
        p.advance(response({"next": {"href": "/x"}}))


def test_next_link_repeated_non_consecutive_raises():
    p = BodyNextLinkPaginator("next", base_url=BASE)
    p.advance(response({"next": "/api/v2/items?page=2"}))
    p.advance(response({"next": "/api/v2/items?page=3"}))
    with pytest.raises(RepeatedCursorError, match="second time"):
        p.advance(response({"next": f"{BASE}items?page=2"}))


def test_apply_next_link_drops_params_the_link_carries():
    request = HTTPRequest(url=f"{BASE}items", params={"page": 1, "page_size": 100, "q": "x"})
    token = urlparse(f"{BASE}items?page=2&q=x")
    out = apply_next_link(request, token)
    assert out.url == f"{BASE}items?page=2&q=x"
    assert out.params == {"page_size": 100}
    assert apply_next_link(request, None) is request


# --- cursor --------------------------------------------------------------------------------


def page(cursor=..., has_more=...):
    info = {}
    if cursor is not ...:
        info["cursor"] = cursor
    if has_more is not ...:
        info["hasMore"] = has_more
    return {"pageInfo": info, "data": [1]}


def test_cursor_walk_stops_on_missing_cursor():
    p = CursorPaginator("pageInfo.cursor")
    assert run(p, [page("a"), page("b"), page()]) == [None, "a", "b"]
    assert p.finished


@pytest.mark.parametrize("end", [None, ""])
def test_cursor_null_or_empty_stops(end):
    p = CursorPaginator("pageInfo.cursor")
    p.advance(response(page(end)))
    assert p.finished


@pytest.mark.parametrize("flag", [False, "false", "False", 0, "0"])
def test_cursor_has_more_false_stops_even_with_cursor(flag):
    p = CursorPaginator("pageInfo.cursor", has_more_path="pageInfo.hasMore")
    p.advance(response(page("a", True)))
    assert not p.finished
    p.advance(response(page("b", flag)))
    assert p.finished
    assert p.current_value == "a"


def test_cursor_has_more_missing_leaves_decision_to_cursor():
    p = CursorPaginator("pageInfo.cursor", has_more_path="pageInfo.hasMore")
    p.advance(response(page("a")))
    assert p.current_value == "a"
    p.advance(response(page()))
    assert p.finished


def test_cursor_has_more_true_but_no_cursor_stops():
    p = CursorPaginator("pageInfo.cursor", has_more_path="pageInfo.hasMore")
    p.advance(response(page(None, True)))
    assert p.finished


def test_cursor_repeated_consecutively_raises_clear_error():
    p = CursorPaginator("pageInfo.cursor")
    p.advance(response(page("a")))
    with pytest.raises(RepeatedCursorError, match=r"pageInfo\.cursor.*second time"):
        p.advance(response(page("a")))


def test_cursor_repeated_after_another_cursor_raises():
    p = CursorPaginator("pageInfo.cursor")
    p.advance(response(page("a")))
    p.advance(response(page("b")))
    with pytest.raises(RepeatedCursorError) as info:
        p.advance(response(page("a")))
    assert isinstance(info.value, FatalAPIError)


def test_cursor_numeric_is_stringified_and_bad_types_rejected():
    p = CursorPaginator("pageInfo.cursor")
    p.advance(response(page(17)))
    assert p.current_value == "17"
    with pytest.raises(PaginationError):
        CursorPaginator("pageInfo.cursor").advance(response(page({"nested": 1})))
    with pytest.raises(PaginationError):
        CursorPaginator("pageInfo.cursor").advance(response(page(True)))


# --- page number ---------------------------------------------------------------------------


def records(n: int) -> dict:
    return {"data": [{"id": i} for i in range(n)]}


def test_page_number_full_pages_continue_short_page_stops():
    p = CountedPageNumberPaginator(page_size=3, records_path="data")
    assert run(p, [records(3), records(3), records(2), records(3)]) == [1, 2, 3]
    assert p.finished
    assert p.page_size == 3


def test_page_number_empty_page_stops():
    p = CountedPageNumberPaginator(page_size=2, records_path="$.data[*]", start_page=0)
    assert run(p, [records(2), records(0), records(2)]) == [0, 1]
    assert p.finished


def test_page_number_more_than_page_size_continues():
    p = CountedPageNumberPaginator(page_size=2, records_path="data")
    p.advance(response(records(5)))
    assert p.current_value == 2
    assert not p.finished


def test_page_number_top_level_list():
    p = CountedPageNumberPaginator(page_size=2, records_path="$[*]")
    p.advance(response([1, 2]))
    assert p.current_value == 2
    p.advance(response([3]))
    assert p.finished


def test_page_number_rejects_bad_page_size():
    with pytest.raises(ValueError):
        CountedPageNumberPaginator(page_size=0, records_path="data")


# --- date windows --------------------------------------------------------------------------


def dt(day: int, hour: int = 0) -> datetime:
    return datetime(2024, 3, day, hour, tzinfo=UTC)


def test_windows_exact_multiple():
    windows = list(iter_date_windows(dt(1), dt(4), timedelta(days=1)))
    assert windows == [(dt(1), dt(2)), (dt(2), dt(3)), (dt(3), dt(4))]
    assert all(isinstance(w, DateWindow) for w in windows)


def test_windows_remainder_truncated_at_end():
    windows = list(iter_date_windows(dt(1), dt(3, 12), timedelta(days=1)))
    assert windows == [(dt(1), dt(2)), (dt(2), dt(3)), (dt(3), dt(3, 12))]
    assert windows[-1].end == dt(3, 12)


def test_windows_shorter_than_one_size():
    assert list(iter_date_windows(dt(1), dt(1, 5), timedelta(days=7))) == [(dt(1), dt(1, 5))]


@pytest.mark.parametrize(("start", "end"), [(dt(2), dt(2)), (dt(3), dt(2))])
def test_windows_empty_range(start, end):
    assert list(iter_date_windows(start, end, timedelta(hours=1))) == []


def test_windows_are_contiguous_half_open():
    windows = list(iter_date_windows(dt(1), dt(10, 7), timedelta(hours=13)))
    assert windows[0].start == dt(1)
    assert windows[-1].end == dt(10, 7)
    for previous, following in itertools.pairwise(windows):
        assert previous.end == following.start
        assert previous.start < previous.end
    assert all(w.end - w.start == timedelta(hours=13) for w in windows[:-1])


def test_windows_naive_rejected():
    naive = datetime(2024, 3, 1)  # noqa: DTZ001
    with pytest.raises(ValueError, match="timezone-aware start"):
        list(iter_date_windows(naive, dt(2), timedelta(days=1)))
    with pytest.raises(ValueError, match="timezone-aware end"):
        list(iter_date_windows(dt(1), naive, timedelta(days=1)))


@pytest.mark.parametrize("size", [timedelta(0), timedelta(seconds=-1)])
def test_windows_non_positive_size_rejected(size):
    with pytest.raises(ValueError, match="positive"):
        list(iter_date_windows(dt(1), dt(2), size))


def test_windows_other_timezone_converted_to_utc():
    plus2 = timezone(timedelta(hours=2))
    start = datetime(2024, 3, 1, 2, tzinfo=plus2)  # == 2024-03-01T00:00Z
    windows = list(iter_date_windows(start, dt(1, 12), timedelta(hours=6)))
    assert windows == [(dt(1), dt(1, 6)), (dt(1, 6), dt(1, 12))]
    assert windows[0].start.tzinfo is UTC


def test_windows_are_absolute_time_across_dst():
    zoneinfo = pytest.importorskip("zoneinfo")
    try:
        berlin = zoneinfo.ZoneInfo("Europe/Berlin")
    except zoneinfo.ZoneInfoNotFoundError:
        pytest.skip("no time zone database")
    start = datetime(2024, 3, 30, tzinfo=berlin)  # DST starts on 2024-03-31 in Berlin
    end = datetime(2024, 4, 1, tzinfo=berlin)
    windows = list(iter_date_windows(start, end, timedelta(days=1)))
    assert windows[0] == (datetime(2024, 3, 29, 23, tzinfo=UTC), datetime(2024, 3, 30, 23, tzinfo=UTC))
    # The real span is 47 hours, so the last window is truncated to 23 hours at ``end``.
    assert windows[1] == (datetime(2024, 3, 30, 23, tzinfo=UTC), datetime(2024, 3, 31, 22, tzinfo=UTC))
    assert windows[-1].end == end


def test_window_to_params():
    window = DateWindow(dt(1), dt(2))
    assert window.to_params("from", "to") == {
        "from": "2024-03-01T00:00:00+00:00",
        "to": "2024-03-02T00:00:00+00:00",
    }
    assert window.to_params("since", "until", date_format="%Y-%m-%d") == {
        "since": "2024-03-01",
        "until": "2024-03-02",
    }
    start, end = window
    assert (start, end) == (dt(1), dt(2))
