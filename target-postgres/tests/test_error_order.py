"""Every error line names where it happened in one order: `stream 'x', input line N: what`."""

from __future__ import annotations

import re

from tp_helpers import lines_of, record_msg, schema_msg

SCHEMA = schema_msg("s", {"id": {"type": "integer"}, "v": {"type": ["string", "null"]}}, ["id"])


def _error_line(result) -> str:
    assert result.returncode != 0
    (error,) = [x for x in result.stderr.splitlines() if re.search(r"\| (ERROR|CRITICAL) ", x)]
    return error


def test_a_truncated_record_line_reads_stream_then_line(db):
    text = (
        lines_of([SCHEMA, record_msg("s", {"id": 1, "v": "x"})]) + '{"type": "RECORD", "stream": "s", "record": {"id"\n'
    )
    assert "| stream 's', input line 3: malformed JSON" in _error_line(db.cli(text))


def test_a_record_before_its_schema_reads_stream_then_line(db):
    result = db.cli(lines_of([record_msg("early", {"id": 1})]))
    assert "| stream 'early', input line 1: RECORD before its SCHEMA message" in _error_line(result)


def test_a_record_of_the_wrong_type_reads_stream_then_line(db):
    result = db.cli(lines_of([SCHEMA, record_msg("s", {"id": "one", "v": "x"})]))
    assert re.search(r"\| stream 's', input line 2: ", _error_line(result))
