"""The command line never prints a credential: --about, --discover, a sync, and a 401."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fake_api import DEFAULT_PASSWORD, DEFAULT_USERNAME, FakeZenGRC

from harborline_singer_shared.testing.taps import run_plugin_cli

SECRET_ID = "zz-KEYID-recognisable-4410"
SECRET_PASSWORD = "zz-SECRET-recognisable-7731"
SECRET_HMAC_KEY = "zz-HMACKEY-recognisable-9902-long-enough"


def _run(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_plugin_cli(
        "harborline_tap_zengrc", args, clear_prefixes=("ZENGRC_", "TAP_ZENGRC_"), env=env, timeout=120
    )


def _write_config(tmp_path: Path, config: dict[str, Any]) -> str:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return str(path)


def _assert_no_secret(result: subprocess.CompletedProcess[str], *secrets: str) -> None:
    for secret in secrets:
        assert secret not in result.stdout
        assert secret not in result.stderr


def _secret_config(api_url: str) -> dict[str, Any]:
    return {
        "api_url": api_url,
        "username": SECRET_ID,
        "password": SECRET_PASSWORD,
        "pseudonymize": {"people": ["email"]},
        "pseudonymization_key": SECRET_HMAC_KEY,
        "max_retries": 2,
        "request_timeout": 10,
    }


def test_about_names_the_tap_and_hides_secrets(tmp_path: Path) -> None:
    config = _write_config(tmp_path, _secret_config("https://acme.api.zengrc.com/api/v2"))
    result = _run(["--config", config, "--about", "--format=json"])
    assert result.returncode == 0, result.stderr
    about = json.loads(result.stdout)
    assert about["name"] == "tap-zengrc"
    assert about["settings"]["properties"]["password"]["secret"] is True
    _assert_no_secret(result, SECRET_ID, SECRET_PASSWORD, SECRET_HMAC_KEY)


def test_discover_hides_secrets(tmp_path: Path) -> None:
    config = _write_config(tmp_path, _secret_config("https://acme.api.zengrc.com/api/v2"))
    result = _run(["--config", config, "--discover"], env={"LOGLEVEL": "DEBUG"})
    assert result.returncode == 0, result.stderr
    catalog = json.loads(result.stdout)
    assert {s["tap_stream_id"] for s in catalog["streams"]} >= {"people", "requests", "vendors"}
    _assert_no_secret(result, SECRET_ID, SECRET_PASSWORD, SECRET_HMAC_KEY)


def test_401_from_the_cli_is_clear_and_secret_free(tmp_path: Path) -> None:
    with FakeZenGRC(records=5, seed=1) as fake:
        config = _write_config(tmp_path, _secret_config(fake.url))
        result = _run(["--config", config], env={"LOGLEVEL": "DEBUG"})
    assert result.returncode != 0
    assert "Authentication failed: HTTP 401" in result.stderr
    assert "`username` and `password`" in result.stderr
    _assert_no_secret(result, SECRET_ID, SECRET_PASSWORD, SECRET_HMAC_KEY)


@pytest.mark.parametrize("via", ["config", "zengrc_env", "tap_env"])
def test_sync_output_and_logs_never_show_credentials(tmp_path: Path, via: str) -> None:
    with FakeZenGRC(records=5, seed=1, username=SECRET_ID, password=SECRET_PASSWORD) as fake:
        config = _secret_config(fake.url)
        env = {"LOGLEVEL": "DEBUG"}
        if via != "config":
            prefix = "ZENGRC_" if via == "zengrc_env" else "TAP_ZENGRC_"
            env[f"{prefix}USERNAME"] = config.pop("username")
            env[f"{prefix}PASSWORD"] = config.pop("password")
        result = _run(["--config", _write_config(tmp_path, config)], env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert sum(1 for m in lines if m["type"] == "RECORD") == 5 * 11
    _assert_no_secret(result, SECRET_ID, SECRET_PASSWORD, SECRET_HMAC_KEY)


def test_fake_api_script_prints_its_base_url_first(tmp_path: Path) -> None:
    script = Path(__file__).parent / "fake_api.py"
    process = subprocess.Popen(
        [sys.executable, str(script), "--port", "0", "--records", "3", "--seed", "1"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        assert url.endswith("/api/v2")
        config = _write_config(
            tmp_path,
            {"api_url": url, "username": DEFAULT_USERNAME, "password": DEFAULT_PASSWORD},
        )
        result = _run(["--config", config])
        assert result.returncode == 0, result.stderr[-2000:]
        assert sum(1 for line in result.stdout.splitlines() if '"RECORD"' in line) == 3 * 11
    finally:
        process.terminate()
        process.wait(timeout=60)
    assert process.returncode == 0
