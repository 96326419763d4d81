from __future__ import annotations

import io
import logging
import uuid

import pytest
from singer_sdk import typing as th

from harborline_singer_shared.redaction import (
    REDACTED,
    SecretRedactionFilter,
    install_secret_redaction,
    secret_values_from_config,
)

SECRET = "s3cr3t-api-token-value"


@pytest.fixture
def logger_and_stream():
    """An isolated logger (no propagation) with a handler writing into a buffer."""
    logger = logging.getLogger(f"test-redaction-{uuid.uuid4().hex}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.addHandler(handler)
    yield logger, stream
    logger.removeHandler(handler)


def test_secret_in_message_and_args_is_redacted(logger_and_stream):
    logger, stream = logger_and_stream
    install_secret_redaction([SECRET], logger)
    logger.info("token=%s", SECRET)
    logger.info(f"inline {SECRET} and again {SECRET}")  # noqa: G004 - the careless case
    out = stream.getvalue()
    assert SECRET not in out
    assert out.count(REDACTED) == 3
    assert "token=***" in out


def test_exception_text_is_redacted(logger_and_stream):
    logger, stream = logger_and_stream
    install_secret_redaction([SECRET], logger)

    def fail():
        raise RuntimeError(f"auth failed for key {SECRET}")

    try:
        fail()
    except RuntimeError:
        logger.exception("request failed")
    out = stream.getvalue()
    assert "RuntimeError" in out
    assert SECRET not in out
    assert "auth failed for key ***" in out


def test_extra_fields_are_redacted(logger_and_stream):
    logger, stream = logger_and_stream
    handler = logger.handlers[0]
    handler.setFormatter(logging.Formatter("%(message)s %(url)s"))
    install_secret_redaction([SECRET], logger)
    logger.warning("calling", extra={"url": f"https://api/?key={SECRET}"})
    assert stream.getvalue().strip() == "calling https://api/?key=***"


def test_child_logger_records_are_redacted_by_handler_filter(logger_and_stream):
    logger, stream = logger_and_stream
    install_secret_redaction([SECRET], logger)
    logger.getChild("stream").error("child says %s", SECRET)
    assert SECRET not in stream.getvalue()
    assert "child says ***" in stream.getvalue()


def test_short_and_empty_secrets_are_ignored(logger_and_stream):
    logger, stream = logger_and_stream
    redaction = install_secret_redaction([None, "", "abc", "on"], logger)
    assert redaction.secret_count == 0
    logger.info("abc on")
    assert stream.getvalue().strip() == "INFO abc on"


def test_idempotent_and_secret_set_grows(logger_and_stream):
    logger, stream = logger_and_stream
    first = install_secret_redaction([SECRET], logger)
    second = install_secret_redaction(["other-secret", SECRET], logger)
    assert first is second
    assert [f for f in logger.filters if isinstance(f, SecretRedactionFilter)] == [first]
    handler = logger.handlers[0]
    assert [f for f in handler.filters if isinstance(f, SecretRedactionFilter)] == [first]
    assert first.secret_count == 2
    logger.info("%s %s", SECRET, "other-secret")
    assert stream.getvalue().strip() == "INFO *** ***"


def test_longest_secret_wins_when_overlapping():
    redaction = SecretRedactionFilter(["abcd", "abcdefgh"])
    assert redaction.redact("xx abcdefgh yy abcd") == "xx *** yy ***"
    assert "abcd" not in repr(redaction)


def test_handler_added_later_gets_filter_on_second_install(logger_and_stream):
    logger, _ = logger_and_stream
    install_secret_redaction([SECRET], logger)
    late = io.StringIO()
    late_handler = logging.StreamHandler(late)
    logger.addHandler(late_handler)
    try:
        install_secret_redaction([], logger)
        logger.getChild("x").info("late %s", SECRET)
    finally:
        logger.removeHandler(late_handler)
    assert SECRET not in late.getvalue()


def test_regex_metacharacters_in_secret(logger_and_stream):
    logger, stream = logger_and_stream
    tricky = "p@ss.w*rd+(1)"
    install_secret_redaction([tricky], logger)
    logger.info("pw %s; near miss p@ssXw*rd+(1)", tricky)
    assert stream.getvalue().strip() == "INFO pw ***; near miss p@ssXw*rd+(1)"


def test_default_logger_is_root():
    root = logging.getLogger()
    redaction = install_secret_redaction([SECRET])
    try:
        assert redaction in root.filters
    finally:
        root.removeFilter(redaction)
        for handler in root.handlers:
            handler.removeFilter(redaction)


def test_secret_values_from_sdk_config_schema():
    schema = th.PropertiesList(
        th.Property("api_url", th.StringType),
        th.Property("api_key", th.StringType, secret=True),
        th.Property(
            "oauth",
            th.ObjectType(
                th.Property("client_id", th.StringType),
                th.Property("client_secret", th.StringType, secret=True),
            ),
        ),
        th.Property(
            "accounts",
            th.ArrayType(
                th.ObjectType(
                    th.Property("name", th.StringType),
                    th.Property("token", th.StringType, secret=True),
                ),
            ),
        ),
        th.Property("unset_secret", th.StringType, secret=True),
        th.Property("service_account", th.ObjectType(), secret=True),
    ).to_dict()
    config = {
        "api_url": "https://api.example.com",
        "api_key": "key-1234",
        "oauth": {"client_id": "public-id", "client_secret": "oauth-secret"},
        "accounts": [{"name": "a", "token": "tok-a"}, {"name": "b", "token": "tok-b"}],
        "unset_secret": None,
        "service_account": {"private_key": "-----BEGIN KEY-----", "project": "p"},
    }
    values = secret_values_from_config(config, schema)
    assert values == ["key-1234", "oauth-secret", "tok-a", "tok-b", "-----BEGIN KEY-----", "p"]
    assert "public-id" not in values
    assert "https://api.example.com" not in values


def test_secret_values_additional_properties_and_any_of():
    schema = {
        "type": "object",
        "properties": {
            "headers": {"type": "object", "additionalProperties": {"type": "string", "secret": True}},
            "auth": {
                "anyOf": [
                    {"type": "object", "properties": {"password": {"secret": True}}},
                    {"type": "object", "properties": {"token": {"writeOnly": True}}},
                ],
            },
        },
    }
    config = {"headers": {"X-Key": "hdr-secret"}, "auth": {"password": "pw-secret"}}
    assert secret_values_from_config(config, schema) == ["hdr-secret", "pw-secret"]


def test_records_without_secrets_keep_their_args(logger_and_stream):
    logger, _ = logger_and_stream
    seen = []

    class Spy(logging.Filter):
        def filter(self, record):
            seen.append((record.msg, record.args))
            return True

    install_secret_redaction([SECRET], logger)
    logger.handlers[0].addFilter(Spy())
    point = ["record_count", 3]
    logger.info("METRIC: %s", point)
    logger.info("METRIC: %s", SECRET)
    assert seen[0] == ("METRIC: %s", (point,)), "SDK metric filters need the original args"
    assert seen[1] == ("METRIC: ***", None)
