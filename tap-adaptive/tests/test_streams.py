"""Metadata and sheet streams against the fake: shapes, types, trees, nested elements, privacy, SCHEMA when empty."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import KEY, run_tap
from fake_api import USERS, FakeAdaptive

from harborline_singer_shared.pseudonymize import Pseudonymizer
from harborline_tap_adaptive.tap import STREAM_TYPES, TapAdaptive

KEYS = {
    "accounts": ["id"],
    "active_currencies": ["code"],
    "attributes": ["id"],
    "attribute_values": ["attribute_id", "id"],
    "configurable_model_data": ["modeled_sheet", "version_id", "row_number"],
    "customer_logo": ["url"],
    "data": ["version_id", "account_code", "level_name", "dimension_key", "period"],
    "dimension_families": ["id"],
    "dimension_mapping": ["id"],
    "dimensions": ["id"],
    "dimension_values": ["dimension_id", "id"],
    "groups": ["id"],
    "instances": ["code"],
    "levels": ["id"],
    "locales": ["code"],
    "modeled_sheets": ["name"],
    "permission_sets": ["id"],
    "roles": ["id"],
    "security_audit": ["id"],
    "sheet_definitions": ["sheet_id", "id"],
    "sheets": ["id"],
    "time_periods": ["stratum", "code"],
    "transaction_definitions": ["id"],
    "users": ["id"],
    "versions": ["id"],
}


def test_every_stream_of_the_issue_with_its_key() -> None:
    tap = TapAdaptive(config={"username": "u", "password": "p", "pseudonymize": {}})
    assert {name: list(stream.primary_keys) for name, stream in tap.streams.items()} == KEYS
    assert len(STREAM_TYPES) == len(KEYS)


def test_every_key_is_unique_and_complete(fake: FakeAdaptive, config: dict[str, Any]) -> None:
    result = run_tap({**config, "modeled_sheets": ["Personnel"], "dimensions": ["Region"]})
    for stream, keys in KEYS.items():
        rows = result.records(stream)
        assert rows, stream
        identities = [tuple(row[k] for k in keys) for row in rows]
        assert all(None not in identity for identity in identities), stream
        assert len(identities) == len(set(identities)), f"duplicate keys in {stream}"
    assert not fake.errors


def test_attributes_become_typed_snake_case_fields(fake: FakeAdaptive, config: dict[str, Any]) -> None:
    accounts = {r["code"]: r for r in run_tap(config, streams={"accounts"}).records("accounts")}
    root = accounts["Revenue Total"]
    assert root["name"] == 'Revenue, "Net" Ümsatz'
    assert root["account_type_code"] == "I"
    assert root["is_assumption"] is False
    assert root["suppress_zeroes"] is True
    assert root["decimal_precision"] == 2
    assert root["time_weight_acct_id"] is None  # an empty id is null, not 0
    assert root["short_name"] == ""
    assert root["is_group"] is None  # declared, not sent
    # An attribute the tap does not know is kept, as text; nested attributes become an array.
    assert root["extra"] == {"future_attribute": "kept in extra"}
    assert root["attributes"] == [{"attribute_id": "7", "name": "Segment", "value": "Core"}]


def test_trees_give_one_record_per_element_with_parent_id(fake: FakeAdaptive, config: dict[str, Any]) -> None:
    result = run_tap(config, streams={"accounts", "levels", "versions", "dimension_values", "attribute_values"})
    accounts = {r["code"]: r for r in result.records("accounts")}
    assert accounts["Revenue Total"]["parent_id"] is None
    assert accounts["4000"]["parent_id"] == accounts["Revenue Total"]["id"]
    assert accounts["9200"]["parent_id"] == accounts["9000"]["id"]
    levels = {r["name"]: r for r in result.records("levels")}
    assert levels['Nörth, "America"']["parent_id"] == levels["Total Company"]["id"]
    assert levels["Total Company"]["is_elimination"] is False  # "false" as well as "0"
    values = {(r["dimension_id"], r["id"]): r for r in result.records("dimension_values")}
    assert values[(1, 12)]["parent_id"] == 11
    assert values[(1, 12)]["name"] == "Brasil, São Paulo"
    assert values[(2, 11)]["parent_id"] is None  # the same id in another dimension is another value
    attribute_values = {r["id"]: r for r in result.records("attribute_values")}
    assert attribute_values[71] == {**attribute_values[71], "attribute_id": 7, "parent_id": 70, "name": "Core & More"}


def test_versions_carry_their_folder_path(fake: FakeAdaptive, config: dict[str, Any]) -> None:
    versions = {r["name"]: r for r in run_tap(config, streams={"versions"}).records("versions")}
    assert versions['Forecast & <Q1> "final"']["folder_path"] == ["Shared with Data", "Forecasts"]
    assert versions['Forecast & <Q1> "final"']["parent_id"] == 12
    assert versions["Actuals"]["folder_path"] == []
    assert versions["Empty Folder"]["type"] == "VERSION_FOLDER"
    assert versions["Working Budget"]["is_default_version"] is True


def test_dimensions_leave_their_values_to_dimension_values(fake: FakeAdaptive, config: dict[str, Any]) -> None:
    dimensions = run_tap(config, streams={"dimensions", "attributes"})
    region = next(r for r in dimensions.records("dimensions") if r["name"] == "Region")
    assert region["extra"] is None
    assert region["keep_sorted"] is True
    assert dimensions.records("attributes")[0]["extra"] is None


def test_time_periods_know_their_stratum_and_dates(fake: FakeAdaptive, config: dict[str, Any]) -> None:
    periods = {(r["stratum"], r["code"]): r for r in run_tap(config, streams={"time_periods"}).records("time_periods")}
    assert set(periods) == {("year", "2025"), ("month", "01/2025"), ("month", "02/2025"), ("month", "03/2025")}
    assert periods[("year", "2025")]["start"] == "2025-01-01"
    assert periods[("year", "2025")]["end"] == "2025-12-31"
    assert periods[("month", "02/2025")]["end"] is None


def test_users_nested_elements_and_personal_data_pseudonymized_by_default(
    fake: FakeAdaptive, config: dict[str, Any]
) -> None:
    result = run_tap(config, streams={"users", "security_audit"})
    pseudonymizer = Pseudonymizer(KEY)
    users = result.records("users")
    assert len(users) == len(USERS)
    for record, (uid, email, name, _) in zip(sorted(users, key=lambda r: r["id"]), USERS, strict=True):
        assert record["id"] == uid
        assert record["email"] == record["login"] == pseudonymizer.token(email)
        assert record["name"] == pseudonymizer.token(name)
        assert record["subscriptions"] == {"no_newsletter": "1", "no_maintenance": "0"}
        assert record["groups"] == [{"id": "5"}]
    audit = result.records("security_audit")[0]
    assert audit["login"] == pseudonymizer.token(USERS[0][1])
    assert audit["ip_address"].startswith("hl1:1:")
    assert audit["timestamp"] == "2025-03-01T08:15:00"
    for _, email, name, _ in USERS:
        assert email not in result.stdout
        assert name not in result.stdout
    assert result.schema("users")["properties"]["email"]["type"] == ["string", "null"]


def test_opting_out_of_pseudonymization_keeps_clear_values(fake: FakeAdaptive, config: dict[str, Any]) -> None:
    config = {k: v for k, v in config.items() if k != "pseudonymization_key"}
    users = run_tap({**config, "pseudonymize": {}}, streams={"users"}).records("users")
    assert {u["email"] for u in users} == {email for _, email, _, _ in USERS}


def test_every_stream_emits_its_schema_even_when_empty(fake: FakeAdaptive, config: dict[str, Any]) -> None:
    fake.versions = [v for v in fake.versions if v.name == "Shared with Data"]
    fake.versions[0].children = []  # the folder exists but holds no version
    result = run_tap(config)
    schemas = {m["stream"] for m in result.messages if m["type"] == "SCHEMA"}
    assert schemas == set(KEYS)
    for stream in ("modeled_sheets", "sheet_definitions", "configurable_model_data", "data"):
        assert result.records(stream) == []  # no sheet configured, no version in the folder
    assert "exportModeledSheet" not in fake.methods()
    assert "exportData" not in fake.methods()


def test_sheet_streams_follow_the_job_to_its_last_page(fake: FakeAdaptive, config: dict[str, Any]) -> None:
    fake.cmd_pages = 3
    result = run_tap({**config, "modeled_sheets": ["Personnel"]}, streams=set(KEYS) - {"data"})
    rows = result.records("configurable_model_data")
    assert [r["row_number"] for r in rows] == list(range(1, 10))
    assert rows[0]["values"] == {"Employee": "Person 1-0, Jr.", "Salary": "1000.50", "Level": "Europe & Asia"}
    assert {(r["version_id"], r["version_name"]) for r in rows} == {(2, "Working Budget")}
    jobs = [c.find("job") for c in fake.calls if c.method == "exportConfigurableModelData"]
    assert jobs[0] is None
    assert [(j.get("jobNumber"), j.get("pageNumber")) for j in jobs[1:]] == [("77", "2"), ("77", "3")]
    assert [r["name"] for r in result.records("modeled_sheets")] == ["Personnel"]
    assert result.records("modeled_sheets")[0]["columns"] == [{"name": "Employee", "type": "text"}, {"name": "Salary"}]
    definitions = result.records("sheet_definitions")
    assert [(d["sheet_id"], d["id"], d["is_required"]) for d in definitions] == [(5, 1, True), (5, 2, False)]


@pytest.mark.parametrize("version", [39, 40])
def test_calls_go_to_the_configured_api_version(fake: FakeAdaptive, config: dict[str, Any], version: int) -> None:
    run_tap({**config, "api_version": version}, streams={"locales"})
    assert {c.api_version for c in fake.calls} == {f"v{version}"}
    assert fake.calls[0].root.get("callerName") == "harborline-tap-adaptive"


def test_activate_version_for_metadata_streams_only_when_asked(fake: FakeAdaptive, config: dict[str, Any]) -> None:
    streams = {"accounts", "versions", "data"}
    assert not [m for m in run_tap(config, streams=streams).messages if m["type"] == "ACTIVATE_VERSION"]
    result = run_tap({**config, "emit_activate_version_messages": True}, streams=streams)
    activated = [m for m in result.messages if m["type"] == "ACTIVATE_VERSION"]
    assert {m["stream"] for m in activated} == {"accounts", "versions"}  # data exports new versions only
    version = next(m["version"] for m in activated if m["stream"] == "accounts")
    assert {m.get("version") for m in result.messages if m["type"] == "RECORD" and m["stream"] == "accounts"} == {
        version
    }
