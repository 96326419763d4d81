"""The command line as a new user meets it: no secret anywhere, one clear line per failure, resumable, flat memory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from conftest import ACCOUNT_CODES
from fake_api import MNPI, USERNAME, XML_BOMB, FakeAdaptive, Fault

from harborline_singer_shared.testing.taps import run_plugin_cli
from harborline_tap_adaptive.tap import TapAdaptive

SECRET_PASSWORD = 'zz-PASS&<"word-4410'
SECRET_HMAC_KEY = "zz-HMACKEY-recognisable-9902-long-enough"
#: What the password looks like inside XML; it must not appear either.
ESCAPED_PASSWORD = "zz-PASS&amp;&lt;"


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAP_ADAPTIVE_", "HARBORLINE_"))}
    env.update(extra or {})
    return env


def _run(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_plugin_cli(
        "harborline_tap_adaptive", args, clear_prefixes=("TAP_ADAPTIVE_", "HARBORLINE_"), env=env, timeout=300
    )


def _config(tmp_path: Path, api_url: str, **extra: Any) -> str:
    config = {
        "api_url": api_url,
        "username": USERNAME,
        "password": SECRET_PASSWORD,
        "version_folder": "Shared with Data",
        "account_codes": ACCOUNT_CODES,
        "pseudonymization_key": SECRET_HMAC_KEY,
        "max_retries": 2,
        "request_timeout": 30,
        **extra,
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps({k: v for k, v in config.items() if v is not None}), encoding="utf-8")
    return str(path)


def _assert_no_secret(result: subprocess.CompletedProcess[str]) -> None:
    for secret in (SECRET_PASSWORD, SECRET_HMAC_KEY, ESCAPED_PASSWORD, "zz-PASS"):
        assert secret not in result.stdout
        assert secret not in result.stderr


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line or " CRITICAL " in line]
    assert len(errors) == 1, result.stderr[-3000:]
    _assert_no_secret(result)
    return errors[0]


@pytest.fixture
def fake() -> Any:
    with FakeAdaptive(password=SECRET_PASSWORD) as api:
        yield api


def test_about_marks_secrets_and_shows_none(tmp_path: Path) -> None:
    result = _run(["--config", _config(tmp_path, "https://api.adaptiveinsights.com/api"), "--about", "--format=json"])
    assert result.returncode == 0, result.stderr
    about = json.loads(result.stdout)
    assert about["name"] == "tap-adaptive"
    assert about["settings"]["properties"]["password"]["secret"] is True
    assert about["settings"]["properties"]["pseudonymization_key"]["secret"] is True
    assert "activate-version" in about["capabilities"]
    _assert_no_secret(result)


def test_discover_lists_every_stream_and_shows_no_secret(tmp_path: Path) -> None:
    config = _config(tmp_path, "https://api.adaptiveinsights.com/api")
    result = _run(["--config", config, "--discover"], {"LOGLEVEL": "DEBUG"})
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)["streams"]) == 25
    _assert_no_secret(result)


def test_a_full_sync_with_debug_logs_shows_no_secret(tmp_path: Path, fake: FakeAdaptive) -> None:
    result = _run(["--config", _config(tmp_path, fake.url, modeled_sheets=["Personnel"])], {"LOGLEVEL": "DEBUG"})
    assert result.returncode == 0, result.stderr[-3000:]
    streams = {json.loads(line)["stream"] for line in result.stdout.splitlines() if '"type":"RECORD"' in line}
    assert len(streams) == 25
    assert "ana.lopez@example.com" not in result.stdout
    _assert_no_secret(result)
    assert not fake.errors


def test_a_wrong_password_is_one_line_naming_the_settings(tmp_path: Path, fake: FakeAdaptive) -> None:
    fake.password = "something else"
    line = _one_error_line(_run(["--config", _config(tmp_path, fake.url)], {"LOGLEVEL": "DEBUG"}))
    assert "stream 'accounts': Authentication failed for exportAccounts" in line
    assert "[error-authentication-failure]" in line
    assert "`username`, `password` and `instance_code`" in line
    assert len(fake.calls) == 1  # not retried


def test_an_unknown_instance_code_is_one_line(tmp_path: Path, fake: FakeAdaptive) -> None:
    line = _one_error_line(_run(["--config", _config(tmp_path, fake.url, instance_code="NOPE")]))
    assert "[error-invalid-instance-code]" in line
    assert "`instance_code`" in line


def test_missing_account_codes_stops_before_any_call(tmp_path: Path, fake: FakeAdaptive) -> None:
    line = _one_error_line(_run(["--config", _config(tmp_path, fake.url, account_codes=None)]))
    assert "stream 'data': Setting 'account_codes' is empty" in line
    assert fake.calls == []


def test_a_missing_version_folder_is_one_line_naming_it(tmp_path: Path, fake: FakeAdaptive) -> None:
    line = _one_error_line(_run(["--config", _config(tmp_path, fake.url, version_folder="Shared")]))
    assert "no version folder is named exactly 'Shared'" in line
    assert "exportData" not in fake.methods()


def test_an_xml_bomb_is_one_line_naming_stream_and_method(tmp_path: Path, fake: FakeAdaptive) -> None:
    fake.inject(Fault("exportLevels", body=XML_BOMB, times=9))
    line = _one_error_line(_run(["--config", _config(tmp_path, fake.url)]))
    assert "stream 'levels': exportLevels: the response declares a DTD or an entity" in line


def test_success_false_is_one_line_with_the_messages(tmp_path: Path, fake: FakeAdaptive) -> None:
    fake.inject(Fault("exportRoles", messages=[("error-permission", "Not allowed <here>")]))
    line = _one_error_line(_run(["--config", _config(tmp_path, fake.url)]))
    assert line.endswith(
        "stream 'roles': exportRoles failed: Adaptive answered success=\"false\": [error-permission] Not allowed <here>"
    )


@pytest.mark.parametrize(
    ("setting", "value", "expected"),
    [
        ("time_span_start", "2025-01", "`time_span_start` must be a month as MM/YYYY (e.g. 01/2025), not '2025-01'"),
        ("time_span_end", "13/2025", "`time_span_end` must be a month as MM/YYYY"),
        ("account_codes", [""], "`account_codes` must be a list of non-empty names"),
    ],
)
def test_bad_settings_stop_at_start_up_with_one_line(tmp_path: Path, setting: str, value: Any, expected: str) -> None:
    result = _run(["--config", _config(tmp_path, "http://127.0.0.1:9/api", **{setting: value})])
    line = _one_error_line(result)
    assert "Config validation failed" in line
    assert expected in line


def test_the_password_from_the_environment(tmp_path: Path, fake: FakeAdaptive) -> None:
    path = _config(tmp_path, fake.url, password=None)
    result = _run(["--config", path, "--config", "ENV"], {"TAP_ADAPTIVE_PASSWORD": SECRET_PASSWORD})
    assert result.returncode == 0, result.stderr[-2000:]
    _assert_no_secret(result)


def _last_state(stdout: str) -> dict[str, Any]:
    states = [json.loads(line)["value"] for line in stdout.splitlines() if line.startswith('{"type":"STATE"')]
    return states[-1]


def test_a_run_killed_in_a_version_loses_nothing_and_redoes_only_that_version(
    tmp_path: Path, fake: FakeAdaptive
) -> None:
    release = threading.Event()
    held = fake.inject(Fault("exportData", hold=release, skip=1))  # the second version stops halfway
    config = _config(tmp_path, fake.url)
    process = subprocess.Popen(
        [sys.executable, "-m", "harborline_tap_adaptive", "--config", config],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=_env(),
    )
    try:
        assert held.held.wait(timeout=120), "the second exportData call never came"
        process.send_signal(signal.SIGKILL)
        stdout = process.communicate(timeout=60)[0].decode()
    finally:
        release.set()
    state = _last_state(stdout)
    assert [e["name"] for e in state["bookmarks"]["data"]["exported_versions"]] == ["FY25 Budget"]
    first = [
        json.loads(line)["record"]
        for line in stdout.splitlines()
        if line.startswith('{"type":"RECORD","stream":"data"')
    ]
    assert {r["version_id"] for r in first} >= {11}

    fake.calls.clear()
    state_file = tmp_path / "state.json"
    state_file.write_text(json.dumps(state))
    result = _run(["--config", config, "--state", str(state_file)])
    assert result.returncode == 0, result.stderr[-2000:]
    assert fake.data_calls() == ['Forecast & <Q1> "final"']
    rows = [
        json.loads(line)["record"]
        for line in result.stdout.splitlines()
        if line.startswith('{"type":"RECORD","stream":"data"')
    ]
    assert {r["version_id"] for r in rows} == {13}
    assert len(rows) == 16
    final = _last_state(result.stdout)
    assert [e["id"] for e in final["bookmarks"]["data"]["exported_versions"]] == [11, 13]


def _peak_rss_kib(tmp_path: Path, api_url: str, name: str) -> tuple[int, Path]:
    """Run a data-only sync of one version with stdout to a file; the child's peak RSS (KiB) and the output."""
    tap = TapAdaptive(config={"username": "u", "password": "p", "pseudonymize": {}})
    catalog = tap.catalog_dict
    for entry in catalog["streams"]:
        selected = entry["tap_stream_id"] in {"data", "versions"}
        for metadata in entry["metadata"]:
            if metadata["breadcrumb"] == []:
                metadata["metadata"]["selected"] = selected
    catalog_path = tmp_path / "catalog.json"
    catalog_path.write_text(json.dumps(catalog))
    config = _config(tmp_path, api_url, version_folder=None, version_names=["FY25 Budget"])
    output = tmp_path / f"{name}.jsonl"
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "harborline_tap_adaptive", "--config", config, "--catalog", str(catalog_path)],
            stdout=sink,
            stderr=subprocess.DEVNULL,
            env=_env(),
        )
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    assert process.returncode == 0
    return usage.ru_maxrss, output


