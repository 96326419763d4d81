"""Settings to connection: exactly one credential, key-pair in every form, one-line errors without secrets."""

from __future__ import annotations

import base64
import socket
import uuid
from pathlib import Path
from typing import Any

import pytest
import sf_live
import sf_server
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sf_helpers import TEST_TIMEOUTS, session_parameters_for_tests
from sf_live import both_accounts, live_only
from snowflake.connector import errors

from harborline_target_snowflake import connector
from harborline_target_snowflake.auth import SnowflakeSettingsError, credential_kwargs, redact

PASSPHRASE = "correct horse battery staple"
BASE = {"account": "acme-xy12345", "user": "LOADER"}


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _der(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _pem(key: rsa.RSAPrivateKey, passphrase: str | None = None) -> str:
    enc = serialization.BestAvailableEncryption(passphrase.encode()) if passphrase else serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc).decode()


def _settings_error(config: dict[str, Any]) -> str:
    with pytest.raises(SnowflakeSettingsError) as info:
        credential_kwargs(config)
    text = str(info.value)
    assert "\n" not in text
    return text


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({}, "none of them"),
        ({"password": "pw-secret-1", "private_key_path": "/k.p8"}, "`password`, `private_key_path`"),
        ({"private_key": "x", "private_key_path": "/k.p8"}, "`private_key`, `private_key_path`"),
    ],
)
def test_exactly_one_credential(extra: dict[str, Any], named: str) -> None:
    text = _settings_error({**BASE, **extra})
    assert "exactly one of `password`, `private_key` or `private_key_path`" in text
    assert named in text
    assert "pw-secret-1" not in text


def test_a_passphrase_without_a_key_is_refused() -> None:
    text = _settings_error({**BASE, "password": "pw", "private_key_passphrase": PASSPHRASE})
    assert "`private_key_passphrase`" in text
    assert PASSPHRASE not in text


def test_every_key_form_gives_the_same_der_key(key: rsa.RSAPrivateKey, tmp_path: Path) -> None:
    path = tmp_path / "rsa_key.p8"
    path.write_text(_pem(key, PASSPHRASE))
    der_path = tmp_path / "rsa_key.der"
    der_path.write_bytes(_der(key))
    forms = [
        {"private_key": _pem(key)},
        {"private_key": _pem(key, PASSPHRASE), "private_key_passphrase": PASSPHRASE},
        {"private_key": base64.b64encode(_der(key)).decode()},
        {"private_key_path": str(path), "private_key_passphrase": PASSPHRASE},
        {"private_key_path": str(der_path)},
    ]
    for form in forms:
        kwargs = credential_kwargs({**BASE, **form})
        assert kwargs == {"private_key": _der(key), "authenticator": "SNOWFLAKE_JWT"}


def test_key_errors_name_the_setting_and_never_the_key(key: rsa.RSAPrivateKey, tmp_path: Path) -> None:
    pem = _pem(key, PASSPHRASE)
    path = tmp_path / "k.p8"
    path.write_text(pem)
    cases = [
        ({"private_key": pem, "private_key_passphrase": "Tr0ub4dor&3"}, "cannot decrypt the key in `private_key`"),
        ({"private_key": pem}, "the key in `private_key` is encrypted: set `private_key_passphrase`"),
        ({"private_key": _pem(key), "private_key_passphrase": PASSPHRASE}, "is not encrypted"),
        ({"private_key": "not base64 at all!"}, "`private_key` is neither PEM text"),
        ({"private_key": base64.b64encode(b"garbage" * 20).decode()}, "`private_key` does not hold a valid"),
        ({"private_key_path": str(tmp_path / "missing.p8")}, "`private_key_path`: cannot read"),
        ({"private_key_path": str(path), "private_key_passphrase": "nope nope"}, "key in `private_key_path`"),
    ]
    body = pem.splitlines()[1]
    for extra, expected in cases:
        text = _settings_error({**BASE, **extra})
        assert expected in text
        for secret in (body, PASSPHRASE, "Tr0ub4dor&3"):
            assert secret not in text


def test_connect_kwargs_pass_host_port_protocol_and_session_parameters(key: rsa.RSAPrivateKey) -> None:
    kwargs = connector.connect_kwargs(
        {**BASE, "private_key": _pem(key), "role": "LOADER_ROLE", "warehouse": "LOAD_WH", "database": "RAW",
         "host": "proxy.internal", "port": "8443", "protocol": "https", "query_tag": "meltano"}
    )  # fmt: skip
    assert (kwargs["host"], kwargs["port"], kwargs["protocol"]) == ("proxy.internal", 8443, "https")
    assert (kwargs["role"], kwargs["warehouse"], kwargs["database"]) == ("LOADER_ROLE", "LOAD_WH", "RAW")
    assert kwargs["session_parameters"] == {
        "TIMEZONE": "UTC",
        "QUOTED_IDENTIFIERS_IGNORE_CASE": False,
        "QUERY_TAG": "meltano",
    }
    assert kwargs["client_session_keep_alive"] is True
    assert "password" not in kwargs


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"user": "u", "password": "p"}, "`account` is not set"),
        ({"password": "p"}, "`account` and `user` are not set"),
        ({**BASE, "password": "p", "port": "https"}, "`port` must be a number"),
    ],
)
def test_connect_settings_errors(config: dict[str, Any], message: str) -> None:
    with pytest.raises(SnowflakeSettingsError, match=message):
        connector.connect_kwargs(config)


