"""Pagination, windows, state and record shape of the Thought Industries streams."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
import requests_mock as rm
from conftest import load_fixture, run_tap
from fake_api import (
    APIEVENTS,
    DEFAULT_API_KEY,
    EVENTS,
    EVENTS_PAGEINFO,
    FakeThoughtIndustries,
    dataset_from_events,
    iso_ms,
)

from harborline_tap_thoughtindustries.client import event_key, parse_timestamp_ms, to_epoch_ms
from harborline_tap_thoughtindustries.streams import EVENT_STREAMS

T0 = datetime(2024, 3, 1, tzinfo=UTC)
ENDPOINT_OF = {cls.name: cls.event_name for cls in EVENT_STREAMS}


def _ms(dt: datetime) -> int:
    return to_epoch_ms(dt)


def _login(ms: int, user_id: str, n: int = 0) -> dict:
    return {
        "companyId": "c1",
        "event": "login",
        "timestamp": iso_ms(ms),
        "user": f"user{user_id}@example.com",
        "userAgent": f"agent {n}",
        "userDetail": {"id": user_id},
    }


def _action(ms: int, n: int) -> dict:
    return {
        "id": f"act-{n:05d}",
        "companyId": "c1",
        "type": "started",
        "source": "learner",
        "timestamp": iso_ms(ms),
        "notifiableId": "course-1",
        "user": f"user{n}@example.com",
        "userDetail": {"id": f"u{n}"},
    }


def _config(api: FakeThoughtIndustries, **extra) -> dict:
    config = {
        "api_url": api.url,
        "api_key": DEFAULT_API_KEY,
        "start_date": api.dataset.start.isoformat(),
        "end_date": api.dataset.end.isoformat(),
        "requests_per_minute": 1_000_000,
        "max_retries": 3,
        "request_timeout": 5,
    }
    config.update(extra)
    return config


def _expected_keys(api: FakeThoughtIndustries, stream: str) -> list[str]:
    cls = next(c for c in EVENT_STREAMS if c.name == stream)
    events = api.dataset.events(cls.event_name)
    if cls.key_fields:
        return sorted(event_key(e, cls.key_fields) for e in events)
    return sorted(e["id"] for e in events)


def _keys(records: list[dict], stream: str) -> list[str]:
    cls = next(c for c in EVENT_STREAMS if c.name == stream)
    field = "event_key" if cls.key_fields else "id"
    return sorted(r[field] for r in records)


# -- the three pagination paths and both envelopes ------------------------------------------------


@pytest.mark.parametrize(
    ("stream", "envelope"),
    [
        ("course_actions", APIEVENTS),  # data.APIEvents + pageInfo cursor (vendor docs)
        ("logins", EVENTS),  # top-level events, no pageInfo: endDate walk-back (GitLab)
        ("course_purchases", EVENTS_PAGEINFO),  # top-level events + pageInfo cursor
        ("course_views", APIEVENTS),
        ("visits", EVENTS_PAGEINFO),
    ],
)
def test_every_pagination_path_reads_every_event_once(stream, envelope):
    endpoint = ENDPOINT_OF[stream]
    with FakeThoughtIndustries(
        users=50, events=4000, days=3, seed=11, page_size=25, envelopes={endpoint: envelope}
    ) as api:
        result = run_tap(_config(api), streams=[stream])
        records = result.records(stream)
        assert len(records) > 100  # several pages per window
        assert _keys(records, stream) == _expected_keys(api, stream)
        requests = api.event_requests(endpoint)
        if envelope == EVENTS:
            assert not any("cursor" in r.params for r in requests)
            # inside a window endDate only ever moves back
            by_window: dict[str, list[int]] = {}
            for r in requests:
                by_window.setdefault(r.params["startDate"], []).append(int(r.params["endDate"]))
            for ends in by_window.values():
                assert ends == sorted(ends, reverse=True)
                assert len(ends) > 2
        else:
            assert any("cursor" in r.params for r in requests)


def test_walk_back_keeps_events_sharing_the_oldest_millisecond():
    """Three events share one millisecond across a page break of 4.

    Page 1 holds the two newer events and two of the three; GitLab's "oldest - 1 ms" would then
    skip the third. Reading up to the oldest millisecond again (and skipping what was read) keeps it.
    """
    same = _ms(T0 + timedelta(hours=5))
    events = [_login(same, f"u{n}", n) for n in range(3)]
    events += [_login(same + 1000 * n, f"v{n}", n) for n in range(1, 3)]
    events += [_login(same - 1000 * n, f"w{n}", n) for n in range(1, 6)]
    dataset = dataset_from_events({"login": events}, start=T0, end=T0 + timedelta(days=1))
    with FakeThoughtIndustries(dataset=dataset, page_size=4) as api:
        result = run_tap(_config(api), streams=["logins"])
        ends = [int(r.params["endDate"]) for r in api.event_requests("login")]
    records = result.records("logins")
    assert len(records) == 10
    assert len({r["event_key"] for r in records}) == 10
    assert ends[1] == same  # the second request ends at the shared millisecond, inclusive


def test_walk_back_warns_when_one_millisecond_holds_more_than_a_page(caplog):
    same = _ms(T0 + timedelta(hours=1))
    events = [_login(same, f"u{n}", n) for n in range(150)]
    dataset = dataset_from_events({"login": events}, start=T0, end=T0 + timedelta(days=1))
    logger = logging.getLogger("tap-thoughtindustries")
    logger.addHandler(caplog.handler)
    try:
        with FakeThoughtIndustries(dataset=dataset, page_size=100) as api:
            result = run_tap(_config(api), streams=["logins"])
    finally:
        logger.removeHandler(caplog.handler)
    assert len(result.records("logins")) == 100  # the API cannot page inside one millisecond
    assert "share the millisecond" in caplog.text


def test_envelopes_from_vendor_fixtures():
    """Both documented response shapes, exactly as in tests/fixtures, parse to records."""
    config = {
        "api_url": "https://university.example.com",
        "api_key": "k" * 20,
        "start_date": "2024-03-01T00:00:00Z",
        "end_date": "2024-03-02T00:00:00Z",
        "requests_per_minute": 1_000_000,
        "pseudonymize": {},  # opted out: the records are compared with the fixtures in clear
    }
    base = "https://university.example.com/incoming/v2"
    with rm.Mocker() as mock:
        mock.get(f"{base}/events/courseAction", json=load_fixture("events_course_action_apievents.json"))
        mock.get(
            f"{base}/events/login",
            [{"json": load_fixture("events_login_toplevel.json")}, {"json": {"events": []}}],
        )
        mock.get(
            f"{base}/users",
            [{"json": load_fixture("users_page1.json")}, {"json": load_fixture("users_page2.json")}],
        )
        result = run_tap(config, streams=["course_actions", "logins", "users"])
        history = [(r.path, r.qs) for r in mock.request_history]
    actions = result.records("course_actions")
    assert [a["id"] for a in actions] == [
        "7b0f7a5e-1c7e-4b0c-9d55-2f1c1e0b9a01",
        "7b0f7a5e-1c7e-4b0c-9d55-2f1c1e0b9a02",
    ]
    logins = result.records("logins")
    assert [r["userAgent"] for r in logins] == ["Mozilla/5.0 (Firefox)", "Mozilla/5.0 (Chrome)"]
    assert all(len(r["event_key"]) == 64 for r in logins)
    assert [u["email"] for u in result.records("users")] == [
        "ada.lovelace@example.com",
        "alan.turing@example.org",
    ]
    # the second users request carries the cursor of the first page
    users_requests = [qs for path, qs in history if path.endswith("/users")]
    assert users_requests == [{}, {"cursor": ["mtuxodm2ntg1mzk5oq"]}]  # requests-mock lower-cases
    # the login walk-back asked again up to the oldest event's millisecond (inclusive)
    login_requests = [qs for path, qs in history if path.endswith("/events/login")]
    assert login_requests[0]["enddate"] == [str(_ms(T0 + timedelta(days=1)) - 1)]
    assert login_requests[1]["enddate"] == [str(parse_timestamp_ms("2024-03-01T09:30:00.000Z"))]


def test_unknown_response_shape_fails_clearly():
    config = {
        "api_url": "https://university.example.com",
        "api_key": "k" * 20,
        "start_date": "2024-03-01T00:00:00Z",
        "end_date": "2024-03-02T00:00:00Z",
    }
    with rm.Mocker() as mock:
        mock.get("https://university.example.com/incoming/v2/events/login", json={"results": [{"a": 1}]})
        result = run_tap(config, streams=["logins"], expect_error=True)
    assert "data.APIEvents" in str(result.error)


# -- windows, date formats, state -----------------------------------------------------------------


def test_window_boundaries_are_half_open():
    """An event at a window's end belongs to the next window, one at end-1ms to this one."""
    day2 = T0 + timedelta(days=1)
    events = [
        _action(_ms(T0), 1),  # first instant of window 1
        _action(_ms(day2) - 1, 2),  # last millisecond of window 1
        _action(_ms(day2), 3),  # first instant of window 2
        _action(_ms(T0 + timedelta(days=2)) - 1, 4),  # last millisecond of the range
        _action(_ms(T0 + timedelta(days=2)), 5),  # end_date itself: excluded
    ]
    dataset = dataset_from_events({"courseAction": events}, start=T0, end=T0 + timedelta(days=2))
    with FakeThoughtIndustries(dataset=dataset) as api:
        result = run_tap(_config(api), streams=["course_actions"])
        first_requests = [
            (int(r.params["startDate"]), int(r.params["endDate"]))
            for r in api.event_requests("courseAction")
            if "cursor" not in r.params
        ]
    assert sorted(r["id"] for r in result.records("course_actions")) == [
        "act-00001",
        "act-00002",
        "act-00003",
        "act-00004",
    ]
    assert first_requests == [
        (_ms(T0), _ms(day2) - 1),
        (_ms(day2), _ms(T0 + timedelta(days=2)) - 1),
    ]
    # one STATE per completed window, each at the window's end
    bookmarks = [s["bookmarks"]["course_actions"].get("replication_key_value") for s in result.states()]
    distinct = [b for i, b in enumerate(bookmarks) if b and (i == 0 or bookmarks[i - 1] != b)]
    assert distinct == [day2.isoformat(), (T0 + timedelta(days=2)).isoformat()]


