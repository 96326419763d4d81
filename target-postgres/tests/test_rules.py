"""Warehouse rules, PostgreSQL-only parts: type names and the identifier limit.

The dialect-neutral rules (schema per tap, table per stream, names, schema evolution) run from the shared suite in
test_shared_suite.py; what stays here reads PostgreSQL's own catalog and type names.
"""

from __future__ import annotations

from tp_helpers import PG_TYPE_KINDS, PostgresProbe, record_msg, schema_msg

from harborline_singer_shared.rules import Kind
from harborline_target_postgres.connector import MAX_IDENTIFIER_BYTES


def test_postgres_type_for_each_kind(db):
    props = {
        "id": {"type": "integer"},
        "n": {"type": "number"},
        "b": {"type": "boolean"},
        "d": {"type": "string", "format": "date"},
        "t": {"type": "string", "format": "time"},
        "ts": {"type": "string", "format": "date-time"},
        "s": {"type": "string", "maxLength": 5},
        "j": {"type": "object"},
        "a": {"type": "array"},
        "nl": {"type": "null"},
    }
    record = {"id": 1, "n": 1.5, "b": True, "d": "2024-01-02", "t": "10:11:12", "ts": "2024-01-02T03:04:05Z"}
    db.run([schema_msg("k", props, ["id"]), record_msg("k", {**record, "s": "x", "j": {}, "a": [], "nl": None})])
    assert db.columns("k") == {
        "id": "bigint",
        "n": "numeric",
        "b": "boolean",
        "d": "date",
        "t": "time without time zone",
        "ts": "timestamp with time zone",
        "s": "text",  # string lengths are not kept: PostgreSQL's text has no cost over varchar(n)
        "j": "jsonb",
        "a": "jsonb",
        "nl": "text",
        "__loaded_at": "timestamp with time zone",
    }
    # The probe reads the same table back as logical kinds (NULL from the column comment, the rest by type name).
    assert PostgresProbe(db).columns("k") == {
        "id": Kind.INTEGER,
        "n": Kind.NUMBER,
        "b": Kind.BOOLEAN,
        "d": Kind.DATE,
        "t": Kind.TIME,
        "ts": Kind.TIMESTAMP,
        "s": Kind.STRING,
        "j": Kind.JSON,
        "a": Kind.JSON,
        "nl": Kind.NULL,
        "__loaded_at": Kind.TIMESTAMP,
    }
    assert set(PG_TYPE_KINDS.values()) == set(Kind) - {Kind.NULL}


def test_widened_columns_get_postgres_types(db):
    def schema(c, d):
        return schema_msg("w", {"id": {"type": "integer"}, "c": c, "d": d, "j": {"type": "object"}}, ["id"])

    db.run([schema({"type": "integer"}, {"type": "string", "format": "date"}), record_msg("w", {"id": 1, "c": 1})])
    db.run([schema({"type": "number"}, {"type": "string", "format": "date-time"}), record_msg("w", {"id": 2})])
    assert db.columns("w") == {
        "id": "bigint",
        "c": "numeric",
        "d": "timestamp with time zone",
        "j": "jsonb",
        "__loaded_at": "timestamp with time zone",
    }
    db.run([schema({"type": "string"}, {"type": "string"}), record_msg("w", {"id": 3})])
    assert db.columns("w") == {
        "id": "bigint",
        "c": "text",
        "d": "text",
        "j": "jsonb",
        "__loaded_at": "timestamp with time zone",
    }


def test_identifier_limit_is_the_servers(db):
    """The shared suite shortens names to the probe's limit: it must be the server's, which the target plans with."""
    assert db.query("SHOW max_identifier_length") == [("63",)]
    assert PostgresProbe.max_identifier_bytes == MAX_IDENTIFIER_BYTES == 63