@pytest.mark.slow
def test_a_60_mb_export_adds_less_than_30_mb_to_peak_rss(tmp_path: Path) -> None:
    rows = 860_000
    with FakeAdaptive(data_rows=rows, password=SECRET_PASSWORD) as big:
        big_rss, output = _peak_rss_kib(tmp_path, big.url, "big")
        body = big.bytes_sent
        assert body > 60_000_000
    with FakeAdaptive(data_rows=200, password=SECRET_PASSWORD) as small:
        small_rss, _ = _peak_rss_kib(tmp_path, small.url, "small")
    records = 0
    with output.open("rb") as lines:
        for line in lines:
            if b'"stream":"data"' in line and b'"type":"RECORD"' in line:
                records += 1
                assert b"Secret MNPI" not in line
                assert all(f'"{code}"'.encode() not in line for code in MNPI)
    assert records == 3 * len(range(0, rows, 50))
    added_mib = (big_rss - small_rss) / 1024
    assert added_mib < 30, f"peak RSS grew by {added_mib:.1f} MiB for a {body / 1e6:.0f} MB export"


def test_the_fake_api_script_prints_its_url_first(tmp_path: Path) -> None:
    script = Path(__file__).parent / "fake_api.py"
    process = subprocess.Popen(
        [sys.executable, str(script), "--password", SECRET_PASSWORD], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        assert url.endswith("/api")
        result = _run(["--config", _config(tmp_path, url)])
        assert result.returncode == 0, result.stderr[-2000:]
        assert sum(line.startswith('{"type":"RECORD","stream":"data"') for line in result.stdout.splitlines()) == 32
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_without_a_pseudonymization_key_the_sync_stops_with_one_line(tmp_path: Path, fake: FakeAdaptive) -> None:
    line = _one_error_line(_run(["--config", _config(tmp_path, fake.url, pseudonymization_key=None)]))
    assert "no key was found: set 'pseudonymization_key' or the environment variable" in line
    assert fake.calls == []


def test_an_api_url_that_is_not_http_is_one_line(tmp_path: Path) -> None:
    line = _one_error_line(_run(["--config", _config(tmp_path, "api.adaptiveinsights.com/api")]))
    assert "api_url" in line