def test_iso8601_date_params():
    with FakeThoughtIndustries(users=20, events=600, days=2, seed=5, date_format="iso8601") as api:
        result = run_tap(_config(api, date_param_format="iso8601"), streams=["logins"])
        params = api.event_requests("login")[0].params
    assert params["startDate"].endswith(".000Z")
    assert params["endDate"].endswith(".999Z")
    assert _keys(result.records("logins"), "logins") == _expected_keys(api, "logins")


def test_wrong_date_format_is_a_clear_failure():
    with FakeThoughtIndustries(users=20, events=100, days=1, seed=5, date_format="iso8601") as api:
        result = run_tap(_config(api), streams=["logins"], expect_error=True)
    assert "400" in str(result.error)


def test_fractional_windows():
    with FakeThoughtIndustries(users=20, events=500, days=1, seed=5) as api:
        result = run_tap(_config(api, window_days=0.25), streams=["course_actions"])
        starts = {r.params["startDate"] for r in api.event_requests("courseAction")}
    assert len(starts) == 4
    assert _keys(result.records("course_actions"), "course_actions") == _expected_keys(api, "course_actions")


def test_resume_after_interruption_loses_nothing():
    """A run that dies mid-window resumes from the last complete window end; nothing is lost."""
    with FakeThoughtIndustries(users=40, events=3000, days=4, seed=9, page_size=50) as api:
        config = _config(api, max_retries=1)
        # Let 12 requests through, then fail every request of the stream (window 2 or 3).
        requests_before = 12
        api.fail_next(500, count=10_000, path_contains="/events/courseView")
        api.scripted[0].count = 10_000
        original = api._take_script
        seen = {"n": 0}

        def take_after(path: str):
            if "/events/courseView" in path:
                seen["n"] += 1
                if seen["n"] <= requests_before:
                    return None
            return original(path)

        api._take_script = take_after
        first = run_tap(config, streams=["course_views"], expect_error=True)
        bookmark = first.bookmark("course_views")
        assert bookmark is not None
        window_ends = {(api.dataset.start + timedelta(days=n)).isoformat() for n in range(1, 5)}
        assert bookmark in window_ends  # a complete window's end, never a time inside a window
        assert bookmark != api.dataset.end.isoformat()

        api._take_script = original
        api.scripted.clear()
        second = run_tap(config, streams=["course_views"], state=first.last_state())
        assert second.bookmark("course_views") == api.dataset.end.isoformat()
        # the second run started at the bookmark, not before
        starts = [int(r.params["startDate"]) for r in api.event_requests("courseView")[requests_before + 1 :]]
        assert min(starts) == parse_timestamp_ms(bookmark)
    both = first.records("course_views") + second.records("course_views")
    assert sorted(set(_keys(both, "course_views"))) == _expected_keys(api, "course_views")
    # at most the interrupted window is read twice
    committed = {r["event_key"] for r in first.records("course_views") if r["timestamp"] < bookmark[:19]}
    assert not committed & set(_keys(second.records("course_views"), "course_views"))