def _login_forms(account: dict[str, Any], key: rsa.RSAPrivateKey, tmp_path: Path) -> dict[str, dict[str, Any]]:
    """Every credential form: on the emulator made up here, on a live account from TARGET_SNOWFLAKE_* (sf_live)."""
    if account["account"] != sf_server.ACCOUNT:
        return sf_live.login_forms()
    base = {k: v for k, v in account.items() if k != "password"}
    path = tmp_path / "rsa_key.p8"
    path.write_text(_pem(key, PASSPHRASE))
    return {
        "password": account,
        "private_key PEM": {**base, "private_key": _pem(key, PASSPHRASE), "private_key_passphrase": PASSPHRASE},
        "private_key base64 DER": {**base, "private_key": base64.b64encode(_der(key)).decode()},
        "private_key_path": {**base, "private_key_path": str(path), "private_key_passphrase": PASSPHRASE},
    }


@both_accounts
def test_each_login_form_logs_in(account: dict[str, Any], key: rsa.RSAPrivateKey, tmp_path: Path) -> None:
    """Password and key-pair (PEM, base64 DER, a file with a passphrase) log in and run a statement.

    The emulator verifies neither passwords nor JWTs (it proves the connector takes our key); a live account does.
    """
    live = account["account"] != sf_server.ACCOUNT
    for name, config in _login_forms(account, key, tmp_path).items():
        params = session_parameters_for_tests(config)
        conn = connector.connect(config, session_parameters=params, **({} if live else TEST_TIMEOUTS))
        try:
            cur = conn.cursor()
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,), name
        finally:
            conn.close()


def test_logging_in_probes_no_cloud_metadata_or_identity_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    """The connector's platform detection would ask AWS/Azure/GCP metadata services and AWS STS at every login."""
    from snowflake.connector import platform_detection  # noqa: PLC0415

    probed: list[str] = []
    for probe in ("is_ec2_instance", "has_aws_identity", "is_azure_vm", "has_azure_managed_identity", "is_gce_vm",
                  "has_gcp_identity"):  # fmt: skip
        monkeypatch.setattr(platform_detection, probe, lambda *_a, _n=probe, **_k: probed.append(_n))
    platform_detection.detect_platforms.cache_clear()
    config = {**sf_server.settings(), "user": f"u{uuid.uuid4().hex[:8]}"}
    conn = connector.connect(config, session_parameters=session_parameters_for_tests(config), **TEST_TIMEOUTS)
    conn.close()
    assert probed == []


@live_only
def test_a_login_the_account_refuses_names_user_and_the_auth_setting(
    account: dict[str, Any], key: rsa.RSAPrivateKey
) -> None:
    """A wrong password, or a key Snowflake does not know for the user: one line, never the secret."""
    wrong_password = f"wrong-{uuid.uuid4().hex}"
    unknown_key = _pem(key)  # generated by the test: never registered with the user
    credentials = {"password", "private_key", "private_key_path", "private_key_passphrase"}
    base = {k: v for k, v in account.items() if k not in credentials}
    refused = {"password": {**base, "password": wrong_password}, "private_key": {**base, "private_key": unknown_key}}
    for auth, config in refused.items():
        with pytest.raises(connector.SnowflakeConnectError) as info:
            connector.connect(config)
        text = str(info.value)
        assert "\n" not in text
        assert f"user {account['user']!r}, auth `{auth}`" in text
        assert text.endswith(f"check `user` and `{auth}`"), text
        for secret in (wrong_password, *unknown_key.splitlines()[1:-1], *sf_live.secrets()):
            assert secret not in text


def test_an_unreachable_server_is_one_line_naming_what_to_check() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again below: nothing listens there
    config = {**BASE, "password": "pw-secret-2", "host": "127.0.0.1", "port": port, "protocol": "http"}
    with pytest.raises(connector.SnowflakeConnectError) as info:
        connector.connect(config, login_timeout=3, network_timeout=3, socket_timeout=2)
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith("cannot connect to Snowflake (account 'acme-xy12345', user 'LOADER', auth `password`")
    assert "check `account` and `host` and `port` and `protocol`" in text
    assert "pw-secret-2" not in text


def test_a_refused_login_names_user_and_the_auth_setting() -> None:
    config = {**BASE, "password": "pw-secret-3"}
    exc = errors.DatabaseError(msg="Incorrect username or password was specified (pw-secret-3).", errno=390100)
    text = connector.describe_connect_error(exc, config)
    assert text.endswith("check `user` and `password`")
    assert "pw-secret-3" not in text


def test_redact_removes_every_line_of_a_pem_key(key: rsa.RSAPrivateKey) -> None:
    pem = _pem(key)
    echoed = "server said: " + pem.splitlines()[3]
    assert pem.splitlines()[3] not in redact(echoed, {"private_key": pem})


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (errors.ProgrammingError(msg="lock wait", errno=625, sqlstate="57014"), True),
        (errors.ProgrammingError(msg="statement timeout", errno=630, sqlstate="57014"), True),
        (errors.OperationalError(msg="connection reset", errno=250003), True),
        (errors.DatabaseError(msg="session expired", errno=390114), True),
        (errors.InternalServerError(msg="HTTP 500"), True),
        (errors.ServiceUnavailableError(msg="HTTP 503"), True),
        (errors.ProgrammingError(msg="Numeric value 'x' is not recognized", errno=100038, sqlstate="22018"), False),
        (errors.ProgrammingError(msg="Object does not exist", errno=2003, sqlstate="02000"), False),
        (errors.ProgrammingError(msg="Insufficient privileges", errno=3001, sqlstate="42501"), False),
        (ValueError("bug"), False),
    ],
)
def test_transient_errors(exc: BaseException, transient: bool) -> None:
    assert connector.is_transient(exc) is transient
