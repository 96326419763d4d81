"""Which credential the settings give, and the private key decoded once, before any connection is tried.

Snowflake is retiring single-factor passwords, so key-pair is the documented default; a password still works.
Exactly one of `password`, `private_key` (PEM text or base64 DER) and `private_key_path` must be set: two would
leave the user guessing which one was used when a login is refused. Every error here is one line naming the
setting, and never contains key material or a passphrase.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from harborline_singer_shared.redaction import MIN_SECRET_LENGTH

AUTH_SETTINGS = ("password", "private_key", "private_key_path")


class SnowflakeSettingsError(ValueError):
    """The settings cannot work as given: one line naming the settings to fix."""


def auth_setting(config: Mapping[str, Any]) -> str:
    """The one credential setting in use; refuses none or several (and a passphrase without a key)."""
    given = [name for name in AUTH_SETTINGS if config.get(name)]
    if len(given) != 1:
        what = "none of" if not given else "more than one of"
        msg = (
            f"set exactly one of `password`, `private_key` or `private_key_path` ({what} them is set: "
            + (", ".join(f"`{g}`" for g in given) if given else "key-pair authentication is recommended")
            + ")"
        )
        raise SnowflakeSettingsError(msg)
    if config.get("private_key_passphrase") and given[0] == "password":
        msg = "`private_key_passphrase` is set but no private key is: set `private_key` or `private_key_path`"
        raise SnowflakeSettingsError(msg)
    return given[0]


def _key_bytes(config: Mapping[str, Any], setting: str) -> tuple[bytes, bool]:
    """(raw key bytes, whether they are PEM) from `private_key` or `private_key_path`."""
    if setting == "private_key_path":
        path = Path(str(config[setting])).expanduser()
        try:
            data = path.read_bytes()
        except OSError as exc:
            msg = f"`private_key_path`: cannot read {str(path)!r}: {exc.strerror or type(exc).__name__}"
            raise SnowflakeSettingsError(msg) from None
        return data, b"-----BEGIN" in data
    text = str(config[setting]).strip()
    if "-----BEGIN" in text:
        return text.encode("utf-8"), True
    try:
        return base64.b64decode("".join(text.split()), validate=True), False
    except (binascii.Error, ValueError):
        msg = "`private_key` is neither PEM text (-----BEGIN ...) nor base64-encoded DER"
        raise SnowflakeSettingsError(msg) from None


def load_private_key(config: Mapping[str, Any], setting: str) -> bytes:
    """The private key as unencrypted PKCS#8 DER bytes, the form the connector takes as `private_key`.

    Decoding here (not in the connector) turns a wrong passphrase or a malformed key into a line naming the
    setting, before any network traffic.
    """
    data, is_pem = _key_bytes(config, setting)
    passphrase = config.get("private_key_passphrase")
    password = str(passphrase).encode("utf-8") if passphrase else None
    load = serialization.load_pem_private_key if is_pem else serialization.load_der_private_key
    try:
        key = load(data, password=password)
    except TypeError:
        # cryptography: "Password was not given but private key is encrypted", or the reverse.
        if password is None:
            msg = f"the key in `{setting}` is encrypted: set `private_key_passphrase`"
        else:
            msg = f"the key in `{setting}` is not encrypted: remove `private_key_passphrase`"
        raise SnowflakeSettingsError(msg) from None
    except (ValueError, binascii.Error):
        if password is not None:
            msg = f"cannot decrypt the key in `{setting}` with `private_key_passphrase` (wrong passphrase or not a key)"
        else:
            msg = f"`{setting}` does not hold a valid private key (PEM or DER, PKCS#8 or PKCS#1)"
        raise SnowflakeSettingsError(msg) from None
    except Exception:  # noqa: BLE001 - e.g. an unsupported algorithm: still one line, never the key
        msg = f"`{setting}` does not hold a private key this connector can use"
        raise SnowflakeSettingsError(msg) from None
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        msg = f"the key in `{setting}` is a {type(key).__name__}: Snowflake key-pair logins need an RSA (or EC) key"
        raise SnowflakeSettingsError(msg)
    return key.private_bytes(
        encoding=serialization.Encoding.DER,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )


def credential_kwargs(config: Mapping[str, Any]) -> dict[str, Any]:
    """Connector arguments for the credential in use (`password`, or `private_key` with the JWT authenticator)."""
    setting = auth_setting(config)
    if setting == "password":
        return {"password": str(config["password"])}
    return {"private_key": load_private_key(config, setting), "authenticator": "SNOWFLAKE_JWT"}


def secrets_of(config: Mapping[str, Any]) -> list[str]:
    """Setting values that must never appear in a message (checked by `redact`)."""
    return [str(config[k]) for k in ("password", "private_key", "private_key_passphrase") if config.get(k)]


def redact(text: str, config: Mapping[str, Any]) -> str:
    """`text` with every secret setting value (and every line of a PEM key) replaced by `***`."""
    pieces: set[str] = set()
    for secret in secrets_of(config):
        pieces.add(secret)
        pieces.update(line.strip() for line in secret.splitlines() if len(line.strip()) >= 8)
    # As the shared log filter: replacing a one- or two-character secret would mangle every word and hide nothing.
    for piece in sorted((p for p in pieces if len(p) >= MIN_SECRET_LENGTH), key=len, reverse=True):
        text = text.replace(piece, "***")
    return text
