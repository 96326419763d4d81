"""The data stream: which versions, what is asked, what may leave (MNPI), exact amounts, state, faults."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from conftest import ACCOUNT_CODES, run_tap
from fake_api import BIG, INTERNAL_ENTITY, MNPI, XML_BOMB, FakeAdaptive, Fault, Version
from singer_sdk.exceptions import ConfigValidationError

from harborline_singer_shared.plugin import STREAM_ATTR
from harborline_singer_shared.retry import ManualClock
from harborline_tap_adaptive.data import MissingAllowListError, NonNumericCellError
from harborline_tap_adaptive.tap import STREAM_TYPES
from harborline_tap_adaptive.xmlapi import AdaptiveAuthenticationError, AdaptiveCallError, UnsafeXMLError

IN_FOLDER = ["FY25 Budget", 'Forecast & <Q1> "final"']
DATA = {"versions", "data"}


def _key(record: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(record[k] for k in ("version_id", "account_code", "level_name", "dimension_key", "period"))


def test_versions_below_the_folder_at_any_depth_plus_named_ones(fake: FakeAdaptive, config: dict[str, Any]) -> None:
    result = run_tap({**config, "version_names": ["Actuals"]}, streams=DATA)
    # Not the decoy "Shared with Data (old)", not the folders, not other versions; the deep one is found.
    assert sorted(fake.data_calls()) == sorted(["Actuals", *IN_FOLDER])
    assert {(r["version_id"], r["version_name"]) for r in result.records("data")} == {
        (1, "Actuals"),
        (11, "FY25 Budget"),
        (13, 'Forecast & <Q1> "final"'),
    }
    assert not fake.errors


def test_the_request_asks_for_the_allow_list_only(fake: FakeAdaptive, config: dict[str, Any]) -> None:
    settings = {
        "levels": ["Total Company"],
        "include_rollup_levels": True,
        "dimensions": ["Region"],
        "time_span_start": "01/2025",
        "time_span_end": "03/2025",
    }
    run_tap({**config, **settings}, streams=DATA)
    call = next(c for c in fake.calls if c.method == "exportData")
    assert call.find("version").attrib == {"name": "FY25 Budget", "isDefault": "false"}
    assert call.find("format").attrib == {"useInternalCodes": "true", "includeCodes": "true", "includeNames": "true"}
    accounts = [a.attrib for a in call.root.iterfind("filters/accounts/account")]
    assert accounts == [{"code": c, "isAssumption": "false", "includeDescendants": "false"} for c in ACCOUNT_CODES]
    assert [lv.attrib for lv in call.root.iterfind("filters/levels/level")] == [
        {"name": "Total Company", "isRollup": "false", "includeDescendants": "true"}
    ]
    assert call.find("filters/timeSpan").attrib == {"start": "01/2025", "end": "03/2025"}
    assert [d.get("name") for d in call.root.iterfind("dimensions/dimension")] == ["Region"]
    assert call.find("rules").attrib == {
        "includeZeroRows": "false",
        "includeRollupAccounts": "true",
        "includeRollupLevels": "true",
        "markInvalidValues": "false",
        "markBlanks": "false",
        "timeRollups": "false",
    }


def test_mnpi_rows_never_leave_even_when_the_server_sends_them(fake: FakeAdaptive, config: dict[str, Any]) -> None:
    result = run_tap(config, streams=DATA)
    rows = result.records("data")
    assert {r["account_code"] for r in rows} == set(ACCOUNT_CODES)
    for code in MNPI:
        assert f'"{code}"' not in result.stdout
    for secret_name in ("Board Forecast", "M&A Pipeline", "Bookings (MNPI)"):
        assert secret_name not in result.stdout


def test_one_record_per_non_empty_cell_with_exact_amounts(fake: FakeAdaptive, config: dict[str, Any]) -> None:
    result = run_tap(config, streams=DATA)
    rows = [r for r in result.records("data") if r["version_name"] == "FY25 Budget"]
    # 3 accounts x 2 levels x 3 months, minus the empty March cells of account 5000.
    assert len(rows) == 3 * 2 * 3 - 2
    assert len({_key(r) for r in rows}) == len(rows)
    product = next(
        r
        for r in rows
        if r["account_code"] == "4000" and r["level_name"] == 'Nörth, "America"' and r["period"] == "03/2025"
    )
    assert product["account_name"] == "Product Revenue, Zürich"
    assert product["period_start"] == "2025-03-01"
    assert product["dimensions"] == {}
    assert product["dimension_key"] == ""
    # Exact: the JSON text carries every digit, as a number (never a string, never through float).
    lines = [line for line in result.stdout.splitlines() if '"stream":"data"' in line and '"period":"03/2025"' in line]
    assert any(f'"amount":{BIG}' in line for line in lines)


def test_dimension_columns_and_the_dimension_key(fake: FakeAdaptive, config: dict[str, Any]) -> None:
    rows = run_tap({**config, "dimensions": ["Region"]}, streams=DATA).records("data")
    keys = {r["dimension_key"] for r in rows}
    assert keys == {"Region=Americas", 'Region=EMEA "East"'}
    assert {json.dumps(r["dimensions"], ensure_ascii=False) for r in rows} == {
        '{"Region": "Americas"}',
        '{"Region": "EMEA \\"East\\""}',
    }


def test_a_version_added_between_runs_is_the_only_one_the_next_run_exports(
    fake: FakeAdaptive, config: dict[str, Any]
) -> None:
    first = run_tap(config, streams=DATA)
    state = first.states()[-1]
    exported = state["bookmarks"]["data"]["exported_versions"]
    assert [(e["id"], e["name"]) for e in exported] == [(11, "FY25 Budget"), (13, 'Forecast & <Q1> "final"')]
    assert all(e["exported_at"] for e in exported)

    fake.versions[2].children[1].children.append(Version(15, "Q2 Forecast"))
    fake.calls.clear()
    second = run_tap(config, streams=DATA, state=state)
    assert fake.data_calls() == ["Q2 Forecast"]
    assert {r["version_id"] for r in second.records("data")} == {15}
    assert [e["id"] for e in second.states()[-1]["bookmarks"]["data"]["exported_versions"]] == [11, 13, 15]

    fake.calls.clear()
    third = run_tap({**config, "reexport_versions": ["FY25 Budget"]}, streams=DATA, state=second.states()[-1])
    assert fake.data_calls() == ["FY25 Budget"]
    assert {r["version_id"] for r in third.records("data")} == {11}


def test_state_is_written_after_each_version_once_its_rows_are_out(fake: FakeAdaptive, config: dict[str, Any]) -> None:
    result = run_tap(config, streams=DATA)
    seen: list[int] = []
    for message in result.messages:
        if message["type"] == "RECORD" and message["stream"] == "data":
            version = message["record"]["version_id"]
            assert version not in seen  # no row of a version after the state that says it was exported
        if message["type"] == "STATE":
            exported = message["value"]["bookmarks"].get("data", {}).get("exported_versions", [])
            seen = [e["id"] for e in exported]
    first_records = [i for i, m in enumerate(result.messages) if m["type"] == "RECORD" and m["stream"] == "data"]
    states_with_11 = [
        i
        for i, m in enumerate(result.messages)
        if m["type"] == "STATE" and m["value"]["bookmarks"].get("data", {}).get("exported_versions")
    ]
    second_version_start = next(i for i in first_records if result.messages[i]["record"]["version_id"] == 13)
    assert any(i < second_version_start for i in states_with_11)


def test_a_missing_version_folder_is_an_error_naming_it_before_any_export(
    fake: FakeAdaptive, config: dict[str, Any]
) -> None:
    result = run_tap({**config, "version_folder": "Shared with date"}, streams=DATA, expect_error=True)
    assert isinstance(result.error, ConfigValidationError)
    assert "Setting 'version_folder': no version folder is named exactly 'Shared with date'" in str(result.error)
    assert "did you mean 'Shared with Data'?" in str(result.error)
    assert "exportData" not in fake.methods()
    assert result.records("versions") == []


def test_an_unknown_version_name_is_an_error(fake: FakeAdaptive, config: dict[str, Any]) -> None:
    result = run_tap({**config, "version_names": ["Nope"]}, streams=DATA, expect_error=True)
    assert "Setting 'version_names': no version is named 'Nope'" in str(result.error)
    assert "exportData" not in fake.methods()


@pytest.mark.parametrize("codes", [None, []])
def test_without_the_allow_list_nothing_is_called(fake: FakeAdaptive, config: dict[str, Any], codes: Any) -> None:
    config = {k: v for k, v in config.items() if k != "account_codes"}
    if codes is not None:
        config["account_codes"] = codes
    result = run_tap(config, expect_error=True)
    assert isinstance(result.error, MissingAllowListError)
    assert "Setting 'account_codes' is empty" in str(result.error)
    assert getattr(result.error, STREAM_ATTR) == "data"
    assert fake.calls == []
    # Without data selected, the allow-list is not needed.
    run_tap(config, streams={"versions", "accounts"})


def test_a_non_numeric_cell_stops_the_run_naming_version_account_and_period(
    fake: FakeAdaptive, config: dict[str, Any]
) -> None:
    fake.cells["FY25 Budget"] = {("4000", "Europe & Asia"): {"02/2025": "#REF!"}}
    result = run_tap(config, streams=DATA, expect_error=True)
    assert isinstance(result.error, NonNumericCellError)
    assert str(result.error) == (
        "exportData: version 'FY25 Budget', account '4000', period '02/2025': the cell is not a number"
    )
    assert getattr(result.error, STREAM_ATTR) == "data"
    assert "exported_versions" not in json.dumps(result.states())


def test_429_with_retry_after_and_503_mid_run_are_retried_and_nothing_is_lost(
    fake: FakeAdaptive, config: dict[str, Any]
) -> None:
    clean = run_tap(config, streams=DATA | {"accounts"})
    fake.calls.clear()
    fake.inject(Fault("exportData", status=429, headers={"Retry-After": "7"}))
    fake.inject(Fault("exportAccounts", status=503))
    clock = ManualClock()
    retried = run_tap(config, streams=DATA | {"accounts"}, clock=clock)
    assert 7.0 in clock.sleeps
    assert sorted(map(_key, retried.records("data"))) == sorted(map(_key, clean.records("data")))
    assert len(retried.records("accounts")) == len(clean.records("accounts"))
    assert fake.methods().count("exportData") == 3  # one retried
    assert fake.methods().count("exportAccounts") == 2


def test_a_connection_dropped_mid_answer_is_called_again(fake: FakeAdaptive, config: dict[str, Any]) -> None:
    clean = run_tap(config, streams=DATA)
    fake.calls.clear()
    fake.inject(Fault("exportData", drop_after=400))
    retried = run_tap(config, streams=DATA)
    assert fake.data_calls() == ["FY25 Budget", "FY25 Budget", 'Forecast & <Q1> "final"']
    assert set(map(_key, retried.records("data"))) == set(map(_key, clean.records("data")))


METHODS = sorted({(s.name, getattr(s, "method", "exportData")) for s in STREAM_TYPES if s.name != "data"})


@pytest.mark.parametrize(("stream", "method"), [*METHODS, ("data", "exportData")])
def test_success_false_on_any_method_is_one_error_naming_stream_method_and_messages(
    fake: FakeAdaptive, config: dict[str, Any], stream: str, method: str
) -> None:
    fake.inject(Fault(method, messages=[("error-x", "Something & else"), ("warn-y", "Second")], times=99))
    selected = {stream, "versions"} if stream == "data" else {stream}
    result = run_tap({**config, "modeled_sheets": ["Personnel"]}, streams=selected, expect_error=True)
    assert isinstance(result.error, AdaptiveCallError)
    assert str(result.error) == (
        f'{method} failed: Adaptive answered success="false": [error-x] Something & else; [warn-y] Second'
    )
    assert getattr(result.error, STREAM_ATTR) == stream
    assert fake.methods().count(method) == 1  # never retried


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"password": "wrong"}, "error-authentication-failure"),
        ({"instance_code": "NOPE"}, "error-invalid-instance-code"),
    ],
)
def test_refused_credentials_are_not_retried(
    fake: FakeAdaptive, config: dict[str, Any], change: dict[str, str], key: str
) -> None:
    result = run_tap({**config, **change}, streams={"accounts"}, expect_error=True)
    assert isinstance(result.error, AdaptiveAuthenticationError)
    assert f"[{key}]" in str(result.error)
    assert "`username`, `password` and `instance_code`" in str(result.error)
    assert len(fake.calls) == 1


def test_a_known_instance_code_is_sent(fake: FakeAdaptive, config: dict[str, Any]) -> None:
    run_tap({**config, "instance_code": "ACME2"}, streams={"locales"})
    assert fake.calls[0].find("credentials").get("instanceCode") == "ACME2"


@pytest.mark.parametrize("body", [XML_BOMB, INTERNAL_ENTITY], ids=["bomb", "internal-entity"])
@pytest.mark.parametrize(("stream", "method"), [("accounts", "exportAccounts"), ("data", "exportData")])
def test_dtds_are_refused_with_one_error_naming_the_method(
    fake: FakeAdaptive, config: dict[str, Any], body: bytes, stream: str, method: str
) -> None:
    fake.inject(Fault(method, body=body, times=99))
    result = run_tap(config, streams={stream, "versions"}, expect_error=True)
    assert isinstance(result.error, UnsafeXMLError)
    assert str(result.error).startswith(f"{method}: the response declares a DTD or an entity")
    assert getattr(result.error, STREAM_ATTR) == stream
    assert "lol" not in result.stdout
    assert "Acme" not in result.stdout


def test_an_answer_that_stalls_is_cut_off_by_request_timeout_and_called_again(
    fake: FakeAdaptive, config: dict[str, Any]
) -> None:
    release = threading.Event()
    fake.inject(Fault("exportData", hold=release))
    try:
        result = run_tap({**config, "request_timeout": 1}, streams=DATA)
    finally:
        release.set()
    assert fake.data_calls() == ["FY25 Budget", "FY25 Budget", 'Forecast & <Q1> "final"']
    assert len(result.records("data")) > 2 * 16  # the first half of FY25 Budget came twice (keyed: upserted)
    assert len({_key(r) for r in result.records("data")}) == 2 * 16


def test_data_alone_selected_still_reads_versions_without_emitting_them(
    fake: FakeAdaptive, config: dict[str, Any]
) -> None:
    result = run_tap(config, streams={"data"})
    assert len(result.records("data")) == 2 * 16
    assert result.records("versions") == []
    assert {m["stream"] for m in result.messages if m["type"] == "SCHEMA"} == {"data"}
