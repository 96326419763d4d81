"""Stream behaviour: next-link pagination, schemas, custom attributes, bookmarks and resuming."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from fake_api import FakeZenGRC
from tap_helpers import MOCK_BASE, load_fixture, run_tap

from harborline_singer_shared.retry import RetriesExhaustedError
from harborline_tap_zengrc.client import normalize_api_url, parse_datetime
from harborline_tap_zengrc.streams import STREAM_TYPES
from harborline_tap_zengrc.tap import TapZenGRC

REQUIRED_STREAMS = {
    "assessments",
    "audits",
    "controls",
    "issues",
    "objectives",
    "programs",
    "requests",
    "risks",
    "vendors",
    "people",
}


def _pages_by_query(pages: dict[str | None, Any]) -> Any:
    """A requests-mock callback answering by the ``page`` query parameter (None = first)."""

    def callback(request: Any, context: Any) -> Any:
        page = request.qs.get("page", [None])[0]
        context.status_code = 200
        return pages[page]

    return callback


# -- pagination ------------------------------------------------------------------------------


def test_follows_relative_next_links_until_null(requests_mock: Any, mock_config: dict) -> None:
    matcher = requests_mock.get(
        f"{MOCK_BASE}/controls",
        json=_pages_by_query(
            {None: load_fixture("controls_page1.json"), "2": load_fixture("controls_page2.json")},
        ),
    )
    result = run_tap({**mock_config, "page_size": 2}, streams={"controls"})

    assert [r["id"] for r in result.records()] == [101, 102, 103]
    urls = [h.url for h in matcher.request_history]
    assert urls == [
        f"{MOCK_BASE}/controls?page_size=2",
        # The host-relative href resolved against the API host; page_size not sent twice.
        "https://acme.api.zengrc.com/api/v2/controls?page=2&page_size=2",
    ]


@pytest.mark.parametrize("last_links", [{}, {"next": None}, {"next": {"href": None}}, None])
def test_last_page_without_next_link_ends_the_stream(requests_mock: Any, mock_config: dict, last_links: Any) -> None:
    page2 = load_fixture("controls_page2.json")
    if last_links is None:
        del page2["links"]
    else:
        page2["links"] = last_links
    matcher = requests_mock.get(
        f"{MOCK_BASE}/controls",
        json=_pages_by_query({None: load_fixture("controls_page1.json"), "2": page2}),
    )
    result = run_tap(mock_config, streams={"controls"})
    assert len(result.records()) == 3
    assert matcher.call_count == 2


def test_page_size_is_not_sent_unless_configured(requests_mock: Any, mock_config: dict) -> None:
    matcher = requests_mock.get(f"{MOCK_BASE}/people", json=load_fixture("people_page1.json"))
    run_tap(mock_config, streams={"people"})
    assert matcher.request_history[0].qs == {}


def test_page_size_parameter_name_is_configurable(requests_mock: Any, mock_config: dict) -> None:
    matcher = requests_mock.get(f"{MOCK_BASE}/people", json=load_fixture("people_page1.json"))
    run_tap({**mock_config, "page_size": 100, "page_size_parameter": "limit"}, streams={"people"})
    assert matcher.request_history[0].qs == {"limit": ["100"]}


def test_fake_api_paginates_every_stream_completely(fake_api: FakeZenGRC, fake_config: dict) -> None:
    result = run_tap(fake_config)
    for stream in REQUIRED_STREAMS | {"systems"}:
        got = sorted(r["id"] for r in result.records(stream))
        assert got == list(range(1, 26)), stream
    # 25 records at 10 per page: 3 pages per stream, each request authenticated.
    assert len(fake_api.requests) == 3 * len(STREAM_TYPES)
    assert all(r.status == 200 for r in fake_api.requests)


def test_repeated_next_link_fails_instead_of_looping(requests_mock: Any, mock_config: dict) -> None:
    page = load_fixture("controls_page1.json")
    page["links"]["next"]["href"] = "/api/v2/controls?page=2"
    requests_mock.get(f"{MOCK_BASE}/controls", json=page)
    # Page 2 repeats page 1's records, which stops the stream before they are written again (the
    # repeated link itself would only be seen after them).
    with pytest.raises(Exception, match=r"stream 'controls': page 2 has the same \d+ record\(s\) as page 1"):
        run_tap(mock_config, streams={"controls"})


@pytest.mark.parametrize(
    "given",
    [
        "https://acme.api.zengrc.com",
        "https://acme.api.zengrc.com/",
        "https://acme.api.zengrc.com/api/v2",
        "https://acme.api.zengrc.com/api/v2/",
    ],
)
def test_api_url_with_or_without_api_prefix(given: str) -> None:
    assert normalize_api_url(given) == "https://acme.api.zengrc.com/api/v2"


# -- schemas ---------------------------------------------------------------------------------


def _types(prop: dict[str, Any]) -> set[str]:
    value = prop.get("type", [])
    return {value} if isinstance(value, str) else set(value)


def test_required_streams_exist_with_key_and_replication_key() -> None:
    tap = TapZenGRC(config={"api_url": MOCK_BASE, "username": "u", "password": "p"})
    assert set(tap.streams) >= REQUIRED_STREAMS
    for stream in tap.streams.values():
        assert stream.primary_keys == ["id"]
        assert stream.replication_key == "updated_at"
        assert stream.path == f"/{stream.name}"


def _schema(name: str) -> dict[str, Any]:
    tap = TapZenGRC(config={"api_url": MOCK_BASE, "username": "u", "password": "p"})
    return tap.streams[name].schema


STREAM_NAMES = [stream_class.name for stream_class in STREAM_TYPES]


@pytest.mark.parametrize("name", STREAM_NAMES)
def test_schema_types_are_not_bare_strings(name: str) -> None:
    schema = _schema(name)
    props = schema["properties"]
    assert _types(props["id"]) == {"integer"}
    assert "id" in schema["required"]
    for field, prop in props.items():
        if field.endswith("_at"):
            assert prop.get("format") == "date-time", field
        if field.endswith("_date"):
            assert prop.get("format") == "date", field
    # Every object / person reference carries an integer id.
    for field, prop in props.items():
        items = prop.get("items", {})
        for ref in (prop, items):
            ref_props = ref.get("properties", {})
            if "id" in ref_props:
                assert _types(ref_props["id"]) <= {"integer", "null"}, field


@pytest.mark.parametrize("name", STREAM_NAMES)
def test_custom_attributes_is_one_json_object_and_mapped_members_are_arrays(name: str) -> None:
    props = _schema(name)["properties"]
    if name == "people":
        assert "custom_attributes" not in props
        return
    custom = props["custom_attributes"]
    assert _types(custom) == {"object", "null"}
    assert "properties" not in custom  # one JSON column, not one column per attribute id
    mapped = props["mapped"]
    for member in mapped["properties"].values():
        assert "array" in _types(member)
        assert _types(member["items"]["properties"]["id"]) == {"integer", "null"}
    assert mapped["additionalProperties"]["type"] == "array"


def test_custom_attributes_and_mapped_are_kept_verbatim(requests_mock: Any, mock_config: dict) -> None:
    page1 = load_fixture("controls_page1.json")
    requests_mock.get(
        f"{MOCK_BASE}/controls",
        json=_pages_by_query({None: page1, "2": load_fixture("controls_page2.json")}),
    )
    result = run_tap(mock_config, streams={"controls"})
    by_id = {r["id"]: r for r in result.records()}
    assert by_id[101]["custom_attributes"] == page1["data"][0]["custom_attributes"]
    # `programs` is not a documented member of a control's `mapped`; it is kept, not dropped.
    assert by_id[102]["mapped"] == page1["data"][1]["mapped"]


def test_sdk_flattening_keeps_custom_attributes_whole_and_mapped_as_json_arrays(
    requests_mock: Any, mock_config: dict
) -> None:
    """The SDK's own flattening JSON-encodes arrays; the values must still be the arrays."""
    requests_mock.get(f"{MOCK_BASE}/requests", json=load_fixture("requests_page1.json"))
    result = run_tap(
        {**mock_config, "flattening_enabled": True, "flattening_max_depth": 1},
        streams={"requests"},
    )
    schema = next(m["schema"] for m in result.messages if m["type"] == "SCHEMA")
    props = schema["properties"]
    assert {"mapped__controls", "mapped__issues", "mapped__programs"} <= set(props)
    assert "custom_attributes" in props
    assert not any(p.startswith("custom_attributes__") for p in props)
    record = result.records()[0]
    assert not any(k.startswith("custom_attributes__") for k in record)
    assert json.loads(record["custom_attributes"])["59"]["value"] == "Dana Silva"
    assert json.loads(record["mapped__issues"]) == []
    assert json.loads(record["mapped__controls"]) == [
        {"id": 101, "title": "Access reviews are performed quarterly", "type": "Control"}
    ]


