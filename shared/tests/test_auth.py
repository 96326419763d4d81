# Copyright 2026 The Harborline connectors authors
# SPDX-License-Identifier: Apache-2.0
"""Tests of the authenticators: right headers, no leaked secrets, clear config errors."""

from __future__ import annotations

import base64
import warnings

import pytest
import requests
import requests_mock
from singer_sdk.authenticators import (
    APIKeyAuthenticator,
    BasicAuthenticator,
    BearerTokenAuthenticator,
)
from singer_sdk.exceptions import ConfigValidationError

from harborline_singer_shared.auth import (
    ApiKeyHeaderAuth,
    BasicAuth,
    BearerAuth,
    api_key_header_auth,
    api_key_header_auth_from_config,
    basic_auth,
    basic_auth_from_config,
    bearer_auth,
    bearer_auth_from_config,
    require_setting,
)

URL = "https://api.example.com/v1/things"
SECRET = "s3cr3t-VALUE-xyz"


def apply(auth) -> requests.PreparedRequest:
    request = requests.Request("GET", URL, headers={"Accept": "application/json"}).prepare()
    return auth(request)


def test_basic_auth_header():
    request = apply(basic_auth("key-id", SECRET))
    expected = base64.b64encode(f"key-id:{SECRET}".encode()).decode()
    assert request.headers["Authorization"] == f"Basic {expected}"
    assert request.headers["Accept"] == "application/json"
    assert request.url == URL  # nothing in the query string


def test_basic_auth_from_config_zengrc_style():
    config = {"api_key_id": "id-1", "api_key_secret": f" {SECRET}\n"}
    auth = basic_auth_from_config(config, "api_key_id", "api_key_secret")
    assert isinstance(auth, BasicAuthenticator)
    encoded = apply(auth).headers["Authorization"].removeprefix("Basic ")
    assert base64.b64decode(encoded).decode() == f"id-1:{SECRET}"  # whitespace stripped


def test_bearer_auth_header():
    auth = bearer_auth(SECRET)
    assert isinstance(auth, BearerTokenAuthenticator)
    assert apply(auth).headers["Authorization"] == f"Bearer {SECRET}"


def test_bearer_auth_from_config_default_setting():
    auth = bearer_auth_from_config({"api_token": SECRET})
    assert apply(auth).headers["Authorization"] == f"Bearer {SECRET}"


def test_api_key_header_default_header():
    auth = api_key_header_auth(SECRET)
    assert isinstance(auth, APIKeyAuthenticator)
    request = apply(auth)
    assert request.headers["X-API-Key"] == SECRET
    assert "Authorization" not in request.headers
    assert SECRET not in request.url


def test_api_key_header_custom_header_and_prefix():
    auth = api_key_header_auth_from_config({"api_key": SECRET}, "api_key", header="Authorization", prefix="Token")
    assert apply(auth).headers["Authorization"] == f"Token {SECRET}"
    assert auth.header == "Authorization"
    assert auth.prefix == "Token"


def test_api_key_header_no_prefix_when_empty():
    auth = ApiKeyHeaderAuth(SECRET, header="X-Custom", prefix="")
    assert apply(auth).headers["X-Custom"] == SECRET


@pytest.mark.parametrize(
    "auth",
    [
        BasicAuth("user-name", SECRET),
        BearerAuth(SECRET),
        ApiKeyHeaderAuth(SECRET, header="X-Key", prefix="Key"),
    ],
    ids=["basic", "bearer", "api-key"],
)
def test_repr_and_str_never_contain_credentials(auth):
    encoded = base64.b64encode(f"user-name:{SECRET}".encode()).decode()
    for text in (repr(auth), str(auth), f"{auth}", f"{auth!r}", repr([auth])):
        assert SECRET not in text
        assert encoded not in text
        assert "user-name" not in text
        assert "***" in text
        assert type(auth).__name__ in text


def test_api_key_repr_names_header_for_debugging():
    text = repr(ApiKeyHeaderAuth(SECRET, header="X-Key", prefix="Key"))
    assert "X-Key" in text
    assert "Key" in text


@pytest.mark.parametrize(
    "config",
    [{}, {"api_token": ""}, {"api_token": "   "}, {"api_token": None}, {"api_token": 123}],
)
def test_missing_setting_names_the_setting(config):
    with pytest.raises(ConfigValidationError, match="`api_token`") as info:
        bearer_auth_from_config(config, "api_token")
    assert info.value.errors == ["`api_token` is missing or empty"]


def test_missing_password_setting_named():
    with pytest.raises(ConfigValidationError, match="`api_key_secret`"):
        basic_auth_from_config({"api_key_id": "x"}, "api_key_id", "api_key_secret")


def test_config_error_does_not_echo_other_values():
    with pytest.raises(ConfigValidationError) as info:
        basic_auth_from_config({"api_key_id": SECRET}, "api_key_id", "api_key_secret")
    assert SECRET not in str(info.value)


def test_require_setting_strips():
    assert require_setting({"k": "  v \n"}, "k") == "v"


@pytest.mark.parametrize(
    "factory",
    [
        lambda: BasicAuth("", "x"),
        lambda: BasicAuth("x", ""),
        lambda: BearerAuth(""),
        lambda: ApiKeyHeaderAuth(""),
        lambda: ApiKeyHeaderAuth("k", header=""),
    ],
)
def test_empty_credentials_rejected(factory):
    with pytest.raises(ValueError):
        factory()


def test_no_sdk_deprecation_warnings():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        BasicAuth("u", "p")
        BearerAuth("t")
        ApiKeyHeaderAuth("k")
    assert caught == []


def test_authenticators_work_as_requests_session_auth():
    with requests_mock.Mocker() as m, requests.Session() as session:
        m.get(URL, status_code=200)
        session.auth = bearer_auth(SECRET)
        session.get(URL, timeout=5)
        session.auth = basic_auth("u", "p")
        session.get(URL, timeout=5)
    assert m.request_history[0].headers["Authorization"] == f"Bearer {SECRET}"
    assert m.request_history[1].headers["Authorization"].startswith("Basic ")
