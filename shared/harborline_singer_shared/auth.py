# Copyright 2026 The Harborline connectors authors
# SPDX-License-Identifier: Apache-2.0
"""Authenticators for the Harborline taps, built on the SDK's own.

The SDK classes (:class:`~singer_sdk.authenticators.BasicAuthenticator`,
:class:`~singer_sdk.authenticators.BearerTokenAuthenticator`,
:class:`~singer_sdk.authenticators.APIKeyAuthenticator`) already do the header work and are not
deprecated in 0.54; only their ``stream=`` argument and ``create_for_stream`` are, so these
subclasses never pass a stream. What this module adds is what every tap would otherwise repeat:
a repr that can never leak a credential, a clear configuration error naming the missing setting
(instead of a ``KeyError`` or a request sent with ``Bearer None``), and one-line factories.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from singer_sdk.authenticators import (
    APIKeyAuthenticator,
    BasicAuthenticator,
    BearerTokenAuthenticator,
)
from singer_sdk.exceptions import ConfigValidationError

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "ApiKeyHeaderAuth",
    "BasicAuth",
    "BearerAuth",
    "api_key_header_auth",
    "api_key_header_auth_from_config",
    "basic_auth",
    "basic_auth_from_config",
    "bearer_auth",
    "bearer_auth_from_config",
    "require_setting",
]


def require_setting(config: Mapping[str, Any], setting: str) -> str:
    """Return a non-empty string setting, or fail naming the setting (never its value).

    Args:
        config: The tap config.
        setting: The name of the setting that holds the credential.

    Returns:
        The value with surrounding whitespace removed (pasted keys often carry a newline).

    Raises:
        ConfigValidationError: The setting is missing, empty or not a string.
    """
    value = config.get(setting)
    if not isinstance(value, str) or not value.strip():
        raise ConfigValidationError(
            f"The `{setting}` setting is required for authentication and is missing or empty.",
            errors=[f"`{setting}` is missing or empty"],
        )
    return value.strip()


def _require_value(value: str, what: str) -> str:
    if not isinstance(value, str) or not value:
        # The message names the argument only; there is no value to leak.
        raise ValueError(f"{what} must be a non-empty string")
    return value


class _RedactedReprMixin:
    """Gives authenticators a repr naming only the scheme, so logs and tracebacks stay clean."""

    _describe: str = ""

    def __repr__(self) -> str:
        detail = f" {self._describe}" if self._describe else ""
        return f"<{type(self).__name__}{detail} credentials=***>"

    def __str__(self) -> str:
        return repr(self)


class BasicAuth(_RedactedReprMixin, BasicAuthenticator):
    """HTTP basic auth (``Authorization: Basic base64(user:password)``).

    ZenGRC's API key id / secret pair is sent this way, with the id as the username.
    """

    def __init__(self, username: str, password: str) -> None:
        super().__init__(
            username=_require_value(username, "username"),
            password=_require_value(password, "password"),
        )


class BearerAuth(_RedactedReprMixin, BearerTokenAuthenticator):
    """``Authorization: Bearer <token>``, the common static-token scheme."""

    def __init__(self, token: str) -> None:
        super().__init__(token=_require_value(token, "token"))


class ApiKeyHeaderAuth(_RedactedReprMixin, APIKeyAuthenticator):
    """An API key sent in a custom header, optionally with a prefix.

    Examples: ``X-API-Key: <key>``; ``Authorization: Token <key>`` (header ``Authorization``,
    prefix ``Token``). Query-string keys are deliberately not offered: URLs end up in logs,
    proxies and error messages.
    """

    def __init__(self, key: str, *, header: str = "X-API-Key", prefix: str | None = None) -> None:
        key = _require_value(key, "key")
        header = _require_value(header, "header")
        value = f"{prefix} {key}" if prefix else key
        super().__init__(key=header, value=value, location="header")
        self.header = header
        self.prefix = prefix
        self._describe = f"header={header!r}" + (f" prefix={prefix!r}" if prefix else "")


def basic_auth(username: str, password: str) -> BasicAuth:
    """Return a basic authenticator (a factory for symmetry with the config variants)."""
    return BasicAuth(username, password)


def bearer_auth(token: str) -> BearerAuth:
    """Return a bearer-token authenticator."""
    return BearerAuth(token)


def api_key_header_auth(key: str, *, header: str = "X-API-Key", prefix: str | None = None) -> ApiKeyHeaderAuth:
    """Return an API-key header authenticator."""
    return ApiKeyHeaderAuth(key, header=header, prefix=prefix)


def basic_auth_from_config(
    config: Mapping[str, Any],
    username_setting: str = "username",
    password_setting: str = "password",  # noqa: S107 - a setting name, not a password
) -> BasicAuth:
    """Build basic auth from two settings, e.g. ``("api_key_id", "api_key_secret")`` for ZenGRC.

    A tap's client.py then needs one line inside its ``authenticator`` property::

        return basic_auth_from_config(self.config, "api_key_id", "api_key_secret")
    """
    return BasicAuth(require_setting(config, username_setting), require_setting(config, password_setting))


def bearer_auth_from_config(
    config: Mapping[str, Any],
    token_setting: str = "api_token",  # noqa: S107 - a setting name, not a token
) -> BearerAuth:
    """Build bearer auth from the setting holding the token."""
    return BearerAuth(require_setting(config, token_setting))


def api_key_header_auth_from_config(
    config: Mapping[str, Any],
    key_setting: str = "api_key",
    *,
    header: str = "X-API-Key",
    prefix: str | None = None,
) -> ApiKeyHeaderAuth:
    """Build API-key header auth from the setting holding the key."""
    return ApiKeyHeaderAuth(require_setting(config, key_setting), header=header, prefix=prefix)
