"""Settings that change the load path: validate_records off, stream maps, Singer metadata columns."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
from tp_helpers import record_msg, schema_msg

from harborline_target_postgres.sinks import TargetLoadError

PROPS = {
    "id": {"type": "integer"},
    "n": {"type": "number"},
    "s": {"type": "string"},
    "b": {"type": "boolean"},
    "d": {"type": "string", "format": "date-time"},
    "j": {"type": "object"},
    "u": {"type": ["integer", "string"]},
}
RECORD = {
    "id": 1,
    "n": 0.1,
    "s": "tab\there",
    "b": False,
    "d": "2024-01-01T10:00:00+02:00",
    "j": {"a": [1, None]},
    "u": 5,
}
EXPECTED = {
    "id": 1,
    "n": Decimal("0.1"),
    "s": "tab\there",
    "b": False,
    "d": datetime.datetime(2024, 1, 1, 8, tzinfo=datetime.UTC),
    "j": {"a": [1, None]},
    "u": "5",
}


@pytest.mark.parametrize("validate", [True, False])
def test_same_rows_with_and_without_validation(db, validate):
    db.run([schema_msg("v", PROPS, ["id"]), record_msg("v", RECORD)], validate_records=validate)
    assert db.dicts("v") == [EXPECTED]


def test_without_validation_postgres_still_refuses_bad_values(db):
    db.run([schema_msg("v", PROPS, ["id"]), record_msg("v", RECORD)])
    with pytest.raises(TargetLoadError, match=r"stream 'v', input line 3, column 'n'"):
        db.run(
            [schema_msg("v", PROPS, ["id"]), record_msg("v", {"id": 2}), record_msg("v", {"id": 3, "n": "abc"})],
            validate_records=False,
        )
    assert db.rows("v", "id") == [(1,)]


def test_stream_maps_alias_and_drop_a_property(db):
    maps = {"people": {"__alias__": "persons", "secret": None, "name_upper": "name.upper()"}}
    db.run(
        [
            schema_msg("people", {"id": {"type": "integer"}, "name": {"type": "string"}, "secret": {}}, ["id"]),
            record_msg("people", {"id": 1, "name": "ann", "secret": "x"}),
        ],
        stream_maps=maps,
    )
    assert db.tables() == ["persons"]
    assert db.dicts("persons") == [{"id": 1, "name": "ann", "name_upper": "ANN"}]


def test_record_metadata_columns(db):
    message = record_msg("m", {"id": 1})
    message["time_extracted"] = "2024-05-06T07:08:09Z"
    db.run([schema_msg("m", {"id": {"type": "integer"}}, ["id"]), message], add_record_metadata=True)
    columns = db.columns("m")
    assert {"_sdc_extracted_at", "_sdc_received_at", "_sdc_batched_at", "_sdc_deleted_at"} <= set(columns)
    row = db.dicts("m")[0]
    assert row["id"] == 1
    assert row["_sdc_extracted_at"] == datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.UTC)
    assert row["_sdc_deleted_at"] is None
