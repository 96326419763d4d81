"""The SOAP object streams against a local SOAP server shaped like the Connect SOAP API (tests/fake_soap.py)."""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from conftest import KEY, XcDatabase, run_tap
from fake_soap import EXACT, OBJECTS, PASSWORD, USERNAME, FakeXactlySoap, wsdl
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.testing import SuiteConfig, get_tap_test_class

from harborline_tap_xactly.client import LoginRefusedError
from harborline_tap_xactly.soap import SoapError, _OnlyTheWsdlTransport, stream_name_of
from harborline_tap_xactly.tap import TapXactly

_API = FakeXactlySoap().start()
atexit.register(_API.stop)

SUITE_CONFIG = {
    "sql_driver": "none",
    "wsdl_url": _API.wsdl_url,
    "username": USERNAME,
    "password": PASSWORD,
    "pseudonymization_key": KEY,
}

TestTapXactlySoap = get_tap_test_class(
    tap_class=TapXactly,
    config=SUITE_CONFIG,
    suite_config=SuiteConfig(ignore_no_records=False, max_records_limit=None),
)


@pytest.fixture
def fake() -> Any:
    with FakeXactlySoap() as api:
        yield api


def _config(fake: FakeXactlySoap, **extra: Any) -> dict[str, Any]:
    return {**SUITE_CONFIG, "wsdl_url": fake.wsdl_url, **extra}


def test_every_default_object_is_a_full_table_stream_keyed_on_id(fake: FakeXactlySoap) -> None:
    result = run_tap(_config(fake))
    assert sorted(fake.searches) == sorted(OBJECTS)
    for name in OBJECTS:
        stream = stream_name_of(name)
        assert [r["id"] for r in result.records(stream)] == [1, 2, 3]
        assert result.tap.streams[stream].primary_keys == ["id"]
        assert result.tap.streams[stream].replication_method == "FULL_TABLE"
    assert stream_name_of("CompOrderItemWSO") == "soap_comp_order_item"
    credit = result.records("soap_credit")[0]
    assert credit["amount"] == EXACT
    assert credit["modifiedDate"] == "2024-02-01T10:30:00+00:00"
    person = result.records("soap_person")[0]
    assert all(person[f].startswith("hl1:1:") for f in ("firstName", "middleName", "lastName", "email"))
    assert person["employeeId"] == "employeeId 1"
    assert fake.logins == 1


def test_a_session_expiring_mid_run_logs_in_again_and_loses_nothing(fake: FakeXactlySoap) -> None:
    fake.expire_after = 4
    result = run_tap(_config(fake))
    assert fake.logins == 2
    assert sorted(fake.searches) == sorted(OBJECTS)
    assert all(len(result.records(stream_name_of(n))) == 3 for n in OBJECTS)


def test_a_session_refused_even_after_a_new_login_fails_in_one_line_naming_the_stream(fake: FakeXactlySoap) -> None:
    fake.refuse_sessions = True
    result = run_tap(_config(fake, soap_objects=["TitleWSO"]), expect_error=True)
    assert isinstance(result.error, SoapError)
    assert str(result.error) == "SOAP search failed: fault 'INVALID_SESSION: the session is invalid or has expired'"
    assert getattr(result.error, "harborline_stream", None) == "soap_title"
    assert fake.logins == 2


def test_bad_credentials_are_a_soap_fault_naming_username_and_password(fake: FakeXactlySoap) -> None:
    with pytest.raises(LoginRefusedError, match=r"check `username`/`password` \(fault: LOGIN_FAILED"):
        run_tap(_config(fake, password="zz-wrong"))


def test_an_object_the_wsdl_does_not_define_is_refused_naming_the_setting(fake: FakeXactlySoap) -> None:
    with pytest.raises(ConfigValidationError, match=r"Setting 'soap_objects' names 'QuotaWSO', which the WSDL"):
        TapXactly(config=_config(fake, soap_objects=["PersonWSO", "QuotaWSO"]))


