"""The command line: exact one-line errors with a non-zero exit, no traceback, and no secret in any output."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import XcDatabase
from xc_fixture import READER, READER_PASSWORD

from harborline_singer_shared.testing.taps import run_plugin_cli

SECRET_HMAC_KEY = "zz-HMACKEY-recognisable-9902-long-enough"


def _run(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_plugin_cli(
        "harborline_tap_xactly", args, clear_prefixes=("TAP_XACTLY_", "HARBORLINE_"), env=env, timeout=300
    )


def _write(tmp_path: Path, config: dict[str, Any]) -> str:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return str(path)


def _pg_config(xc_db: XcDatabase, **extra: Any) -> dict[str, Any]:
    return {
        "sql_driver": "postgresql",
        "sql_dsn": xc_db.reader_dsn,
        "username": READER,
        "password": READER_PASSWORD,
        "pseudonymization_key": SECRET_HMAC_KEY,
        **extra,
    }


def _assert_no_secret(result: subprocess.CompletedProcess[str], *secrets: str) -> None:
    for secret in (READER_PASSWORD, SECRET_HMAC_KEY, READER, *secrets):
        assert secret not in result.stdout
        assert secret not in result.stderr


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line or "ERROR" in line.split(" ")[:3]]
    assert len(errors) == 1, result.stderr
    return errors[0]


def test_about_marks_every_secret_and_shows_none(tmp_path: Path, xc_db: XcDatabase) -> None:
    result = _run(["--config", _write(tmp_path, _pg_config(xc_db)), "--about", "--format=json"])
    assert result.returncode == 0, result.stderr
    about = json.loads(result.stdout)
    properties = about["settings"]["properties"]
    for name in ("sql_dsn", "username", "password", "client_id", "consumer", "pseudonymization_key"):
        assert properties[name]["secret"] is True, name
    _assert_no_secret(result)


def test_discover_and_sync_with_debug_logs_show_no_secret(tmp_path: Path, xc_db: XcDatabase) -> None:
    # A DSN holding the password is secret too.
    dsn = f"postgresql://{READER}:{READER_PASSWORD}@{xc_db.server.host}:{xc_db.server.port}/{xc_db.name}"
    if xc_db.server.host.startswith("/"):
        pytest.skip("unix-socket server: the URI form needs a host")
    config = _write(tmp_path, {**_pg_config(xc_db), "sql_dsn": dsn, "username": None, "password": None})
    discover = _run(["--config", config, "--discover"], {"LOGLEVEL": "DEBUG"})
    assert discover.returncode == 0, discover.stderr[-2000:]
    catalog = json.loads(discover.stdout)
    assert len(catalog["streams"]) == 40
    _assert_no_secret(discover, dsn)
    sync = _run(["--config", config], {"LOGLEVEL": "DEBUG"})
    assert sync.returncode == 0, sync.stderr[-2000:]
    records = [json.loads(line) for line in sync.stdout.splitlines()]
    assert sum(1 for m in records if m["type"] == "RECORD") == sum(xc_db.counts.values())
    _assert_no_secret(sync, dsn)


def test_a_wrong_password_is_one_line_naming_username_and_password_within_seconds(
    tmp_path: Path, xc_db: XcDatabase
) -> None:
    wrong = "zz-Wrong-Pass-0042"
    started = time.monotonic()
    result = _run(["--config", _write(tmp_path, _pg_config(xc_db, password=wrong))])
    assert time.monotonic() - started < 30
    line = _one_error_line(result)
    assert "Xactly refused the login: check `username`/`password` (OperationalError: " in line
    assert "password authentication failed" in line
    _assert_no_secret(result, wrong)


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (
            {"sql_driver": "oracle"},
            (
                "Config validation failed: Setting 'sql_driver' is 'oracle', which is not a known transport: "
                "use one of 'jdbc', 'odbc', 'postgresql', 'none'."
            ),
        ),
        (
            {"sql_driver": "postgresql"},
            "Config validation failed: Setting 'sql_dsn' is required with sql_driver 'postgresql'.",
        ),
        (
            {"sql_driver": "none"},
            (
                "Config validation failed: Setting 'sql_driver' is 'none' and neither 'wsdl_url' nor 'wsdl_path' "
                "is set: there is nothing to read."
            ),
        ),
        (
            {"sql_driver": "postgresql", "sql_dsn": "host=x", "source_timezone": "Mars/Olympus"},
            (
                "Config validation failed: Setting 'source_timezone' is 'Mars/Olympus', which is not an IANA time zone "
                "such as UTC."
            ),
        ),
        (
            {"sql_driver": "postgresql", "sql_dsn": "host=x", "key_overrides": {"xc_nope": ["ID"]}},
            "Config validation failed: Setting 'key_overrides' names stream 'xc_nope', which this tap does not have.",
        ),
    ],
)
def test_bad_settings_are_one_exact_line(tmp_path: Path, settings: dict[str, Any], expected: str) -> None:
    result = _run(["--config", _write(tmp_path, {"pseudonymization_key": SECRET_HMAC_KEY, **settings})])
    assert _one_error_line(result).endswith(expected)


def test_the_default_jdbc_without_its_extra_names_the_setting_the_extra_and_the_jar(tmp_path: Path) -> None:
    result = _run(["--config", _write(tmp_path, {"pseudonymization_key": SECRET_HMAC_KEY, "password": "p-Secret-1"})])
    line = _one_error_line(result)
    assert line.endswith(
        "Config validation failed: Setting 'sql_driver' is 'jdbc', but its Python module 'jaydebeapi' is not "
        "installed: pip install 'harborline-tap-xactly[jdbc]' (or set 'sql_driver' to another transport).; "
        "Setting 'jdbc_jar_path' is required with sql_driver 'jdbc': the path of Xactly's "
        "xjdbc-<version>-jar-with-dependencies.jar."
    )


def test_a_server_that_is_not_there_is_one_line_naming_sql_dsn(tmp_path: Path) -> None:
    config = {
        "sql_driver": "postgresql",
        "sql_dsn": "host=127.0.0.1 port=1 dbname=x",
        "max_reconnects": 0,
        "pseudonymization_key": SECRET_HMAC_KEY,
    }
    line = _one_error_line(_run(["--config", _write(tmp_path, config)]))
    assert (
        "connecting failed 1 times in a row, more than max_reconnects (0); check `sql_dsn` (OperationalError: " in line
    )


def test_no_key_for_the_default_pseudonymization_is_one_line(tmp_path: Path, xc_db: XcDatabase) -> None:
    config = _pg_config(xc_db)
    del config["pseudonymization_key"]
    line = _one_error_line(_run(["--config", _write(tmp_path, config)]))
    assert "pseudonymizes its personal-data fields by default" in line


def test_jdbc_errors_that_echo_the_url_and_credentials_show_none_of_them(tmp_path: Path) -> None:
    # A stand-in for jaydebeapi whose driver error repeats everything it was given, as careless drivers do.
    (tmp_path / "jaydebeapi.py").write_text(
        "paramstyle = 'qmark'\n"
        "class Error(Exception): pass\n"
        "class DatabaseError(Error): pass\n"
        "class OperationalError(DatabaseError): pass\n"
        "class InterfaceError(Error): pass\n"
        "def connect(jclassname, url, driver_args, jars):\n"
        "    raise DatabaseError(f'java.sql.SQLException: cannot open {url} as {driver_args[0]}:{driver_args[1]}')\n"
    )
    jar = tmp_path / "xjdbc.jar"
    jar.write_bytes(b"PK")
    secrets = {
        "username": "jdbc-user-6612",
        "password": "jdbc-Pass-7781",
        "client_id": "client-4471-abc",
        "consumer": "consumer-8832-xyz",
    }
    config = {"jdbc_jar_path": str(jar), "pseudonymization_key": SECRET_HMAC_KEY, **secrets}
    result = _run(["--config", _write(tmp_path, config)], {"PYTHONPATH": str(tmp_path), "LOGLEVEL": "DEBUG"})
    line = _one_error_line(result)
    assert "cannot connect to Xactly: check `jdbc_url` (DatabaseError: java.sql.SQLException: cannot open " in line
    assert "clientId=***&consumer=*** as ***:***" in line
    _assert_no_secret(result, *secrets.values())
