"""The shared tap test helpers catch what they exist to catch: a failing sync, a drifted README, a wrong meltano.yml."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from singer_sdk import Stream, Tap
from singer_sdk import typing as th

from harborline_singer_shared.retry import SYSTEM_CLOCK, ManualClock
from harborline_singer_shared.testing.taps import (
    SETTINGS_END,
    SETTINGS_START,
    about_settings_table,
    assert_meltano_yml_declares_settings,
    assert_readme_settings_match_about,
    assert_root_meltano_yml_matches,
    clear_developer_env,
    run_tap,
)

PERSONAL = {"numbers": ["owner"]}


class _Numbers(Stream):
    name = "numbers"
    primary_keys = ("n",)
    replication_key = "n"
    schema = th.PropertiesList(th.Property("n", th.IntegerType), th.Property("owner", th.StringType)).to_dict()
    clock: Any = SYSTEM_CLOCK

    def get_records(self, context: Any) -> Any:
        if self.config.get("fail"):
            raise RuntimeError("the API is down")
        yield from ({"n": n, "owner": "ana"} for n in range(1, 4))


class _Letters(Stream):
    name = "letters"
    primary_keys = ("c",)
    schema = th.PropertiesList(th.Property("c", th.StringType)).to_dict()
    clock: Any = SYSTEM_CLOCK

    def get_records(self, context: Any) -> Any:
        yield {"c": "a"}


class _TapNumbers(Tap):
    name = "tap-numbers"
    config_jsonschema = th.PropertiesList(
        th.Property("api_key", th.StringType, secret=True, description="The key."),
        th.Property("fail", th.BooleanType, description="Fail the sync."),
    ).to_dict()

    def discover_streams(self) -> list[Stream]:
        return [_Numbers(self), _Letters(self)]


def test_run_tap_captures_messages_of_the_selected_streams_with_a_manual_clock() -> None:
    seen: list[Tap] = []
    result = run_tap(_TapNumbers, {}, streams={"numbers"}, prepare=seen.append)
    assert seen == [result.tap]
    assert [r["n"] for r in result.records("numbers")] == [1, 2, 3]
    assert result.records("letters") == []
    assert result.records() == result.records("numbers")
    assert result.schema("numbers")["properties"]["n"]
    assert result.bookmark("numbers") == 3
    assert result.last_state() == result.states()[-1]
    assert result.tap is not None
    assert isinstance(result.tap.streams["numbers"].clock, ManualClock)


def test_run_tap_keeps_the_streams_clock_or_sets_the_given_one() -> None:
    kept = run_tap(_TapNumbers, {}, manual_clock=False)
    assert kept.tap is not None
    assert kept.tap.streams["numbers"].clock is SYSTEM_CLOCK
    clock = ManualClock()
    given = run_tap(_TapNumbers, {}, clock=clock, manual_clock=False)
    assert given.tap is not None
    assert given.tap.streams["letters"].clock is clock


def test_run_tap_raises_returns_or_demands_the_failure() -> None:
    with pytest.raises(RuntimeError, match="the API is down"):
        run_tap(_TapNumbers, {"fail": True})
    result = run_tap(_TapNumbers, {"fail": True}, expect_error=True)
    assert isinstance(result.error, RuntimeError)
    assert result.records("numbers") == []
    with pytest.raises(pytest.fail.Exception, match="expected to fail but succeeded"):
        run_tap(_TapNumbers, {}, expect_error=True)


def test_clear_developer_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAP_NUMBERS_API_KEY", "real")
    monkeypatch.setenv("HARBORLINE_PSEUDONYMIZATION_KEY", "real")
    monkeypatch.setenv("TAP_OTHER_API_KEY", "kept")
    clear_developer_env(monkeypatch, "TAP_NUMBERS_")
    assert "TAP_NUMBERS_API_KEY" not in os.environ
    assert "HARBORLINE_PSEUDONYMIZATION_KEY" not in os.environ
    assert os.environ["TAP_OTHER_API_KEY"] == "kept"


def _extractor() -> dict[str, Any]:
    return {
        "name": "tap-numbers",
        "namespace": "tap_numbers",
        "pip_url": "harborline-tap-numbers",
        "capabilities": [str(c) for c in _TapNumbers.capabilities],
        "settings": [
            {"name": "api_key", "kind": "password", "description": "The key.", "sensitive": True},
            {"name": "fail", "kind": "boolean", "description": "Fail the sync."},
        ],
        "config": {"pseudonymize": PERSONAL},
    }


def _package(tmp_path: Path, extractor: dict[str, Any], table: str | None = None) -> Path:
    package = tmp_path / "tap-numbers"
    package.mkdir()
    table = about_settings_table(_TapNumbers) if table is None else table
    (package / "README.md").write_text(f"# tap-numbers\n\n{SETTINGS_START}\n{table}\n{SETTINGS_END}\n")
    (package / "meltano.yml").write_text(yaml.safe_dump({"plugins": {"extractors": [extractor]}}))
    root = {**extractor, "pip_url": "${MELTANO_PROJECT_ROOT}/shared ${MELTANO_PROJECT_ROOT}/tap-numbers"}
    (tmp_path / "meltano.yml").write_text(yaml.safe_dump({"plugins": {"extractors": [root]}}))
    return package


def test_docs_checks_pass_on_a_package_in_step(tmp_path: Path) -> None:
    package = _package(tmp_path, _extractor())
    assert_readme_settings_match_about(package, _TapNumbers)
    extractor = assert_meltano_yml_declares_settings(package, _TapNumbers, personal_data_fields=PERSONAL)
    assert extractor["name"] == "tap-numbers"
    assert_root_meltano_yml_matches(package, _TapNumbers)


def test_a_drifted_readme_table_is_detected(tmp_path: Path) -> None:
    drifted = about_settings_table(_TapNumbers).replace("Fail the sync.", "Fails.")
    package = _package(tmp_path, _extractor(), table=drifted)
    with pytest.raises(AssertionError, match="regenerate with: tap-numbers --about --format=markdown"):
        assert_readme_settings_match_about(package, _TapNumbers)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda e: e["settings"].pop(), "undeclared \\['fail'\\]"),
        (lambda e: e["settings"][0].pop("sensitive"), "api_key: sensitive != secret"),
        (lambda e: e["settings"][1].pop("kind"), "fail: no kind"),
        (lambda e: e["settings"][1].pop("description"), "fail: no description"),
        (lambda e: e["config"].update(pseudonymize={}), "pseudonymize"),
        (lambda e: e.update(pip_url="tap-numbers"), "pip_url"),
        (lambda e: e.update(variant="meltanolabs"), "variant"),
        (lambda e: e["capabilities"].pop(), "capabilities"),
    ],
)
def test_a_wrong_meltano_yml_is_detected(tmp_path: Path, change: Any, message: str) -> None:
    extractor = _extractor()
    change(extractor)
    package = _package(tmp_path, extractor)
    with pytest.raises(AssertionError, match=message):
        assert_meltano_yml_declares_settings(package, _TapNumbers, personal_data_fields=PERSONAL)


def test_a_root_entry_that_differs_is_detected(tmp_path: Path) -> None:
    package = _package(tmp_path, _extractor())
    root = yaml.safe_load((tmp_path / "meltano.yml").read_text())
    root["plugins"]["extractors"][0]["settings"].pop()
    (tmp_path / "meltano.yml").write_text(yaml.safe_dump(root))
    with pytest.raises(AssertionError, match=r"root meltano\.yml's tap-numbers entry differs"):
        assert_root_meltano_yml_matches(package, _TapNumbers)