def test_a_wsdl_from_a_file_works_and_its_imports_are_never_fetched(fake: FakeXactlySoap, tmp_path: Path) -> None:
    path = tmp_path / "Xactly.wsdl"
    path.write_text(wsdl(fake.url))
    result = run_tap({**_config(fake, soap_objects=["TitleWSO"]), "wsdl_url": None, "wsdl_path": str(path)})
    assert len(result.records("soap_title")) == 3
    importing = tmp_path / "importing.wsdl"
    importing.write_text(
        wsdl(fake.url).replace(
            '<xsd:schema targetNamespace="urn:harborline:fake:xactly" elementFormDefault="qualified">',
            '<xsd:schema targetNamespace="urn:harborline:fake:xactly" elementFormDefault="qualified">'
            '<xsd:import namespace="urn:x" schemaLocation="http://127.0.0.1:9/evil.xsd"/>',
        )
    )
    with pytest.raises(
        SoapError, match=r"^Setting 'wsdl_path': the WSDL cannot be loaded \(ExternalReferenceForbidden"
    ):
        TapXactly(config={**SUITE_CONFIG, "wsdl_url": None, "wsdl_path": str(importing)})


def test_a_wsdl_with_a_dtd_is_refused(fake: FakeXactlySoap, tmp_path: Path) -> None:
    path = tmp_path / "entity.wsdl"
    text = wsdl(fake.url).replace(
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<?xml version="1.0" encoding="UTF-8"?><!DOCTYPE d [<!ENTITY e SYSTEM "file:///etc/passwd">]>',
    )
    path.write_text(text)
    with pytest.raises(SoapError, match=r"^Setting 'wsdl_path': the WSDL cannot be loaded \(DTDForbidden"):
        TapXactly(config={**SUITE_CONFIG, "wsdl_url": None, "wsdl_path": str(path)})


def test_cli_with_debug_logs_shows_no_soap_password_and_a_bad_login_is_one_line(
    fake: FakeXactlySoap, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAP_XACTLY_", "HARBORLINE_"))}
    env["LOGLEVEL"] = "DEBUG"
    config = tmp_path / "config.json"
    config.write_text(json.dumps(_config(fake, soap_objects=["PersonWSO"])))
    command = [sys.executable, "-m", "harborline_tap_xactly", "--config", str(config)]
    good = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert good.returncode == 0, good.stderr[-2000:]
    records = [json.loads(line, parse_float=Decimal) for line in good.stdout.splitlines()]
    assert sum(1 for m in records if m["type"] == "RECORD") == 3
    for secret in (PASSWORD, USERNAME, KEY, "person1@example.com"):
        assert secret not in good.stdout + good.stderr
    config.write_text(json.dumps(_config(fake, password="zz-Bad-Pass-1234")))
    bad = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert bad.returncode == 1
    assert "Traceback" not in bad.stderr
    errors = [line for line in bad.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1
    assert "Xactly refused the SOAP login: check `username`/`password` (fault: LOGIN_FAILED" in errors[0]
    assert "zz-Bad-Pass-1234" not in bad.stderr + bad.stdout


def test_the_transport_itself_refuses_any_document_but_the_wsdl() -> None:
    transport = _OnlyTheWsdlTransport("http://127.0.0.1:9/Xactly.wsdl")
    with pytest.raises(SoapError, match="refers to another document"):
        transport.load("http://127.0.0.1:9/evil.xsd")


def test_sql_and_soap_streams_side_by_side_both_pseudonymized_by_default(
    fake: FakeXactlySoap, config: dict[str, Any], xc_db: XcDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fake_soap  # noqa: PLC0415

    # One login for both transports: the SOAP server accepts the SQL reader's credentials.
    monkeypatch.setattr(fake_soap, "USERNAME", config["username"])
    fake.password = config["password"]
    result = run_tap({**config, "wsdl_url": fake.wsdl_url, "soap_objects": ["PersonWSO"]})
    assert all(r["email"].startswith("hl1:1:") for r in result.records("soap_person"))
    assert all(r["EMAIL"].startswith("hl1:1:") for r in result.records("xc_user"))
    assert len(result.records("xc_credit")) == 3