def test_event_at_the_bookmark_is_not_lost():
    """An event exactly at the saved bookmark is read by the next run (startDate is inclusive)."""
    bookmark = T0 + timedelta(days=1)
    events = [_action(_ms(bookmark), 1), _action(_ms(bookmark) - 1, 2)]
    dataset = dataset_from_events({"courseAction": events}, start=T0, end=T0 + timedelta(days=2))
    state = {
        "bookmarks": {
            "course_actions": {
                "replication_key": "timestamp",
                "replication_key_value": bookmark.isoformat(),
            }
        }
    }
    with FakeThoughtIndustries(dataset=dataset) as api:
        result = run_tap(_config(api), streams=["course_actions"], state=state)
    assert [r["id"] for r in result.records("course_actions")] == ["act-00001"]


def test_rerunning_a_window_yields_the_same_rows(fake_api, base_config):
    first = run_tap(base_config, streams=["logins", "course_completions"])
    second = run_tap(base_config, streams=["logins", "course_completions"])
    for stream in ("logins", "course_completions"):
        assert first.records(stream) == second.records(stream)
        keys = _keys(first.records(stream), stream)
        assert len(keys) == len(set(keys))


def test_final_state_holds_the_last_window_end(fake_api, base_config):
    result = run_tap(base_config)
    final = result.last_state()["bookmarks"]
    for cls in EVENT_STREAMS:
        assert final[cls.name] == {
            "replication_key": "timestamp",
            "replication_key_value": fake_api.dataset.end.isoformat(),
        }


