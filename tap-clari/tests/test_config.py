"""Settings: bad values stop the tap at start-up naming the setting; personal data is pseudonymized by default."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import KEY, run_tap
from fake_api import DEFAULT_API_KEY, FakeClari
from singer_sdk.exceptions import ConfigValidationError

from harborline_singer_shared.testing.taps import run_plugin_cli
from harborline_tap_clari.streams import PERSONAL_DATA_FIELDS, STREAM_NAMES
from harborline_tap_clari.tap import TapClari

TOKEN = re.compile(r"^hl1:1:[A-Za-z0-9_-]{43}$")
BASE = {"api_key": DEFAULT_API_KEY, "forecast_ids": ["net_bookings"], "pseudonymize": {}}

BAD_SETTINGS = [
    ("time_periods", {"time_periods": ["2025Q1"]}),
    ("time_periods", {"time_periods": ["2025_Q5"]}),
    ("time_periods", {"time_periods": ["2025_Q1", "last quarter"]}),
    ("fiscal_year_start_month", {"fiscal_year_start_month": 0}),
    ("fiscal_year_start_month", {"fiscal_year_start_month": 13}),
    ("fiscal_year_named_by", {"fiscal_year_named_by": "middle"}),
    ("quarters_back", {"quarters_back": -1}),
    ("forecast_ids", {"forecast_ids": []}),
    ("forecast_ids", {"forecast_ids": None}),
    ("forecast_ids", {"forecast_ids": [""]}),
    ("poll_interval_seconds", {"poll_interval_seconds": -1}),
    ("max_wait_seconds", {"max_wait_seconds": -5}),
]


def _cli(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_plugin_cli(
        "harborline_tap_clari", args, clear_prefixes=("TAP_CLARI_", "HARBORLINE_"), env=env, timeout=120
    )


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "ERROR" in line or "Traceback" in line]


@pytest.mark.parametrize(("setting", "change"), BAD_SETTINGS)
def test_each_bad_setting_stops_the_tap_naming_it(setting: str, change: dict[str, Any]) -> None:
    config = {**BASE, **change}
    if config.get("forecast_ids") is None:
        del config["forecast_ids"]
    with pytest.raises(ConfigValidationError) as caught:
        TapClari(config=config)
    assert f"`{setting}`" in str(caught.value)


def test_no_forecast_ids_at_all() -> None:
    with pytest.raises(ConfigValidationError, match="`forecast_ids` is required"):
        TapClari(config={"api_key": DEFAULT_API_KEY, "pseudonymize": {}})


@pytest.mark.parametrize(("setting", "change"), BAD_SETTINGS[::3])
def test_bad_settings_from_the_cli_are_one_line_before_any_request(
    tmp_path: Path, setting: str, change: dict[str, Any]
) -> None:
    with FakeClari() as fake:
        config = {**BASE, "api_url": fake.url, **change}
        path = tmp_path / "config.json"
        path.write_text(json.dumps({k: v for k, v in config.items() if v is not None}))
        result = _cli(["--config", str(path)])
        assert fake.requests == []
    assert result.returncode == 1
    errors = _error_lines(result.stderr)
    assert len(errors) == 1, result.stderr
    assert f"`{setting}`" in errors[0]
    assert result.stdout == ""


def test_valid_settings_pass() -> None:
    tap = TapClari(
        config={
            **BASE,
            "time_periods": ["2025_Q1", "2024_Q4"],
            "fiscal_year_start_month": 12,
            "fiscal_year_named_by": "start",
            "quarters_back": 0,
            "poll_interval_seconds": 0.5,
        }
    )
    assert [str(k) for k in tap.export_keys()] == [
        "forecast 'net_bookings', period '2025_Q1'",
        "forecast 'net_bookings', period '2024_Q4'",
    ]


def test_fiscal_settings_choose_the_periods(fake: FakeClari, config: dict) -> None:
    config = {**config, "forecast_ids": ["net_bookings"], "fiscal_year_start_month": 2, "quarters_back": 0}
    from datetime import date  # noqa: PLC0415

    run_tap(config, today=date(2025, 1, 15))
    run_tap(config, today=date(2025, 2, 1))
    assert [p.json()["timePeriod"] for p in fake.calls("POST")] == ["2025_Q4", "2026_Q1"]


# -- personal data ---------------------------------------------------------------------------------------------


def test_users_email_and_name_are_pseudonymized_by_default(fake: FakeClari, config: dict) -> None:
    assert "pseudonymize" not in config
    result = run_tap({**config, "forecast_ids": ["net_bookings"], "time_periods": ["2025_Q1"]})
    users = result.records("users")
    assert users
    for user in users:
        assert TOKEN.match(user["email"])
        assert TOKEN.match(user["name"])
        assert user["user_id"].startswith("u")  # ids stay usable for joins
    clear = fake.document("net_bookings", "2025_Q1")["users"]
    for person in clear:
        assert person["email"] not in result.stdout
        assert person["name"] not in result.stdout
    assert result.schema("users")["properties"]["email"]["type"] == ["string", "null"]


def test_the_same_person_gets_the_same_token_with_the_same_key(fake: FakeClari, config: dict) -> None:
    one = run_tap({**config, "forecast_ids": ["net_bookings"], "time_periods": ["2025_Q1"]})
    two = run_tap({**config, "forecast_ids": ["net_bookings"], "time_periods": ["2025_Q1"]})
    assert one.records("users") == two.records("users")


def test_pseudonymize_empty_opts_out(fake: FakeClari, config: dict) -> None:
    result = run_tap({**config, "pseudonymize": {}, "forecast_ids": ["net_bookings"], "time_periods": ["2025_Q1"]})
    emails = {u["email"] for u in result.records("users")}
    assert emails == {p["email"] for p in fake.document("net_bookings", "2025_Q1")["users"]}


def test_an_explicit_pseudonymize_replaces_the_default(fake: FakeClari, config: dict) -> None:
    result = run_tap(
        {**config, "pseudonymize": {"users": ["email"]}, "forecast_ids": ["net_bookings"], "time_periods": ["2025_Q1"]}
    )
    user = result.records("users")[0]
    assert TOKEN.match(user["email"])
    assert not TOKEN.match(user["name"])


def test_the_key_may_come_from_the_environment(fake: FakeClari, config: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARBORLINE_PSEUDONYMIZATION_KEY", KEY)
    config = {k: v for k, v in config.items() if k != "pseudonymization_key"}
    result = run_tap({**config, "forecast_ids": ["net_bookings"], "time_periods": ["2025_Q1"]})
    assert all(TOKEN.match(u["email"]) for u in result.records("users"))


def test_no_key_stops_the_tap_at_start_naming_both_ways_out() -> None:
    with pytest.raises(ConfigValidationError) as caught:
        TapClari(config={"api_key": DEFAULT_API_KEY, "forecast_ids": ["net_bookings"]})
    message = str(caught.value)
    assert "'pseudonymization_key'" in message
    assert "HARBORLINE_PSEUDONYMIZATION_KEY" in message
    assert "`pseudonymize: {}`" in message


def test_no_key_from_the_cli_is_one_line_and_no_request(tmp_path: Path) -> None:
    with FakeClari() as fake:
        path = tmp_path / "config.json"
        path.write_text(json.dumps({"api_url": fake.url, "api_key": DEFAULT_API_KEY, "forecast_ids": ["net_bookings"]}))
        result = _cli(["--config", str(path)])
        assert fake.requests == []
    assert result.returncode == 1
    (line,) = _error_lines(result.stderr)
    assert "pseudonymization_key" in line
    assert "pseudonymize: {}" in line


def test_a_pseudonymize_entry_for_an_unknown_stream_fails_at_start() -> None:
    with pytest.raises(ConfigValidationError, match=r"'user'.*did you mean 'users'"):
        TapClari(config={**BASE, "pseudonymize": {"user": ["email"]}, "pseudonymization_key": KEY})


def test_a_pseudonymize_entry_for_an_unknown_field_fails_at_start() -> None:
    with pytest.raises(ConfigValidationError, match="emial"):
        TapClari(config={**BASE, "pseudonymize": {"users": ["emial"]}, "pseudonymization_key": KEY})


def test_personal_data_fields_are_users_email_and_name() -> None:
    assert PERSONAL_DATA_FIELDS == {"users": ["email", "name"]}


def test_stream_names_match_the_streams() -> None:
    tap = TapClari(config={**BASE})
    assert set(STREAM_NAMES) == set(tap.streams)
    assert next(iter(tap.streams)) == "forecast_entries"  # it runs the exports the other streams reuse


def test_numbers_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAP_CLARI_API_KEY", DEFAULT_API_KEY)
    monkeypatch.setenv("TAP_CLARI_FORECAST_IDS", '["net_bookings", "renewals"]')
    monkeypatch.setenv("TAP_CLARI_POLL_INTERVAL_SECONDS", "0.5")
    monkeypatch.setenv("TAP_CLARI_MAX_WAIT_SECONDS", "90")
    monkeypatch.setenv("TAP_CLARI_QUARTERS_BACK", "2")
    monkeypatch.setenv("TAP_CLARI_FISCAL_YEAR_START_MONTH", "11")
    tap = TapClari(config={"pseudonymize": {}}, parse_env_config=True)
    settings = tap.export_settings()
    assert (settings.poll_interval_seconds, settings.max_wait_seconds) == (0.5, 90.0)
    assert tap.config["forecast_ids"] == ["net_bookings", "renewals"]
    assert tap.config["quarters_back"] == 2
    assert tap.config["fiscal_year_start_month"] == 11
