"""The typed (msgspec struct) record path and the dict path produce the same COPY rows, and the right one is chosen."""

from __future__ import annotations

import json

import msgspec
import pytest

from harborline_singer_shared.rules import ColumnType, Kind, plan_table
from harborline_singer_shared.warehouse.rows import build_row_function
from harborline_singer_shared.warehouse.structs import build_struct_loader
from harborline_target_postgres import connector

SCHEMA = {
    "properties": {
        "id": {"type": "integer"},
        "Name": {"type": ["string", "null"]},
        "name": {"type": "string"},
        "amount": {"type": "number"},
        "flag": {"type": ["boolean", "null"]},
        "at": {"type": "string", "format": "date-time"},
        "addr": {
            "type": ["object", "null"],
            "properties": {
                "city": {"type": "string"},
                "geo": {"type": "object", "properties": {"lat": {"type": "number"}}},
            },
        },
        "tags": {"type": "array", "items": {"type": "string"}},
        "free": {"type": "object"},
    }
}
RECORDS = [
    (
        '{"id": 1, "Name": "A\\tB\\\\C", "name": "x\\ny", "amount": 12345678901234567890.123456789012, "flag": true, '
        '"at": "2024-01-01T10:00:00+02:00", "addr": {"city": "Paris", "geo": {"lat": 48.85}}, '
        '"tags": ["a", "b\\u0000"], '
        '"free": {"k": [1, 2.50]}}'
    ),
    '{"id": 2, "addr": null, "flag": false, "unknown": 5}',
    '{"id": 3, "Name": null, "addr": {"city": "Oslo"}, "amount": 0.1, "tags": []}',
]


def _plan(schema: dict) -> list:
    plan = plan_table(
        "s", schema, ["id"], None, connector.RULES, system_columns={"__loaded_at": ColumnType(Kind.TIMESTAMP)}
    )
    return plan.source_columns


def test_typed_and_dict_paths_give_identical_rows() -> None:
    columns = _plan(SCHEMA)
    loader = build_struct_loader(columns, [])
    assert loader is not None
    decode, typed_row = loader.decode, loader.row
    dict_row = build_row_function(columns, validate=True)
    exact = msgspec.json.Decoder(float_hook=__import__("decimal").Decimal).decode
    for text in RECORDS:
        typed = typed_row(decode(text.encode()))
        generic = dict_row(exact(text))
        # JSON columns may differ only in insignificant whitespace: compare them as JSON.
        for a, b in zip(typed.rstrip("\n").split("\t"), generic.rstrip("\n").split("\t"), strict=True):
            if a.startswith(("[", "{")):
                assert json.loads(a.replace("\\\\", "\\")) == json.loads(b.replace("\\\\", "\\"))
            else:
                assert a == b


@pytest.mark.parametrize(
    "prop",
    [
        {"type": ["integer", "string"]},  # a union of scalars lands in a text column: dict path
        {"anyOf": [{"type": "integer"}, {"type": "null"}]},
    ],
)
def test_unions_of_scalars_take_the_dict_path(prop: dict) -> None:
    columns = _plan({"properties": {"id": {"type": "integer"}, "v": prop}})
    assert build_struct_loader(columns, []) is None


def test_names_msgspec_cannot_map_take_the_dict_path() -> None:
    columns = _plan({"properties": {"id": {"type": "integer"}, 'x"; DROP TABLE t; --': {"type": "string"}}})
    assert build_struct_loader(columns, []) is None


def test_typed_path_refuses_wrong_types_and_missing_required() -> None:
    columns = _plan({"properties": {"id": {"type": "integer"}, "n": {"type": "string"}}})
    loader = build_struct_loader(columns, ["n"])
    assert loader is not None
    decode, row = loader.decode, loader.row
    with pytest.raises(msgspec.ValidationError, match=r"\$\.id"):
        decode(b'{"id": "1", "n": "x"}')
    with pytest.raises(msgspec.ValidationError, match="n"):
        decode(b'{"id": 1}')
    assert row(decode(b'{"id": 1, "n": "x", "extra": [1]}')) == "1\tx\n"


def _message(record: str, stream: str = "s") -> bytes:
    return f'{{"type": "RECORD", "stream": "{stream}", "record": {record}, "time_extracted": "2024-01-01"}}\n'.encode()


