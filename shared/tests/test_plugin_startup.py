"""Start-up checks every plugin gets from HarborlinePluginMixin, through a real CLI run of a small demo tap.

Each mistake is found before any record is written, reported as one ERROR line naming what to fix, exit code 1.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PLUGIN = textwrap.dedent(
    """
    from __future__ import annotations
    from singer_sdk import Stream, Tap
    from singer_sdk import typing as th
    from harborline_singer_shared.http import AuthenticationError
    from harborline_singer_shared.plugin import HarborlinePluginMixin
    from harborline_singer_shared.pseudonymize import PseudonymizedStreamMixin, pseudonymization_settings

    PERSONAL = {"people": ["email"]}

    class People(PseudonymizedStreamMixin, Stream):
        name = "people"
        schema = th.PropertiesList(th.Property("id", th.IntegerType), th.Property("email", th.StringType)).to_dict()

        def get_records(self, context):
            if "page_size" in self.config or "window_days" in self.config:  # echo the types they arrived with
                self.logger.info("types: %s %s", type(self.config.get("page_size")).__name__,
                                 type(self.config.get("window_days")).__name__)
            if self.config.get("fail"):
                raise AuthenticationError("HTTP 401 from GET /people: check the `token` setting", status_code=401)
            yield {"id": 1, "email": "Ada@Example.com"}

    class TapDemo(HarborlinePluginMixin, Tap):
        name = "tap-demo"
        personal_data_fields = PERSONAL
        config_jsonschema = th.PropertiesList(
            th.Property("token", th.StringType, secret=True),
            th.Property("start_date", th.DateTimeType),
            th.Property("fail", th.BooleanType),
            th.Property("page_size", th.IntegerType),
            th.Property("window_days", th.NumberType),
            *pseudonymization_settings(PERSONAL),
        ).to_dict()

        def discover_streams(self):
            return [People(self)]

    TapDemo.cli()
    """
)
KEY = "plugin-startup-test-key-0123456789"


def _run(
    tmp_path: Path, config: object, *, raw: str | None = None, name: str = "config.json", args: tuple[str, ...] = ()
) -> tuple[int, str, str]:
    script = tmp_path / "tap_demo.py"
    script.write_text(PLUGIN)
    cfg = tmp_path / name
    cfg.write_text(raw if raw is not None else json.dumps(config))
    env = {"PATH": "/usr/bin:/bin"}  # no HARBORLINE_PSEUDONYMIZATION_KEY from the caller
    result = subprocess.run(
        [sys.executable, str(script), "--config", str(cfg), *args], capture_output=True, text=True, env=env, check=False
    )
    return result.returncode, result.stdout, result.stderr


def _errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "ERROR" in line]


def _assert_one_line_failure(code: int, stdout: str, stderr: str, *expected: str) -> str:
    assert code == 1, stderr
    assert "Traceback" not in stderr
    assert stdout == ""  # nothing was emitted: the mistake was found before any work
    errors = _errors(stderr)
    assert len(errors) == 1, stderr
    for text in expected:
        assert text in errors[0], errors[0]
    return errors[0]


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("missing.json", None, "does not exist"),
        ("config.json", '{"token": "x",}', "is not valid JSON"),
        ("config.yml", "token: x\nstart_date: 2024-01-01\n", "not YAML"),
        ("config.json", '[{"token": "x"}]', "holds a JSON list, not an object of settings"),
    ],
)
def test_a_bad_config_file_is_one_line_naming_it(tmp_path: Path, name: str, raw: str | None, expected: str) -> None:
    script = tmp_path / "tap_demo.py"
    script.write_text(PLUGIN)
    path = tmp_path / name
    if raw is not None:
        path.write_text(raw)
    argv = [sys.executable, str(script), "--config", str(path)]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    _assert_one_line_failure(result.returncode, result.stdout, result.stderr, f"Config file '{path}'", expected)


def test_personal_data_is_pseudonymized_by_default(tmp_path: Path) -> None:
    code, stdout, stderr = _run(tmp_path, {"pseudonymization_key": KEY})
    assert code == 0, stderr
    (record,) = [json.loads(line)["record"] for line in stdout.splitlines() if '"RECORD"' in line]
    assert record["email"].startswith("hl1:1:")


def test_no_key_and_no_choice_stops_at_start_naming_both_ways_out(tmp_path: Path) -> None:
    code, stdout, stderr = _run(tmp_path, {})
    _assert_one_line_failure(
        code, stdout, stderr, "pseudonymization_key", "HARBORLINE_PSEUDONYMIZATION_KEY", "pseudonymize: {}"
    )


@pytest.mark.parametrize(
    ("config", "expected"),
    [({}, "pseudonymization_key"), ({"pseudonymise": {}, "pseudonymization_key": KEY}, "'pseudonymise'")],
    ids=["no-key", "misspelt"],
)
def test_discovery_reports_a_config_mistake_in_one_line_too(tmp_path: Path, config: dict, expected: str) -> None:
    # The SDK's --discover callback logs only a ConfigValidationError's `errors`: without them it exited 1 silently.
    code, stdout, stderr = _run(tmp_path, config, args=("--discover",))
    _assert_one_line_failure(code, stdout, stderr, expected)


def test_an_empty_pseudonymize_is_the_opt_out(tmp_path: Path) -> None:
    code, stdout, stderr = _run(tmp_path, {"pseudonymize": {}})
    assert code == 0, stderr
    (record,) = [json.loads(line)["record"] for line in stdout.splitlines() if '"RECORD"' in line]
    assert record["email"] == "Ada@Example.com"


def test_a_misspelt_privacy_setting_is_refused(tmp_path: Path) -> None:
    code, stdout, stderr = _run(tmp_path, {"pseudonymise": {}, "pseudonymization_key": KEY})
    _assert_one_line_failure(code, stdout, stderr, "'pseudonymise'", "did you mean 'pseudonymize'?")


def test_an_unknown_setting_is_a_warning_naming_the_closest(tmp_path: Path) -> None:
    code, _, stderr = _run(tmp_path, {"start_dat": "2024-01-01", "pseudonymize": {}})
    assert code == 0, stderr
    warnings = [line for line in stderr.splitlines() if "Unknown setting" in line]
    assert len(warnings) == 1, stderr
    assert "'start_dat' is ignored (did you mean 'start_date'?)" in warnings[0]


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"pseudonymize": {"persons": ["email"]}}, "stream(s) 'persons', which this tap does not have"),
        ({"pseudonymize": {"people": ["e_mail"]}}, "field 'e_mail' for stream 'people'"),
        ({"pseudonymize": {"*": ["phone"]}}, "field 'phone' for every stream"),
    ],
)
def test_pseudonymize_naming_what_does_not_exist_stops_at_start(
    tmp_path: Path, config: dict[str, object], expected: str
) -> None:
    code, stdout, stderr = _run(tmp_path, {**config, "pseudonymization_key": KEY})
    _assert_one_line_failure(code, stdout, stderr, "Setting 'pseudonymize'", expected)


def test_a_date_setting_that_is_not_a_date_stops_at_start(tmp_path: Path) -> None:
    code, stdout, stderr = _run(tmp_path, {"start_date": "yesterday", "pseudonymize": {}})
    _assert_one_line_failure(code, stdout, stderr, "Setting 'start_date'", "'yesterday'")


def test_a_failing_stream_logs_one_error_line(tmp_path: Path) -> None:
    code, _, stderr = _run(tmp_path, {"fail": True, "pseudonymize": {}})
    assert code == 1
    assert "Traceback" not in stderr
    errors = _errors(stderr)
    assert len(errors) == 1, stderr  # not the SDK's "An unhandled error occurred while syncing" as well
    assert "check the `token` setting" in errors[0]


@pytest.mark.parametrize(("content", "expected"), [("", "is empty"), ("{bookmarks}", "is not valid JSON")])
def test_a_bad_state_file_is_one_line_naming_it(tmp_path: Path, content: str, expected: str) -> None:
    script = tmp_path / "tap_demo.py"
    script.write_text(PLUGIN)
    (tmp_path / "config.json").write_text(json.dumps({"pseudonymize": {}}))
    (tmp_path / "state.json").write_text(content)
    argv = [sys.executable, str(script), "--config", "config.json", "--state", "state.json"]
    result = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=tmp_path)
    _assert_one_line_failure(result.returncode, result.stdout, result.stderr, "State file 'state.json'", expected)


def _run_env(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "tap_demo.py"
    script.write_text(PLUGIN)
    full = {"PATH": "/usr/bin:/bin", "TAP_DEMO_PSEUDONYMIZE": "{}", **env}
    argv = [sys.executable, str(script), "--config", "ENV"]
    return subprocess.run(argv, capture_output=True, text=True, env=full, check=False, cwd=tmp_path)


def test_numeric_settings_from_the_environment_arrive_as_numbers(tmp_path: Path) -> None:
    result = _run_env(tmp_path, {"TAP_DEMO_PAGE_SIZE": "50", "TAP_DEMO_WINDOW_DAYS": "0.5"})
    assert result.returncode == 0, result.stderr
    assert "types: int float" in result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("TAP_DEMO_PAGE_SIZE", "fifty", "TAP_DEMO_PAGE_SIZE (setting 'page_size') must be an integer"),
        ("TAP_DEMO_PAGE_SIZE", "1.5", "TAP_DEMO_PAGE_SIZE (setting 'page_size') must be an integer"),
        ("TAP_DEMO_WINDOW_DAYS", "1 day", "TAP_DEMO_WINDOW_DAYS (setting 'window_days') must be a number"),
    ],
)
def test_a_numeric_setting_from_the_environment_that_is_not_a_number_is_one_line(
    tmp_path: Path, variable: str, value: str, expected: str
) -> None:
    result = _run_env(tmp_path, {variable: value})
    _assert_one_line_failure(result.returncode, result.stdout, result.stderr, expected)
