"""A leap second (`23:59:60`) is refused, naming stream, input line and property (issue 11).

PostgreSQL accepts second 60 and stores the next second instead: `2016-12-31T23:59:60Z` became `2017-01-01T00:00:00Z`
and `9999-12-31T23:59:60Z` became year 10000, which no client can read back. The target loads values exactly as sent
or not at all, so it refuses the record (the decision is documented in the README's type mapping). The check is one
search per flushed chunk of COPY data, not per record.
"""

from __future__ import annotations

import pytest
from tp_helpers import record_msg, schema_msg, state_msg

TS = {"type": "string", "format": "date-time"}


def one_error(stderr: str) -> str:
    errors = [line for line in stderr.splitlines() if "| ERROR" in line or "Traceback" in line]
    assert len(errors) == 1, stderr
    return errors[0]


@pytest.mark.parametrize(
    ("value", "shape"),
    [
        ("2016-12-31T23:59:60Z", "typed"),
        ("9999-12-31T23:59:60Z", "typed"),
        ("9999-12-31T23:59:60.5+00:00", "dict"),
        ("2016-12-31 23:59:60", "held"),
    ],
)
def test_leap_second_is_refused_naming_stream_line_and_property(db, value, shape):
    props = {"id": {"type": "integer"}, "at": {"type": "object", "properties": {"ts": TS}}, "note": {"type": "string"}}
    if shape == "dict":
        props["other"] = {"type": ["integer", "string"]}  # a scalar union: the stream takes the dict path
    first = 5 if shape == "held" else 1  # held: a key below the run's highest waits for the merge (watermark path)
    messages = [
        schema_msg("events", props, ["id"]),
        record_msg("events", {"id": first, "at": {"ts": "2016-12-31T23:59:59Z"}, "note": "host:6000 at 10:60"}),
        state_msg({"pos": 1}),
        record_msg("events", {"id": 3, "at": {"ts": value}, "note": "x"}),
    ]
    result = db.cli(messages)
    assert result.returncode == 1, result.stderr
    error = one_error(result.stderr)
    assert "stream 'events', input line 4: property 'at.ts' holds a leap second" in error, error
    assert result.states == []  # the STATE after line 2 waits for a batch that was never committed
    assert db.count("events") == 0


def test_time_column_leap_second_is_refused(db):
    messages = [
        schema_msg("t", {"id": {"type": "integer"}, "clock": {"type": "string", "format": "time"}}, ["id"]),
        record_msg("t", {"id": 1, "clock": "23:59:60"}),
    ]
    result = db.cli(messages, load_method="append-only")
    assert result.returncode == 1
    assert "input line 2: property 'clock' holds a leap second" in one_error(result.stderr)


def test_sixty_elsewhere_is_not_a_leap_second(db):
    """`:60` in text columns, and second 59 with fractions, load as they are."""
    messages = [
        schema_msg("e", {"id": {"type": "integer"}, "ts": TS, "note": {"type": "string"}}, ["id"]),
        record_msg("e", {"id": 1, "ts": "2016-12-31T23:59:59.999999Z", "note": "10:60:60 host:60"}),
    ]
    result = db.cli(messages)
    assert result.returncode == 0, result.stderr
    assert db.rows("e", "id, note") == [(1, "10:60:60 host:60")]
