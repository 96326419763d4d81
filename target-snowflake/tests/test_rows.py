"""Rows built directly in the CSV form the COPY reads: exact round trips on both record paths, integer digits."""

from __future__ import annotations

import decimal
import gzip
import json
from typing import Any

import msgspec
import pytest
from st_helpers import Warehouse, record_msg, schema_msg

from harborline_singer_shared.rules import ColumnType, Kind, plan_table
from harborline_singer_shared.warehouse.errors import RecordTypeError
from harborline_singer_shared.warehouse.rows import OutOfRange, build_row_function
from harborline_singer_shared.warehouse.structs import build_struct_loader
from harborline_target_snowflake import connector
from harborline_target_snowflake.load import SNOWFLAKE_ROWS, write_batch_file

#: Strings a CSV or COPY encoder can get wrong (the empty string is not NULL; NUL is stored as U+FFFD).
TRICKY = [
    "",
    "\\N",
    "\\",
    "\\\\t",
    "a\tb",
    "line1\nline2\r\nline3\r",
    '"quoted"',
    '""',
    '"',
    '"\t"\n"',
    "NULL",
    "null",
    "007",
    " padded ",
    "ünïcödé ✓ 日本語 🚀",
    "\u2028\u2029",
    "a,b;c|d",
    "ends with backslash\\",
]
PROPS = {
    "id": {"type": "integer"},
    "s": {"type": ["string", "null"]},
    "b": {"type": ["boolean", "null"]},
    "n": {"type": ["number", "null"]},
    "j": {"type": ["object", "array", "null"]},
    "ts": {"type": ["string", "null"], "format": "date-time"},
}
#: What the table holds for a string sent with a NUL (Snowflake and PostgreSQL alike: U+FFFD, never a NUL).
NUL_STORED = "a\ufffdb"


def _columns(props: dict[str, Any]) -> list[Any]:
    system = {"__loaded_at": ColumnType(Kind.TIMESTAMP)}
    plan = plan_table("s", {"properties": props}, ["id"], None, connector.RULES, system_columns=system)
    return plan.source_columns


def _parse(rows: str) -> list[list[str | None]]:
    """Read rows back as the FILE_FORMAT does: tab-separated, `"` encloses (doubled inside), an empty field is NULL.

    Written here, independently of the encoder: fields are split on tabs and newlines outside quotes.
    """
    result: list[list[str | None]] = []
    row: list[str | None] = []
    field: list[str] = []
    quoted = False
    for ch in rows:
        if ch == '"':
            quoted = not quoted  # a doubled quote toggles twice
        if quoted or ch not in "\t\n":
            field.append(ch)
            continue
        raw = "".join(field)
        field = []
        if raw.startswith('"'):
            assert raw.endswith('"'), raw
            row.append(raw[1:-1].replace('""', '"'))
        else:
            assert '"' not in raw, raw
            row.append(None if raw == "" else raw)
        if ch == "\n":
            result.append(row)
            row = []
    assert not field
    assert not row
    return result


def _same(typed: list[str | None], generic: list[str | None]) -> None:
    """Fields equal; numbers as decimals and JSON as values (raw JSON keeps its input's spelling)."""
    for a, b in zip(typed, generic, strict=True):
        if a and b and a[0] in "[{":
            assert json.loads(a) == json.loads(b)
        elif a and b and a[0] in "-0123456789" and a[-1].isdigit():
            assert decimal.Decimal(a) == decimal.Decimal(b)
        else:
            assert a == b


