"""Pseudonymization in the target: configured fields load as keyed tokens (text), equal values give equal tokens,
null stays null, other fields stay clear; tokens match the shared module, so they join with the taps' tokens."""

from __future__ import annotations

import re

import pytest
from tp_helpers import record_msg, schema_msg

from harborline_singer_shared.pseudonymize import KEY_ENV_VAR, Pseudonymizer

KEY = "a-test-key-of-sufficient-length-0123"
TOKEN = re.compile(r"hl1:1:[A-Za-z0-9_-]{43}")
PROPS = {
    "id": {"type": "integer"},
    "email": {"type": ["string", "null"]},
    "customer_no": {"type": ["integer", "null"]},
    "name": {"type": "string"},
    "contact": {"type": "object", "properties": {"phone": {"type": ["string", "null"]}, "city": {"type": "string"}}},
}
RECORDS = [
    {
        "id": 1,
        "email": "Ann@Example.com",
        "customer_no": 42,
        "name": "Ann",
        "contact": {"phone": "+1 555", "city": "A"},
    },
    {"id": 2, "email": "ann@example.com ", "customer_no": 42, "name": "Ann B", "contact": {"phone": None, "city": "B"}},
    {"id": 3, "email": None, "customer_no": None, "name": "Bob", "contact": {"phone": "+1 555", "city": "C"}},
    {"id": 4, "email": "bob@example.com", "customer_no": 7, "name": "Bob", "contact": None},
]
CONFIG = {"pseudonymize": {"people": ["email", "customer_no", "contact.phone"]}, "pseudonymization_key": KEY}


def test_configured_fields_are_tokens(db):
    db.run([schema_msg("people", PROPS, ["id"]), *[record_msg("people", r) for r in RECORDS]], **CONFIG)
    columns = db.columns("people")
    assert columns["email"] == "text"
    assert columns["customer_no"] == "text"  # an integer field becomes a text token column
    assert columns["contact__phone"] == "text"
    rows = db.dicts("people", order="id")
    emails = [r["email"] for r in rows]
    assert all(TOKEN.fullmatch(e) for e in emails if e is not None)
    assert emails[0] == emails[1]  # the same address (case and spaces normalised) gives the same token
    assert emails[2] is None  # null stays null
    assert emails[3] != emails[0]
    assert rows[0]["customer_no"] == rows[1]["customer_no"]
    assert rows[2]["customer_no"] is None
    assert rows[0]["contact__phone"] == rows[2]["contact__phone"]
    assert rows[1]["contact__phone"] is None
    assert rows[3]["contact__phone"] is None  # a null parent object
    # Other fields are loaded in clear.
    assert [r["name"] for r in rows] == ["Ann", "Ann B", "Bob", "Bob"]
    assert [r["contact__city"] for r in rows] == ["A", "B", "C", None]
    # No clear value of a pseudonymized field reached the table.
    dump = str(db.rows("people"))
    for clear in ("Ann@Example.com", "ann@example.com", "bob@example.com", "+1 555"):
        assert clear not in dump
    # Tokens are the shared module's (so they join with what taps produce with the same key).
    reference = Pseudonymizer(KEY)
    assert emails[0] == reference.token("ann@example.com")
    assert rows[0]["customer_no"] == reference.token(42) == reference.token("42")


def test_key_from_environment_and_already_tokenized_values(db, monkeypatch):
    monkeypatch.setenv(KEY_ENV_VAR, KEY)
    token = Pseudonymizer(KEY).token("x@y.z")
    db.run(
        [
            schema_msg("people", {"id": {"type": "integer"}, "email": {"type": "string"}}, ["id"]),
            record_msg("people", {"id": 1, "email": "x@y.z"}),
            record_msg("people", {"id": 2, "email": token}),  # a tap already pseudonymized it: kept as is
        ],
        pseudonymize={"*": ["email"]},
    )
    assert db.rows("people", "email") == [(token,), (token,)]


def test_pseudonymized_key_property(db):
    db.run(
        [
            schema_msg("people", {"email": {"type": "string"}, "n": {"type": "integer"}}, ["email"]),
            record_msg("people", {"email": "a@b.c", "n": 1}),
            record_msg("people", {"email": "A@B.C", "n": 2}),
            record_msg("people", {"email": "d@e.f", "n": 3}),
        ],
        pseudonymize={"people": ["email"]},
        pseudonymization_key=KEY,
    )
    assert db.primary_key("people") == ["email"]
    rows = db.rows("people", "email, n", order="n")
    assert [n for _, n in rows] == [2, 3]  # the two spellings of one address are one key: upserted
    assert all(TOKEN.fullmatch(e) for e, _ in rows)


def test_missing_key_is_a_config_error(db):
    from singer_sdk.exceptions import ConfigValidationError  # noqa: PLC0415

    with pytest.raises(ConfigValidationError, match="no key"):
        db.target(pseudonymize={"people": ["email"]})