def test_end_date_in_the_future_is_capped_to_now(fake_api, base_config):
    config = {**base_config, "end_date": "2999-01-01T00:00:00Z", "window_days": 400}
    result = run_tap(config, streams=["clients", "logins"])
    bookmark = datetime.fromisoformat(result.bookmark("logins"))
    assert bookmark <= datetime.now(UTC)
    assert bookmark > datetime.now(UTC) - timedelta(minutes=5)


# -- records -------------------------------------------------------------------------------------------


def test_cursor_streams_read_everything(fake_api, base_config):
    result = run_tap(base_config, streams=["users", "content", "assessment_attempts", "coupons"])
    data = fake_api.dataset.resources
    assert sorted(u["id"] for u in result.records("users")) == sorted(u["id"] for u in data["users"])
    assert len(result.records("assessment_attempts")) == len(data["assessmentAttempts"])
    assert len(result.records("content")) == len(data["content"])
    assert len(result.records("coupons")) == len(data["coupons"])
    assert any("cursor" in r.params for r in fake_api.requests if r.path.endswith("/users"))


def test_event_keys_are_deterministic_and_distinct():
    event = {"timestamp": "2024-03-01T10:00:00.000Z", "userDetail": {"id": "u1"}}
    same_instant = {"timestamp": "2024-03-01T10:00:00+00:00", "userDetail": {"id": "u1"}}
    fields = ("userDetail.id", "timestamp")
    assert event_key(event, fields) == event_key(same_instant, fields)
    assert event_key(event, fields) != event_key({**event, "userDetail": {"id": "u2"}}, fields)
    # the separator keeps ("a", "bc") and ("ab", "c") apart
    assert event_key({"a": "a", "b": "bc"}, ("a", "b")) != event_key({"a": "ab", "b": "c"}, ("a", "b"))
