"""The command line: no credential in any output, one line per failed export and a non-zero exit, a clear 401."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fake_api import FakeClari

from harborline_singer_shared.testing.taps import run_plugin_cli

SECRET_KEY = "zz-APIKEY-recognisable-4410"
SECRET_HMAC_KEY = "zz-HMACKEY-recognisable-9902-long-enough"


def _run(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_plugin_cli(
        "harborline_tap_clari", args, clear_prefixes=("TAP_CLARI_", "HARBORLINE_"), env=env, timeout=300
    )


def _config(tmp_path: Path, api_url: str, **extra: Any) -> str:
    config = {
        "api_url": api_url,
        "api_key": SECRET_KEY,
        "forecast_ids": ["net_bookings"],
        "time_periods": ["2025_Q1"],
        "poll_interval_seconds": 0,
        "pseudonymization_key": SECRET_HMAC_KEY,
        "max_retries": 2,
        "request_timeout": 10,
        **extra,
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return str(path)


def _assert_no_secret(result: subprocess.CompletedProcess[str]) -> None:
    for secret in (SECRET_KEY, SECRET_HMAC_KEY):
        assert secret not in result.stdout
        assert secret not in result.stderr


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if " ERROR " in line or "Traceback" in line]


def test_about_shows_no_secret(tmp_path: Path) -> None:
    result = _run(["--config", _config(tmp_path, "https://api.clari.com/v4"), "--about", "--format=json"])
    assert result.returncode == 0, result.stderr
    about = json.loads(result.stdout)
    assert about["name"] == "tap-clari"
    assert about["settings"]["properties"]["api_key"]["secret"] is True
    assert about["settings"]["properties"]["pseudonymization_key"]["secret"] is True
    _assert_no_secret(result)


def test_discover_shows_no_secret(tmp_path: Path) -> None:
    result = _run(["--config", _config(tmp_path, "https://api.clari.com/v4"), "--discover"], {"LOGLEVEL": "DEBUG"})
    assert result.returncode == 0, result.stderr
    catalog = json.loads(result.stdout)
    assert {s["tap_stream_id"] for s in catalog["streams"]} == {
        "forecast_entries",
        "users",
        "fields",
        "time_periods",
        "time_frames",
    }
    _assert_no_secret(result)


def test_sync_output_and_debug_logs_show_no_secret(tmp_path: Path) -> None:
    with FakeClari(api_key=SECRET_KEY) as fake:
        result = _run(["--config", _config(tmp_path, fake.url)], {"LOGLEVEL": "DEBUG"})
        expected = len(fake.document("net_bookings", "2025_Q1")["entries"])
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert sum(1 for m in lines if m["type"] == "RECORD" and m["stream"] == "forecast_entries") == expected
    _assert_no_secret(result)


def test_401_is_one_clear_line_naming_api_key(tmp_path: Path) -> None:
    with FakeClari() as fake:
        result = _run(["--config", _config(tmp_path, fake.url)], {"LOGLEVEL": "DEBUG"})
    assert result.returncode == 1
    errors = [line for line in _error_lines(result.stderr) if "unhandled error" not in line]
    assert len(errors) == 1, result.stderr
    assert "Authentication failed: HTTP 401" in errors[0]
    assert "`api_key`" in errors[0]
    assert "Traceback" not in result.stderr
    _assert_no_secret(result)


def test_failed_exports_are_one_line_each_then_a_non_zero_exit(tmp_path: Path) -> None:
    with FakeClari(api_key=SECRET_KEY) as fake:
        fake.job_scripts[("net_bookings", "2025_Q1")] = ["SCHEDULED", "FAILED"]
        fake.unknown_periods.add("2019_Q1")
        config = _config(
            tmp_path, fake.url, forecast_ids=["net_bookings", "nope"], time_periods=["2019_Q1", "2025_Q1", "2024_Q4"]
        )
        result = _run(["--config", config])
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    failures = [line for line in _error_lines(result.stderr) if "Clari export failed" in line]
    assert len(failures) == 5  # 2019_Q1 (fallback) and 2025_Q1 (FAILED) of net_bookings; all three of "nope"
    assert any(
        "forecast 'net_bookings', period '2019_Q1'" in line and "returned '2025_Q1'" in line for line in failures
    )
    assert any("period '2025_Q1'" in line and "FAILED" in line for line in failures)
    assert sum("forecast 'nope'" in line and "no_such_forecast_config" in line for line in failures) == 3
    assert "5 of 6 Clari export(s) failed" in result.stderr
    # The one export that worked was emitted in full.
    periods = {
        json.loads(line)["record"]["time_period_id"]
        for line in result.stdout.splitlines()
        if '"stream":"forecast_entries"' in line and '"type":"RECORD"' in line
    }
    assert periods == {"2024_Q4"}
    _assert_no_secret(result)


@pytest.mark.parametrize("via", ["config", "env"])
def test_api_key_from_config_or_environment(tmp_path: Path, via: str) -> None:
    with FakeClari(api_key=SECRET_KEY) as fake:
        path = _config(tmp_path, fake.url)
        env = {}
        if via == "env":
            config = json.loads(Path(path).read_text())
            env["TAP_CLARI_API_KEY"] = config.pop("api_key")
            Path(path).write_text(json.dumps(config))
        result = _run(["--config", path, *(["--config", "ENV"] if via == "env" else [])], env)
    assert result.returncode == 0, result.stderr[-2000:]
    _assert_no_secret(result)


def test_fake_api_script_prints_its_base_url_first(tmp_path: Path) -> None:
    script = Path(__file__).parent / "fake_api.py"
    process = subprocess.Popen(
        [sys.executable, str(script), "--port", "0", "--entries", "500", "--forecasts", "net_bookings"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        assert url.endswith("/v4")
        config = _config(tmp_path, url, api_key="fake-clari-api-key-0123456789")
        result = _run(["--config", config])
        assert result.returncode == 0, result.stderr[-2000:]
        assert (
            sum(1 for line in result.stdout.splitlines() if '"stream":"forecast_entries"' in line and "RECORD" in line)
            == 500
        )
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert process.returncode == 0
