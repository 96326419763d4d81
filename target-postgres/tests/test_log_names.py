"""Stream and property names are any JSON string: control characters in them never reach a log line raw (issue 11).

A name with a newline used to split a log line in two (the second part could pass for a line of its own, e.g. a forged
ERROR), and terminal escape sequences went to the operator's terminal. Every log line now shows them escaped, the
way Python's repr() does (`\\n`, `\\x1b`), the SDK's own lines and the per-stream logger names included.
"""

from __future__ import annotations

import re

from tp_helpers import record_msg, schema_msg

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \| [A-Z]+ +\| ")
STREAM = "ev\nINJECTED ERROR line\x1b[31m\r\u2028x"
PROP = "p\nINJECTED property\x07"
RAW = ("\x1b", "\x07", "\r", "\u2028")


def test_control_characters_in_names_are_escaped_in_every_log_line(db):
    messages = [
        schema_msg(STREAM, {"id": {"type": "integer"}, PROP: {"type": "string"}}, ["id"]),
        record_msg(STREAM, {"id": 1, PROP: "a"}),
        {"type": "ACTIVATE_VERSION", "stream": STREAM, "version": 1},
        schema_msg(STREAM, {"id": {"type": "integer"}, PROP: {"type": "string"}, "q\nnew": {"type": "string"}}, ["id"]),
        record_msg(STREAM, {"id": 2, PROP: 5}),  # wrong type: the error names stream and property
    ]
    result = db.cli(messages, batch_size_rows=1)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert [line for line in lines if not LOG_LINE.match(line)] == [], result.stderr
    for char in RAW:
        assert char not in result.stderr, repr(result.stderr)
    assert "Created table" in result.stderr  # the sink's own lines (its logger is named after the stream) ran
    assert "Schema has changed for stream" in result.stderr  # and the SDK's
    errors = [line for line in lines if "| ERROR" in line]
    assert len(errors) == 1, result.stderr
    assert repr(STREAM) in errors[0], errors[0]
    assert repr(PROP) in errors[0], errors[0]
    assert "input line 5" in errors[0], errors[0]


def test_names_without_control_characters_are_unchanged(db):
    result = db.cli(
        [schema_msg("plain ünïcode", {"id": {"type": "integer"}}, ["id"]), record_msg("plain ünïcode", {"id": 1})]
    )
    assert result.returncode == 0, result.stderr
    assert "Ignoring" not in result.stderr
    assert "target-postgres.plain ünïcode" in result.stderr, result.stderr