class Loop:
    """Calls a generated tight loop the way the sink does, collecting what it produces."""

    def __init__(
        self, *, seq: bool = False, watermark: tuple[int, ...] | None = None, hi: object = float("-inf")
    ) -> None:
        loader = build_struct_loader(_plan(SCHEMA), [])
        assert loader is not None
        self.loader = loader
        self.run = loader.run_function("s", seq=seq, watermark=watermark)
        self.rows: list[str] = []
        self.lines: list[int] = []
        self.old_rows: list[str] = []
        self.old_lines: list[int] = []
        self.old_keys: list[object] = []
        self.hi = hi

    def hold(self, key: object, row: str, line: int) -> None:
        self.old_keys.append(key)
        self.old_rows.append(row)
        self.old_lines.append(line)

    def __call__(self, lines: list[bytes], first_line: int = 1, room_rows: int = 1000, room_chars: int = 1 << 20):
        leftover, last, taken, chars, self.hi = self.run(
            lines[0],
            iter(lines[1:]),
            first_line,
            room_rows,
            room_chars,
            self.rows.append,
            self.lines.append,
            b"\\",
            self.hi,
            self.hold,
        )
        return leftover, last, taken, chars


@pytest.mark.parametrize("seq", [False, True])
def test_tight_loop_rows_equal_the_row_function(seq: bool) -> None:
    """The loop's two branches (with and without escaping) give exactly the rows the checked row function gives."""
    loop = Loop(seq=seq)
    leftover, last, taken, chars = loop([_message(r) for r in RECORDS], first_line=10)
    assert (leftover, last, taken, loop.lines) == (None, 12, 3, [10, 11, 12])
    expected = [loop.loader.row(loop.loader.decode(r.encode())) for r in RECORDS]
    if seq:
        expected = [f"{e[:-1]}\t{n}\n" for e, n in zip(expected, loop.lines, strict=True)]
    assert loop.rows == expected
    assert chars == sum(map(len, expected))


@pytest.mark.parametrize(
    ("line", "why"),
    [
        (b'{"type": "STATE", "value": {}}\n', "another message type"),
        (_message('{"id": 1}', stream="other"), "another stream"),
        (_message('{"id": "1"}'), "a type error, reported precisely by the generic path"),
        (_message('{"amount": "1"}'), "a string in a number column, reported precisely by the generic path"),
        (_message('{"name": "no key"}'), "a missing key"),
        (_message('{"id": null}'), "a null key"),
        (b'{"type": "RECORD", "stream": "s", "record": {"id": 1}\n', "malformed JSON"),
        (b"\n", "a blank line"),
    ],
)
def test_tight_loop_hands_back_the_first_line_it_cannot_take(line: bytes, why: str) -> None:
    loop = Loop()
    leftover, last, taken, _chars = loop([_message('{"id": 7}'), line, _message('{"id": 8}')])
    assert (leftover, last, taken, len(loop.rows)) == (line, 2, 1, 1), why


def test_tight_loop_stops_when_the_batch_or_chunk_is_full() -> None:
    lines = [_message(f'{{"id": {i}}}') for i in range(10)]
    assert Loop()(lines, room_rows=3)[1:3] == (3, 3)  # by rows
    assert Loop()(lines, room_chars=1)[1:3] == (1, 1)  # by characters
    assert Loop()(lines[:4])[:3] == (None, 4, 4)  # input ended


def test_watermark_sends_only_keys_above_every_earlier_key_straight_to_the_table() -> None:
    """Keys above the watermark are new; any other (a repeat, or an older key) is held with its input line."""
    loop = Loop(watermark=(0,), hi=5)
    ids = [3, 6, 7, 6, 5, 9, 1]
    loop([_message(f'{{"id": {i}}}') for i in ids], first_line=20)
    assert [int(r.split("\t")[0]) for r in loop.rows] == [6, 7, 9]
    assert loop.lines == [21, 22, 25]
    assert [r.split("\t")[0] for r in loop.old_rows] == ["3", "6", "5", "1"]
    assert [r.rstrip("\n").split("\t")[-1] for r in loop.old_rows] == ["20", "23", "24", "26"]
    assert loop.old_lines == [20, 23, 24, 26]
    assert loop.old_keys == [3, 6, 5, 1]
    assert loop.hi == 9