def test_both_record_paths_build_csv_that_reads_back_exactly() -> None:
    columns = _columns(PROPS)
    records: list[dict[str, Any]] = [{"id": i, "s": s} for i, s in enumerate(TRICKY)]
    records += [
        {"id": 100, "s": None, "b": True, "n": 1.5, "j": {"q": '"', "t": "x\ty", "nul": "a\u0000b"}},
        {"id": 101, "s": "a\u0000b", "b": False, "n": -0.000000001, "j": [None, "\\N"], "ts": "2024-02-29T23:59:59Z"},
        {"id": 102},
    ]
    lines = [json.dumps(r) for r in records]
    loader = build_struct_loader(columns, [], SNOWFLAKE_ROWS)
    assert loader is not None
    typed = _parse("".join(loader.row(loader.decode(line)) for line in lines))
    dict_row = build_row_function(columns, validate=True, fmt=SNOWFLAKE_ROWS)
    exact = msgspec.json.Decoder(float_hook=decimal.Decimal).decode
    generic = _parse("".join(dict_row(exact(line)) for line in lines))
    for a, b in zip(typed, generic, strict=True):
        _same(a, b)
    assert [r[1] for r in typed[: len(TRICKY)]] == TRICKY
    assert typed[len(TRICKY)][:4] == ["100", None, "t", "1.5"]
    assert json.loads(typed[len(TRICKY)][4] or "") == {"q": '"', "t": "x\ty", "nul": NUL_STORED}
    assert typed[len(TRICKY) + 1][1:3] == [NUL_STORED, "f"]
    assert decimal.Decimal(typed[len(TRICKY) + 1][3] or "") == decimal.Decimal("-0.000000001")
    assert json.loads(typed[len(TRICKY) + 1][4] or "") == [None, "\\N"]
    assert typed[len(TRICKY) + 1][5] == "2024-02-29T23:59:59Z"
    assert typed[-1] == ["102", None, None, None, None, None]


def test_the_tight_loop_builds_the_same_rows_for_lines_with_and_without_backslashes() -> None:
    columns = _columns(PROPS)
    loader = build_struct_loader(columns, [], SNOWFLAKE_ROWS)
    assert loader is not None
    run = loader.run_function("s", seq=True)
    records = [{"id": i, "s": s, "ts": "2024-01-01T00:00:00Z"} for i, s in enumerate(TRICKY)]
    lines = [json.dumps({"type": "RECORD", "stream": "s", "record": r}).encode() for r in records]
    out: list[str] = []
    taken: list[int] = []
    _leftover, _line, n, _chars, _hi = run(lines[0], iter(lines[1:]), 1, 10**6, 10**9, out.append, taken.append,
                                           b"\\", None, None)  # fmt: skip
    assert n == len(TRICKY)
    rows = _parse("".join(out))
    assert [r[1] for r in rows] == TRICKY
    assert [r[-1] for r in rows] == [str(i) for i in range(1, len(TRICKY) + 1)]  # the input line as sequence


def test_an_integer_of_38_digits_is_built_and_39_digits_are_refused_on_both_paths() -> None:
    columns = _columns({"id": {"type": "integer"}, "big": {"type": ["integer", "null"]}})
    loader = build_struct_loader(columns, [], SNOWFLAKE_ROWS)
    assert loader is not None
    dict_row = build_row_function(columns, validate=True, fmt=SNOWFLAKE_ROWS)
    loose_row = build_row_function(columns, validate=False, fmt=SNOWFLAKE_ROWS)
    largest = 10**38 - 1
    for value in (largest, -largest):
        record = {"id": 1, "big": value}
        assert loader.row(loader.decode(json.dumps(record))) == f"1\t{value}\n"
        assert dict_row(record) == loose_row(record) == f"1\t{value}\n"
    for value in (10**38, -(10**38), 10**60):
        record = {"id": 1, "big": value}
        for build in (lambda r: loader.row(loader.decode(json.dumps(r))), dict_row, loose_row):
            with pytest.raises(OutOfRange) as info:
                build(record)
            assert (info.value.column, info.value.digits, info.value.limit) == (1, len(str(abs(value))), 38)
    dec = decimal.Decimal(10**38)  # an integral decimal (1e38 in JSON) is an integer too
    with pytest.raises(OutOfRange):
        dict_row({"id": 1, "big": dec})
    # target-postgres' format has no such limit (its numeric columns take any integer): unchanged.
    pg_loader = build_struct_loader(columns, [])
    assert pg_loader is not None
    huge = {"id": 1, "big": 10**60}
    assert build_row_function(columns, validate=True)(huge) == pg_loader.row(pg_loader.decode(json.dumps(huge)))
    assert pg_loader.row(pg_loader.decode(json.dumps(huge))) == f"1\t{10**60}\n"


