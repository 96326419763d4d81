"""Settings: credentials from the environment, validation, and pseudonymized output."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest
from fake_api import DEFAULT_PASSWORD, DEFAULT_USERNAME, FakeZenGRC
from singer_sdk.exceptions import ConfigValidationError
from tap_helpers import MOCK_BASE, load_fixture, run_tap

from harborline_tap_zengrc.streams import PERSONAL_DATA_FIELDS
from harborline_tap_zengrc.tap import TapZenGRC

TOKEN = re.compile(r"^hl1:1:[A-Za-z0-9_-]{43}$")
KEY = "a-test-pseudonymization-key-0123456789"


def _auth_header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_credentials_from_zengrc_env_vars(requests_mock: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZENGRC_USERNAME", "env-key-id")
    monkeypatch.setenv("ZENGRC_PASSWORD", "env-key-secret")
    matcher = requests_mock.get(f"{MOCK_BASE}/people", json=load_fixture("people_page1.json"))
    result = run_tap({"api_url": MOCK_BASE}, streams={"people"})
    assert len(result.records()) == 2
    assert result.tap is not None
    assert result.tap.config["username"] == "env-key-id"
    assert matcher.request_history[0].headers["Authorization"] == _auth_header("env-key-id", "env-key-secret")


def test_sdk_env_names_win_over_zengrc_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZENGRC_USERNAME", "zengrc-id")
    monkeypatch.setenv("ZENGRC_PASSWORD", "zengrc-secret")
    monkeypatch.setenv("TAP_ZENGRC_USERNAME", "tap-id")
    monkeypatch.setenv("TAP_ZENGRC_PASSWORD", "tap-secret")
    tap = TapZenGRC(config={"api_url": MOCK_BASE})
    assert (tap.config["username"], tap.config["password"]) == ("tap-id", "tap-secret")


def test_config_file_wins_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZENGRC_USERNAME", "zengrc-id")
    monkeypatch.setenv("ZENGRC_PASSWORD", "zengrc-secret")
    tap = TapZenGRC(config={"api_url": MOCK_BASE, "username": "file-id", "password": "file-secret"})
    assert (tap.config["username"], tap.config["password"]) == ("file-id", "file-secret")


def test_sdk_parse_env_config_reads_every_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAP_ZENGRC_API_URL", MOCK_BASE)
    monkeypatch.setenv("TAP_ZENGRC_USERNAME", "tap-id")
    monkeypatch.setenv("TAP_ZENGRC_PASSWORD", "tap-secret")
    tap = TapZenGRC(config={}, parse_env_config=True)
    assert tap.config["api_url"] == MOCK_BASE
    assert tap.config["password"] == "tap-secret"


def test_missing_credentials_fail_validation_naming_them() -> None:
    with pytest.raises(ConfigValidationError) as caught:
        TapZenGRC(config={"api_url": MOCK_BASE})
    text = " ".join(caught.value.errors)
    assert "username" in text
    assert "password" in text


def test_api_url_must_be_http() -> None:
    with pytest.raises(ConfigValidationError):
        TapZenGRC(config={"api_url": "acme.api.zengrc.com", "username": "u", "password": "p"})


def test_credentials_are_marked_secret() -> None:
    props = TapZenGRC.config_jsonschema["properties"]
    for name in ("username", "password", "pseudonymization_key"):
        assert props[name].get("secret") is True
        assert props[name].get("writeOnly") is True


# -- pseudonymization ------------------------------------------------------------------------


PSEUDONYMIZE = PERSONAL_DATA_FIELDS


def _person_name_paths(schema: dict[str, Any], prefix: str = "") -> set[str]:
    """Paths of every person reference's ``name`` (objects with id, name and type)."""
    found: set[str] = set()
    for field, prop in schema.get("properties", {}).items():
        node = prop.get("items", prop)
        sub = node.get("properties", {})
        if {"id", "name", "type"} <= set(sub):
            found.add(f"{prefix}{field}.name")
        elif sub:
            found |= _person_name_paths(node, f"{prefix}{field}.")
    return found


def test_personal_data_fields_cover_every_person_reference() -> None:
    tap = TapZenGRC(config={"api_url": MOCK_BASE, "username": "u", "password": "p"})
    for name, stream in tap.streams.items():
        expected = _person_name_paths(stream.schema)
        if name == "people":
            expected = {"name", "email"}
        assert expected == set(PERSONAL_DATA_FIELDS.get(name, [])), name


def test_people_and_owners_are_pseudonymized(fake_api: FakeZenGRC, fake_config: dict) -> None:
    config = {**fake_config, "pseudonymize": PSEUDONYMIZE, "pseudonymization_key": KEY}
    result = run_tap(config)

    people = result.records("people")
    assert people
    for person in people:
        assert TOKEN.match(person["email"])
        assert TOKEN.match(person["name"])
        assert "@" not in person["email"]
    # The same person gets the same token everywhere, so joins still work.
    token_by_id = {p["id"]: p["name"] for p in people}
    assignees = [a for r in result.records("requests") for a in r["assignees"]]
    assert assignees
    for assignee in assignees:
        assert assignee["name"] == token_by_id[assignee["id"]]
    for program in result.records("programs"):
        assert TOKEN.match(program["primary_contact"]["name"])
        assert program["primary_contact"]["id"] in token_by_id  # ids stay usable

    clear_names = {f"{r['name']}" for r in fake_api.data["people"]}
    output = "\n".join(str(m) for m in result.messages)
    for name in clear_names:
        assert name not in output
    for person in fake_api.data["people"]:
        assert person["email"] not in output

    schema = result.schema("people")
    assert schema["properties"]["email"]["type"] == ["string", "null"]


def test_pseudonymization_key_from_environment(
    fake_api: FakeZenGRC, fake_config: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARBORLINE_PSEUDONYMIZATION_KEY", KEY)
    result = run_tap({**fake_config, "pseudonymize": {"people": ["email"]}}, streams={"people"})
    assert all(TOKEN.match(p["email"]) for p in result.records("people"))


def test_pseudonymize_without_a_key_fails_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HARBORLINE_PSEUDONYMIZATION_KEY")
    with pytest.raises(ConfigValidationError, match="pseudonymization_key"):
        TapZenGRC(
            config={
                "api_url": MOCK_BASE,
                "username": DEFAULT_USERNAME,
                "password": DEFAULT_PASSWORD,
                "pseudonymize": {"people": ["email"]},
            },
        )


def test_pseudonymize_typo_fails_at_start() -> None:
    with pytest.raises(ConfigValidationError, match="emial"):
        _ = (
            TapZenGRC(
                config={
                    "api_url": MOCK_BASE,
                    "username": "u",
                    "password": "p",
                    "pseudonymize": {"people": ["emial"]},
                    "pseudonymization_key": KEY,
                },
            )
            .streams["people"]
            .schema
        )  # the schema property validates the paths
