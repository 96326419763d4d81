"""The live Snowflake account that `@pytest.mark.live` tests run against, from `TARGET_SNOWFLAKE_*` variables.

The important emulator tests take the `account` fixture through `both_accounts`: they run against the emulator and,
when the variables below are set, again against the account (`pytest -m live` runs only those). Without them the
live runs are skipped, naming what is missing, so CI (which has no account) skips them cleanly.

    TARGET_SNOWFLAKE_ACCOUNT, TARGET_SNOWFLAKE_USER, TARGET_SNOWFLAKE_DATABASE       required
    TARGET_SNOWFLAKE_PASSWORD and/or TARGET_SNOWFLAKE_PRIVATE_KEY_PATH or _PRIVATE_KEY  at least one login
    TARGET_SNOWFLAKE_PRIVATE_KEY_PASSPHRASE                                          for an encrypted key
    TARGET_SNOWFLAKE_ROLE, TARGET_SNOWFLAKE_WAREHOUSE                                 optional
    TARGET_SNOWFLAKE_HOST, TARGET_SNOWFLAKE_PORT, TARGET_SNOWFLAKE_PROTOCOL           optional (proxies)
    TARGET_SNOWFLAKE_TEST_SCHEMA_PREFIX                                              default `hl_test_`

Each live test works in a schema of its own, `<prefix><random>`, dropped (CASCADE) when the test ends.
"""

from __future__ import annotations

import base64
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

PREFIX = "TARGET_SNOWFLAKE_"
_PLAIN = ("account", "user", "database", "role", "warehouse", "host", "port", "protocol")
_LOGINS = ("private_key_path", "private_key", "password")  # the first one set is the runs' login: key-pair first
_SECRETS = ("password", "private_key", "private_key_passphrase")

LIVE = pytest.param("live", marks=pytest.mark.live, id="live")
#: Run a test against the emulator and, with `TARGET_SNOWFLAKE_*` set, against the live account.
both_accounts = pytest.mark.parametrize("account", ["emulator", LIVE], indirect=True)
#: Run a test against the live account only (what the emulator cannot show, e.g. a refused login).
live_only = pytest.mark.parametrize("account", [LIVE], indirect=True)


def _env(name: str) -> str | None:
    return os.environ.get(PREFIX + name.upper()) or None


def _plain() -> dict[str, Any]:
    """The settings other than the login, as the target's config types them (`port` is an integer)."""
    config: dict[str, Any] = {n: _env(n) for n in _PLAIN if _env(n)}
    if "port" in config:
        config["port"] = int(config["port"])
    return config


def missing() -> list[str]:
    """The variables a live run still needs (empty: the account is configured)."""
    needed = [PREFIX + n.upper() for n in ("account", "user", "database") if not _env(n)]
    if not any(_env(n) for n in _LOGINS):
        needed.append(f"{PREFIX}PASSWORD or {PREFIX}PRIVATE_KEY_PATH")
    return needed


def skip_reason() -> str:
    return "live Snowflake tests need " + ", ".join(missing()) + " (see target-snowflake/README.md, Live tests)"


def settings() -> dict[str, Any] | None:
    """The runs' settings (one login: key-pair when a key is given), or None when the account is not configured."""
    if missing():
        return None
    config = _plain()
    login = next(n for n in _LOGINS if _env(n))
    config[login] = _env(login)
    if login != "password" and _env("private_key_passphrase"):
        config["private_key_passphrase"] = _env("private_key_passphrase")
    return config


def secrets() -> list[str]:
    """Every secret value given (and each line of a PEM key), to check no output holds one."""
    values = [v for n in _SECRETS if (v := _env(n))]
    path = _env("private_key_path")
    if path and Path(path).expanduser().is_file():
        values.append(Path(path).expanduser().read_text(errors="replace"))
    return [line for v in values for line in v.splitlines() if len(line.strip()) >= 8 and "-----" not in line]


def login_forms() -> dict[str, dict[str, Any]]:
    """Every login the variables allow, by name: password; key-pair from the file, and the same key as PEM text
    and as base64 DER in `private_key` (so each form is proven against Snowflake, which verifies the JWT)."""
    base = _plain()
    forms: dict[str, dict[str, Any]] = {}
    if password := _env("password"):
        forms["password"] = {**base, "password": password}
    passphrase = _env("private_key_passphrase")
    with_passphrase = {"private_key_passphrase": passphrase} if passphrase else {}
    if text := _env("private_key"):
        forms["private_key"] = {**base, "private_key": text, **with_passphrase}
    if path := _env("private_key_path"):
        forms["private_key_path"] = {**base, "private_key_path": path, **with_passphrase}
        data = Path(path).expanduser().read_bytes()
        loader = serialization.load_pem_private_key if b"-----BEGIN" in data else serialization.load_der_private_key
        key = loader(data, passphrase.encode() if passphrase else None)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        der = key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        forms["private_key PEM"] = {**base, "private_key": pem}
        forms["private_key base64 DER"] = {**base, "private_key": base64.b64encode(der).decode()}
    return forms


def schema_name() -> str:
    """A fresh throwaway schema name under the prefix."""
    return f"{os.environ.get(PREFIX + 'TEST_SCHEMA_PREFIX') or 'hl_test_'}{uuid.uuid4().hex[:10]}"