def test_an_integer_over_38_digits_names_stream_line_and_property_and_commits_nothing(wh: Warehouse) -> None:
    big = "1" + "0" * 38  # 39 digits
    props = {"id": {"type": "integer"}, "deep": {"type": "object", "properties": {"n": {"type": "integer"}}}}
    head = (
        json.dumps(schema_msg("nums", props, ["id"]))
        + "\n"
        + json.dumps(record_msg("nums", {"id": 1, "deep": {"n": 5}}))
        + "\n"
        + json.dumps(record_msg("nums", {"id": 2, "deep": {"n": 6}}))
        + "\n"
    )
    text = head + '{"type": "RECORD", "stream": "nums", "record": {"id": 3, "deep": {"n": ' + big + "}}}\n"
    expected = (
        "stream 'nums', input line 4: property 'deep.n' is an integer of 39 digits, more than its column holds (38); "
        "nothing of the batch was committed"
    )
    with pytest.raises(RecordTypeError) as info:
        wh.run(text)
    assert str(info.value) == expected
    assert wh.count("nums") == 0
    # The same through the CLI, as the one error line; and on the dict path (validation off), as a key.
    result = wh.cli(text.replace(big, "-" + big))
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, errors
    assert errors[0].endswith(expected)
    keyed = head.replace('"id": 2', '"id": ' + big)
    with pytest.raises(RecordTypeError, match=r"input line 3: property 'id' is an integer of 39 digits"):
        wh.run(keyed, validate_records=False)
    assert wh.count("nums") == 0


def test_rows_from_the_target_round_trip_exactly_through_the_emulator(wh: Warehouse) -> None:
    messages: list[Any] = [schema_msg("tricky", PROPS, ["id"])]
    messages += [record_msg("tricky", {"id": i, "s": s}) for i, s in enumerate(TRICKY)]
    messages += [
        record_msg("tricky", {"id": 100, "s": "a\u0000b", "b": True, "j": {"q": '"', "t": "x\ty"}}),
        record_msg("tricky", {"id": 101, "b": False, "n": -1234567.125, "j": ["\\N", None]}),
    ]
    # Both record paths: the typed fast path, and the dict path (pseudonymization or validation off take it).
    for validate in (True, False):
        wh.run(messages, validate_records=validate, load_method="upsert")
        rows = wh.rows("tricky", ["id", "s", "b", "n", "j"])
        by_id = {r[0]: r for r in rows}
        assert [by_id[i][1] for i in range(len(TRICKY))] == TRICKY
        assert by_id[100][1:3] == (NUL_STORED, True)
        assert json.loads(by_id[100][4]) == {"q": '"', "t": "x\ty"}
        assert by_id[101][2:4] == (False, decimal.Decimal("-1234567.125"))
        assert json.loads(by_id[101][4]) == ["\\N", None]
        assert wh.count("tricky", '"S" IS NULL') == 1  # id 101 only: the empty string stayed a string


def test_the_batch_file_is_gzip_of_the_rows_as_built(tmp_path: Any) -> None:
    chunks = [("".join(f'{i}\t"row {i}\tx"\n' for i in range(k, k + 5000))).encode() for k in range(0, 60000, 5000)]
    path = tmp_path / "batch.csv.gz"
    size = write_batch_file(chunks, path)
    assert size == sum(map(len, chunks))
    assert gzip.decompress(path.read_bytes()) == b"".join(chunks)