def test_request_record_matches_vendor_shape(requests_mock: Any, mock_config: dict) -> None:
    page = load_fixture("requests_page1.json")
    requests_mock.get(f"{MOCK_BASE}/requests", json=page)
    # Opted out of the default pseudonymization: the record is compared with the vendor's page verbatim.
    result = run_tap({**mock_config, "pseudonymize": {}}, streams={"requests"})
    (record,) = result.records()
    expected = copy.deepcopy(page["data"][0])
    expected["updated_at"] = "2024-03-01T10:00:00.000000+00:00"  # canonical replication key
    assert record == expected


# -- bookmarks -------------------------------------------------------------------------------


def _control(ident: int, updated_at: str | None) -> dict[str, Any]:
    return {
        "id": ident,
        "code": f"CONTROL-{ident}",
        "title": f"Control {ident}",
        "type": "Control",
        "created_at": "2023-01-01T00:00:00Z",
        "updated_at": updated_at,
        "custom_attributes": {},
        "mapped": {"objectives": []},
    }


BOOKMARK = "2024-03-01T10:00:00.000000+00:00"


def _bookmark_state(value: str = BOOKMARK) -> dict[str, Any]:
    return {
        "bookmarks": {
            "controls": {"replication_key": "updated_at", "replication_key_value": value},
        },
    }


def test_records_at_the_bookmark_are_kept(requests_mock: Any, mock_config: dict) -> None:
    page = {
        "data": [
            _control(1, "2024-03-01T10:00:00Z"),  # equal to the bookmark: kept (>=)
            _control(2, "2024-03-01T09:59:59.999Z"),  # older: dropped
            _control(3, "2024-03-01T11:00:00+01:00"),  # the same instant in another offset: kept
            _control(4, "2024-03-01T10:00:00.500000Z"),  # newer: kept
            _control(5, None),  # no timestamp: kept rather than lost
        ],
        "links": {},
    }
    requests_mock.get(f"{MOCK_BASE}/controls", json=page)
    result = run_tap(mock_config, streams={"controls"}, state=_bookmark_state())

    assert [r["id"] for r in result.records()] == [1, 3, 4, 5]
    state = result.last_state()
    assert state is not None
    assert state["bookmarks"]["controls"]["replication_key_value"] == ("2024-03-01T10:00:00.500000+00:00")


def test_start_date_filters_the_first_sync(requests_mock: Any, mock_config: dict) -> None:
    requests_mock.get(
        f"{MOCK_BASE}/controls",
        json={"data": [_control(1, "2023-12-31T23:59:59Z"), _control(2, "2024-01-01T00:00:00Z")]},
    )
    result = run_tap({**mock_config, "start_date": "2024-01-01T00:00:00Z"}, streams={"controls"})
    assert [r["id"] for r in result.records()] == [2]


def test_bookmark_is_the_maximum_not_the_last_record(requests_mock: Any, mock_config: dict) -> None:
    requests_mock.get(
        f"{MOCK_BASE}/controls",
        json={
            "data": [
                _control(1, "2024-05-01T00:00:00Z"),
                _control(2, "2024-01-01T00:00:00Z"),
            ],
        },
    )
    result = run_tap(mock_config, streams={"controls"})
    state = result.last_state()
    assert state is not None
    assert state["bookmarks"]["controls"]["replication_key_value"] == ("2024-05-01T00:00:00.000000+00:00")


def test_second_sync_emits_only_changes_and_the_boundary(fake_api: FakeZenGRC, fake_config: dict) -> None:
    first = run_tap(fake_config, streams={"requests"})
    state = first.last_state()
    assert state is not None
    bookmark = state["bookmarks"]["requests"]["replication_key_value"]
    at_bookmark = sorted(r["id"] for r in first.records() if r["updated_at"] == bookmark)

    second = run_tap(fake_config, streams={"requests"}, state=state)
    assert sorted(r["id"] for r in second.records()) == at_bookmark


def test_interrupted_sync_resumes_without_losing_records(fake_api: FakeZenGRC, fake_config: dict) -> None:
    first = run_tap(fake_config, streams={"requests"})
    state = first.last_state()
    assert state is not None
    bookmark = state["bookmarks"]["requests"]["replication_key_value"]

    # Records change on the first and the last page after the first sync.
    rows = fake_api.data["requests"]
    rows[2]["updated_at"] = "2025-06-01T00:00:00Z"  # page 1
    rows[24]["updated_at"] = "2025-06-02T00:00:00Z"  # page 3

    # The second sync dies on page 2: server errors until the retries (max_retries=3) run out.
    failures_left = 3
    original_answer = fake_api.answer

    def answer(path: str, query: dict[str, str], authorization: str | None) -> Any:
        nonlocal failures_left
        if query.get("page") == "2" and failures_left > 0:
            failures_left -= 1
            return 500, {}, {"message": "Internal Server Error"}
        return original_answer(path, query, authorization)

    fake_api.answer = answer  # type: ignore[method-assign]
    # Every message written before the failure is kept; the state is copied so the failed run cannot change it.
    interrupted = run_tap(fake_config, streams={"requests"}, state=copy.deepcopy(state), expect_error=True)
    assert isinstance(interrupted.error, RetriesExhaustedError)

    got_before_failure = {r["id"] for r in interrupted.records()}
    assert 3 in got_before_failure  # page 1 was emitted before the failure
    # No STATE written during the failed run moved the bookmark past what was fully read.
    for value in interrupted.states():
        assert value["bookmarks"]["requests"].get("replication_key_value") == bookmark

    resumed_state = interrupted.last_state() or state
    resumed = run_tap(fake_config, streams={"requests"}, state=resumed_state)
    got_after = {r["id"] for r in resumed.records()}
    assert {3, 25} <= got_after  # the change on page 3 was not lost
    final = resumed.last_state()
    assert final is not None
    assert final["bookmarks"]["requests"]["replication_key_value"] == ("2025-06-02T00:00:00.000000+00:00")


def test_parse_datetime_accepts_vendor_variants() -> None:
    assert parse_datetime("2024-03-01T10:00:00Z") == parse_datetime("2024-03-01T10:00:00+00:00")
    assert parse_datetime("2024-03-01T10:00:00") == parse_datetime("2024-03-01T10:00:00Z")
    assert parse_datetime("not a date") is None
    assert parse_datetime(None) is None
