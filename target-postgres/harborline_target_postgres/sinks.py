"""The PostgreSQL sink: records become COPY text rows streamed to the server while the input is still being read.

Per batch and per stream, one transaction: rows are COPY'd (text format) into the table (append-only) or into a
temporary staging table (upsert: then one `INSERT ... SELECT DISTINCT ON (key) ... ON CONFLICT DO UPDATE`, newest
record of the batch wins), then committed. Nothing of a batch is visible before its commit, so a failure or a kill
leaves no half-written batch. The row builder is generated once per SCHEMA, not per record, because per-record
Python work is what limits a target's speed.
"""

from __future__ import annotations

import contextlib
import datetime
import decimal
import hashlib
import itertools
import queue
import re
import sys
import threading
import time
from array import array
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import msgspec
import psycopg2
import psycopg2.extensions
from singer_sdk.exceptions import ConfigValidationError, MissingKeyPropertiesError
from singer_sdk.sinks import BatchSink

from harborline_singer_shared.retry import RetryPolicy
from harborline_singer_shared.rules import (
    ColumnPlan,
    ColumnType,
    Kind,
    TablePlan,
    make_getter,
    plan_table,
)
from harborline_target_postgres import connector
from harborline_target_postgres.connector import quote

if TYPE_CHECKING:
    from types import TracebackType

    from singer_sdk.sinks.core import BaseJSONSchemaValidator

    from harborline_target_postgres.target import TargetPostgres

SEQ_COLUMN = "__harborline_seq"
#: Below every integer key: the key watermark of an empty table.
_BELOW_ALL = float("-inf")
#: Above every integer key: a watermark that sends every row the staging way (after a concurrent writer was seen).
_ABOVE_ALL = float("inf")
_NULL = "\\N"
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\x00": "\ufffd"})
_json_encode = msgspec.json.Encoder(decimal_format="number").encode
_FLUSH_CHARS = 1 << 18


class TargetLoadError(Exception):
    """A load problem with one clear message (stream, input line, column); the run stops with exit code 1."""


class RecordTypeError(TargetLoadError):
    """A record value does not match its schema's type."""


def _sanitize_json(value: Any) -> Any:
    """PostgreSQL jsonb rejects \\u0000: replace NUL in strings (and keys) with U+FFFD, as for text columns."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_sanitize_json(k): _sanitize_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_sanitize_json(v) for v in value]
    return value


def _json_text(value: Any) -> str:
    text = _json_encode(value).decode("utf-8")
    if "\\u0000" in text:
        text = _json_encode(_sanitize_json(value)).decode("utf-8")
    return _escape(text)


class _Mismatch(Exception):  # noqa: N818 - internal signal, turned into RecordTypeError with context
    def __init__(self, expected: str, value: Any, column: int | None = None) -> None:
        super().__init__(expected)
        self.expected = expected
        self.got = type(value).__name__
        self.column = column


def _converter(column_type: ColumnType, *, validate: bool) -> Callable[[Any], str]:  # noqa: C901
    """Value -> COPY text field for one column type (None -> \\N)."""
    kind = column_type.kind

    def loose(v: Any) -> str:
        if v is None:
            return _NULL
        if isinstance(v, (dict, list)):
            return _json_text(v)
        if v is True or v is False:
            return "true" if v else "false"  # valid input for boolean and text columns alike
        return _escape(str(v))

    if kind is Kind.JSON:
        return lambda v: _NULL if v is None else _json_text(v)
    if not validate:
        return loose
    if kind is Kind.STRING:

        def string(v: Any) -> str:
            if type(v) is str:
                return _escape(v)
            if v is None:
                return _NULL
            raise _Mismatch("string", v)

        return string
    if kind is Kind.INTEGER:

        def integer(v: Any) -> str:
            if type(v) is int:
                return str(v)
            if v is None:
                return _NULL
            if type(v) is decimal.Decimal and v == v.to_integral_value():
                return str(int(v))
            raise _Mismatch("integer", v)

        return integer
    if kind is Kind.NUMBER:

        def number(v: Any) -> str:
            t = type(v)
            if t is decimal.Decimal or t is int or t is float:
                return str(v)
            if v is None:
                return _NULL
            if t is str and kind is Kind.NUMBER:
                try:
                    return str(decimal.Decimal(v))
                except decimal.InvalidOperation:
                    pass
            raise _Mismatch("number", v)

        return number
    if kind is Kind.BOOLEAN:

        def boolean(v: Any) -> str:
            if v is True:
                return "t"
            if v is False:
                return "f"
            if v is None:
                return _NULL
            raise _Mismatch("boolean", v)

        return boolean

    # date, time, timestamp: ISO text, parsed (offsets honoured) by PostgreSQL during COPY.
    def temporal(v: Any) -> str:
        if type(v) is str:
            return _escape(v)
        if v is None:
            return _NULL
        if isinstance(v, (datetime.date, datetime.time)):
            return v.isoformat()
        raise _Mismatch(kind.value, v)

    return temporal


def _json_types(schema: Mapping[str, Any]) -> set[str]:
    """The JSON types a property admits (through anyOf/oneOf); empty when it declares none."""
    found: set[str] = set()
    declared = schema.get("type")
    if isinstance(declared, str):
        found.add(declared)
    elif isinstance(declared, list):
        found.update(d for d in declared if isinstance(d, str))
    for key in ("anyOf", "oneOf"):
        for sub in schema.get(key) or []:
            if isinstance(sub, Mapping):
                found |= _json_types(sub)
    return found


def _scalar_text(v: Any) -> str:
    """A text column fed by a union such as [integer, string]: non-string scalars are stored as their JSON text."""
    if type(v) is str:
        return _escape(v)
    if v is None:
        return _NULL
    if v is True or v is False:
        return "true" if v else "false"
    if type(v) is int or type(v) is decimal.Decimal or type(v) is float:
        return str(v)
    raise _Mismatch("string", v)


def column_converter(col: ColumnPlan, *, validate: bool) -> Callable[[Any], str]:
    """The converter for one loaded column, taking the property's JSON types into account (not only the column's).

    A union like [integer, string] or [boolean, string] lands in a text column: its integers and booleans are valid
    values of the schema and must load (as text), not be refused as "not a string".
    """
    scalar_union = col.source is not None and _json_types(col.source.schema) & {"integer", "number", "boolean"}
    if validate and col.type.kind is Kind.STRING and scalar_union:
        return _scalar_text
    return _converter(col.type, validate=validate)


def _escape(v: str) -> str:
    """COPY text escaping; most strings need none, and the check is ten times cheaper than translate()."""
    if v.isprintable() and "\\" not in v:
        return v
    return v.translate(_ESCAPES)


# Inline code per column kind, generated into the row function (no per-value function call on the hot path).
# `v` is the value; each snippet assigns the field text to `f`. `M(i, v)` reports a type mismatch for column i.
_INLINE: dict[Kind, str] = {
    Kind.STRING: (
        "if v.__class__ is str:\n"
        "        f{i} = v if (v.isprintable() and '\\\\' not in v) else v.translate(E)\n"
        "    elif v is None: f{i} = N\n"
        "    else: M({i}, v)"
    ),
    Kind.INTEGER: "if v.__class__ is int: f{i} = str(v)\n    elif v is None: f{i} = N\n    else: f{i} = c{i}(v)",
    Kind.NUMBER: (
        "if v.__class__ is D or v.__class__ is int: f{i} = str(v)\n"
        "    elif v is None: f{i} = N\n"
        "    else: f{i} = c{i}(v)"
    ),
    Kind.BOOLEAN: (
        "if v is True: f{i} = 't'\n    elif v is False: f{i} = 'f'\n    elif v is None: f{i} = N\n    else: M({i}, v)"
    ),
}
for _k in (Kind.DATE, Kind.TIME, Kind.TIMESTAMP):
    _INLINE[_k] = (
        "if v.__class__ is str:\n"
        "        f{i} = v if (v.isprintable() and '\\\\' not in v) else v.translate(E)\n"
        "    elif v is None: f{i} = N\n"
        "    else: f{i} = c{i}(v)"
    )


class _MissingKey(Exception):  # noqa: N818 - internal signal, turned into MissingKeyPropertiesError with context
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def build_row_function(columns: list[ColumnPlan], *, validate: bool) -> Callable[[Mapping[str, Any]], str]:
    """Generate `record -> "f1\\tf2\\t...\\n"` once per schema: straight-line code, no per-record loops.

    Key columns are checked for presence in the same pass (a missing or null key raises `_MissingKey`).
    """
    namespace: dict[str, Any] = {"E": _ESCAPES, "N": _NULL, "D": decimal.Decimal}
    kinds = [c.type.kind for c in columns]
    keys = [".".join(c.source.path) if c.source else c.name for c in columns]

    def mismatch(i: int, v: Any) -> None:
        raise _Mismatch(kinds[i].value, v)

    def missing_key(i: int) -> None:
        raise _MissingKey(keys[i])

    namespace["M"] = mismatch
    namespace["K"] = missing_key
    lines = ["def row(r):", "    get = r.get"]
    names = []
    for i, col in enumerate(columns):
        assert col.source is not None  # noqa: S101 - only source columns are loaded from records
        converter = column_converter(col, validate=validate)
        namespace[f"c{i}"] = converter
        if len(col.source.path) == 1:
            lines.append(f"    v = get({col.source.path[0]!r})")
        else:
            namespace[f"g{i}"] = make_getter(col.source.path)
            lines.append(f"    v = g{i}(r)")
        if col.is_key:
            lines.append(f"    if v is None: K({i})")
        inline_ok = validate and converter is not _scalar_text
        snippet = _INLINE.get(col.type.kind) if inline_ok else None
        if snippet is None:
            lines.append(f"    f{i} = c{i}(v)")
        else:
            lines.append("    " + snippet.format(i=i))
        names.append(f"f{i}")
    body = "'\\t'.join((" + ", ".join(names) + ",)) + '\\n'" if names else "'\\n'"
    lines.append(f"    return {body}")
    src = "\n".join(lines) + "\n"
    exec(compile(src, "<row>", "exec"), namespace)  # noqa: S102 - code built only from repr() literals
    return namespace["row"]  # type: ignore[no-any-return]


_SIMPLE_TYPES: dict[str, Any] = {
    "integer": int,
    "number": int | decimal.Decimal,
    "boolean": bool,
    "string": str,
}
_RAW_NULL = msgspec.Raw(b"null")
_UNNAMEABLE = re.compile(r'[\\"\x00-\x1f]')
_MSGSPEC_ERROR = re.compile(r"Expected `[^`]*`, got `(?P<got>[^`]*)`(?: - at `\$(?P<path>[^`]*)`)?")
_JSON_NAMES = {
    "str": "string",
    "int": "integer",
    "float": "number",
    "bool": "boolean",
    "array": "array",
    "dict": "object",
    "list": "array",
}
_decode_exact = msgspec.json.Decoder(float_hook=decimal.Decimal).decode


class _RawNumber:
    """Leaf marker: a JSON number kept as its text (msgspec.Raw), which is exact numeric input for PostgreSQL.

    Cheaper than a Decimal round trip; the row code checks that the text is a number (a JSON value is a number
    exactly when it starts with '-' or a digit).
    """


def _leaf_type(col: ColumnPlan) -> Any | None:
    """The msgspec type that validates one loaded column's values in C, or None when only the dict path can."""
    assert col.source is not None  # noqa: S101
    if col.type.kind is Kind.JSON:
        return msgspec.Raw  # the JSON text as received: no decode/encode round trip
    types = _json_types(col.source.schema) - {"null"}
    if len(types) != 1 or col.source.schema.get("anyOf") or col.source.schema.get("oneOf"):
        return None
    json_type = next(iter(types))
    if json_type == "string" and col.type.kind is Kind.NUMBER:
        return str  # singer.decimal strings: PostgreSQL parses them
    if json_type == "number" and col.type.kind is Kind.NUMBER and not col.is_key:
        return _RawNumber  # (not for keys: a null key must decode as None, to be reported as a missing key)
    return _SIMPLE_TYPES.get(json_type)


def _field_tree(columns: list[ColumnPlan]) -> dict[str, Any] | None:
    """Nested dict of JSON names -> (column index, msgspec type); None when a column needs the dict path."""
    tree: dict[str, Any] = {}
    for i, col in enumerate(columns):
        leaf = _leaf_type(col)
        if leaf is None or col.source is None:
            return None
        if any(_UNNAMEABLE.search(part) for part in col.source.path):
            return None  # msgspec cannot map such a JSON name to a field; the dict path can
        node = tree
        for part in col.source.path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                return None
            node = child
        if col.source.path[-1] in node:
            return None
        node[col.source.path[-1]] = (i, leaf)
    return tree


def _struct_type(node: dict[str, Any], trail: list[str], access: dict[int, list[str]], required: list[str]) -> Any:
    """A msgspec Struct for one level of the tree (fields `f0`, `f1`, ... renamed to the JSON names)."""
    fields: list[tuple[Any, ...]] = []
    rename: dict[str, str] = {}
    for j, (name, value) in enumerate(node.items()):
        attr = f"f{j}"
        rename[attr] = name
        if isinstance(value, dict):
            fields.append((attr, _struct_type(value, [*trail, attr], access, []) | None, None))
            continue
        i, leaf = value
        access[i] = [*trail, attr]
        if leaf is msgspec.Raw:
            fields.append((attr, msgspec.Raw, _RAW_NULL))
        elif leaf is _RawNumber:
            fields.append((attr, msgspec.Raw) if name in required else (attr, msgspec.Raw, _RAW_NULL))
        elif name in required:
            fields.append((attr, leaf | None))
        else:
            fields.append((attr, leaf | None, None))
    fields.sort(key=lambda f: len(f) == 3)  # msgspec: fields without defaults first
    # gc=False: a record struct holds only scalars, raw JSON and nested records (no cycles), so the garbage collector
    # need not track the million of them a load creates.
    return msgspec.defstruct("Record", fields, rename=rename, forbid_unknown_fields=False, gc=False)


def _struct_value_lines(columns: list[ColumnPlan], access: dict[int, list[str]], indent: str) -> list[str]:
    """Code binding `v<i>` to each column's value of the decoded struct `r` (nested objects may be None)."""
    lines = []
    for i in range(len(columns)):
        first, *rest = access[i]
        lines.append(f"{indent}v{i} = r.{first}")
        lines.extend(f"{indent}v{i} = None if v{i} is None else v{i}.{attr}" for attr in rest)
    return lines


def _struct_field_lines(columns: list[ColumnPlan], numbers: set[int], indent: str, *, escape: bool) -> list[str]:
    """Code formatting each `v<i>` as the COPY text field `f<i>` (values are type-checked by msgspec already).

    Columns in `numbers` hold raw JSON text, checked here to be a number (`X` raises `_Mismatch` otherwise).
    With `escape` false the caller guarantees that no string holds a character COPY text must escape: the record's
    JSON has no backslash, and JSON cannot carry a raw tab, newline, carriage return or NUL without one.
    """
    lines = []
    for i, col in enumerate(columns):
        kind = col.type.kind
        if i in numbers:
            number = f"t if (t := str(v{i}, 'latin-1'))[0] in DIGITS else (N if t == 'null' else X(t, {i}))"
            expr = f"N if v{i} is None else ({number})"
        elif kind is Kind.NUMBER:
            expr = f"N if v{i} is None else (str(v{i}) if v{i}.__class__ is not str else DEC(v{i}, {i}))"
        elif kind is Kind.JSON:
            expr = f"N if v{i} is None else J(v{i})"
        elif kind in {Kind.INTEGER, Kind.NUMBER}:
            expr = f"N if v{i} is None else str(v{i})"
        elif kind is Kind.BOOLEAN:
            expr = f"N if v{i} is None else ('t' if v{i} else 'f')"
        elif escape:
            clean = f"v{i}.isprintable() and '\\\\' not in v{i}"
            expr = f"N if v{i} is None else (v{i} if ({clean}) else v{i}.translate(E))"
        else:
            expr = f"N if v{i} is None else v{i}"
        lines.append(f"{indent}f{i} = {expr}")
    return lines


def _join_expr(columns: list[ColumnPlan], *, seq: bool) -> str:
    names = [f"f{i}" for i in range(len(columns))] + (["str(line)"] if seq else [])
    return "'\\t'.join((" + ", ".join(names) + ",)) + '\\n'" if names else "'\\n'"


def _struct_row_source(columns: list[ColumnPlan], access: dict[int, list[str]], numbers: set[int]) -> str:
    """Source of `row(struct) -> COPY text line`: values are type-checked already, so it only formats."""
    lines = ["def row(r):", *_struct_value_lines(columns, access, "    ")]
    lines.extend(f"    if v{i} is None: K({i})" for i, col in enumerate(columns) if col.is_key)
    lines.extend(_struct_field_lines(columns, numbers, "    ", escape=True))
    lines.append(f"    return {_join_expr(columns, seq=False)}")
    return "\n".join(lines) + "\n"


def _struct_run_source(
    columns: list[ColumnPlan], access: dict[int, list[str]], numbers: set[int], *, seq: bool, watermark: int | None
) -> str:
    """Source of `run(...)`: the tight loop that turns consecutive RECORD lines of one stream into COPY rows.

    It decodes each line's whole message (envelope and record) in one msgspec call and stops at the first line it
    cannot take as it is: another message or stream, a decoding or type error, a missing key. That line goes back to
    the generic path, which handles it or reports it precisely. It also stops when the batch or the chunk is full.
    With `watermark` (the index of an integer key column), a record whose key is above `hi` (every key the table
    can hold so far) is new: its row goes to `append`, straight into the table; any other goes, with its input line
    as sequence, to `append_old`, for the staging table and the merge.
    """
    done = "            return raw, line, n, chars, hi"
    lines = [
        "def run(raw, it, line, room_rows, room_chars, append, lines_append, backslash, hi, append_old, old_lines):",
        "    n = 0",
        "    chars = 0",
        "    line -= 1",
        "    for raw in CHAIN((raw,), it):",
        "        line += 1",
        "        try:",
        "            env = DECODE(raw)",
        "        except ERRORS:",
        done,
        "        if env.stream != NAME:",
        done,
        "        r = env.record",
        *_struct_value_lines(columns, access, "        "),
    ]
    keys = [f"v{i} is None" for i, col in enumerate(columns) if col.is_key]
    if keys:
        lines += [f"        if {' or '.join(keys)}:", done]
    lines += [
        "        try:",
        "            if backslash in raw:",
        *_struct_field_lines(columns, numbers, "                ", escape=True),
        "            else:",
        *_struct_field_lines(columns, numbers, "                ", escape=False),
        "        except MISMATCH:",
        done,
        f"        row = {_join_expr(columns, seq=seq)}",
    ]
    if watermark is None:
        lines += ["        append(row)", "        lines_append(line)"]
    else:
        lines += [
            f"        if v{watermark} > hi:",
            f"            hi = v{watermark}",
            "            append(row)",
            "            lines_append(line)",
            "        else:",
            "            row = f'{row[:-1]}\\t{line}\\n'",
            "            append_old(row)",
            "            old_lines(line)",
        ]
    lines += [
        "        chars += len(row)",
        "        n += 1",
        "        if n >= room_rows or chars >= room_chars:",
        "            return None, line, n, chars, hi",
        "    return None, line, n, chars, hi",
    ]
    return "\n".join(lines) + "\n"


class StructLoader:
    """The typed record path of one stream: decoder and row function, plus the tight loop built on them."""

    def __init__(self, columns: list[ColumnPlan], tree: dict[str, Any], required: list[str]) -> None:
        access: dict[int, list[str]] = {}
        self.record_type = _struct_type(tree, [], access, required)
        self.decode: Callable[[Any], Any] = msgspec.json.Decoder(self.record_type).decode
        self._columns = columns
        self._access = access
        self._numbers = _raw_number_columns(tree)
        keys = [".".join(c.source.path) if c.source else c.name for c in columns]

        def missing_key(i: int) -> None:
            raise _MissingKey(keys[i])

        self._namespace: dict[str, Any] = {
            "E": _ESCAPES,
            "N": _NULL,
            "J": _raw_json_text,
            "K": missing_key,
            "X": _not_a_number,
            "DEC": _decimal_text,
            "DIGITS": "-0123456789",
        }
        self.row: Callable[[Any], str] = self._compile(_struct_row_source(columns, access, self._numbers), "row")

    def _compile(self, source: str, name: str, **extra: Any) -> Any:
        namespace = {**self._namespace, **extra}
        exec(compile(source, f"<struct-{name}>", "exec"), namespace)  # noqa: S102 - code built only from generated names
        return namespace[name]

    def value_of(self, column: int) -> Callable[[Any], Any]:
        """`struct -> value of one column` (None when it or an enclosing object is absent)."""
        first, *rest = self._access[column]
        lines = ["def value_of(r):", f"    v = r.{first}"]
        lines += [f"    v = None if v is None else v.{attr}" for attr in rest]
        return self._compile("\n".join([*lines, "    return v"]) + "\n", "value_of")  # type: ignore[no-any-return]

    def run_function(self, stream: str, *, seq: bool, watermark: int | None = None) -> Callable[..., Any]:
        """The tight loop for `stream` (see `_struct_run_source`); `seq` adds the input line as last field."""
        envelope = msgspec.defstruct(
            "RecordMessage",
            [("stream", str), ("record", self.record_type)],
            tag_field="type",
            tag="RECORD",
            forbid_unknown_fields=False,
            gc=False,
        )
        return self._compile(  # type: ignore[no-any-return]
            _struct_run_source(self._columns, self._access, self._numbers, seq=seq, watermark=watermark),
            "run",
            DECODE=msgspec.json.Decoder(envelope).decode,
            ERRORS=(msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError),
            MISMATCH=_Mismatch,
            NAME=stream,
            CHAIN=itertools.chain,
        )


def _raw_number_columns(tree: dict[str, Any]) -> set[int]:
    """Indexes of the columns whose values arrive as raw JSON number text (see `_RawNumber`)."""
    found: set[int] = set()
    for value in tree.values():
        if isinstance(value, dict):
            found |= _raw_number_columns(value)
        elif value[1] is _RawNumber:
            found.add(value[0])
    return found


#: What a JSON value is, by its first character (for type errors on raw number text).
_JSON_KIND_OF = {'"': "", "t": True, "f": False, "{": {}, "[": []}


def _not_a_number(text: str, column: int) -> str:
    """Raw text in a number column that does not start like a number: null, or a type error for that column."""
    if text == "null":
        return _NULL
    raise _Mismatch("number", _JSON_KIND_OF.get(text[:1]), column)


def _decimal_text(text: str, column: int) -> str:
    """A `singer.decimal` string in a number column: checked and normalised as a decimal (never raw text in COPY)."""
    try:
        return str(decimal.Decimal(text))
    except decimal.InvalidOperation:
        raise _Mismatch("number", text, column) from None


def build_struct_loader(columns: list[ColumnPlan], required: list[str]) -> StructLoader | None:
    """A typed decoder for the stream's records and a row function over the decoded structs.

    msgspec validates every value's JSON type while decoding (in C), so the row function only formats. Returns None
    when the schema has a shape only the dict path handles (unions of scalars in one column, unusual names).
    """
    tree = _field_tree(columns)
    if tree is None:
        return None
    return StructLoader(columns, tree, required)


def _raw_json_text(raw: msgspec.Raw) -> str:
    """COPY text of a JSON value received as raw JSON (null -> NULL; \\u0000 replaced as for text columns)."""
    data = bytes(raw)
    if data == b"null":
        return _NULL
    if b"\\u0000" in data:
        return _json_text(_decode_exact(data))
    return _escape(data.decode("utf-8"))


class _QueueReader:
    """A file-like object psycopg2's copy_expert pulls from; the parser thread pushes bytes into it."""

    def __init__(self, q: queue.Queue[bytes | None]) -> None:
        self._q = q
        self.done = False

    def read(self, size: int = -1) -> bytes:  # noqa: ARG002 - chunks are pre-sized by the producer
        if self.done:
            return b""
        chunk = self._q.get()
        if chunk is None:
            self.done = True
            return b""
        return chunk

    readline = read


_in_copy = threading.local()


def _excepthook_quiet_during_copy() -> None:
    """Keep psycopg2's own report of a COPY whose connection was lost out of the log.

    When the connection dies during `copy_expert`, psycopg2 hands the error to `sys.excepthook` (the SDK's logs it at
    ERROR level, with a traceback) and then raises it: the raised error is the one the sink reports or recovers from.
    """
    hook = sys.excepthook
    if getattr(hook, "harborline_quiet_during_copy", False):
        return

    def excepthook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if not getattr(_in_copy, "active", False):
            hook(kind, exc, tb)

    excepthook.harborline_quiet_during_copy = True  # type: ignore[attr-defined]
    sys.excepthook = excepthook


@contextlib.contextmanager
def _copying() -> Iterator[None]:
    """Around a psycopg2 COPY in this thread (see `_excepthook_quiet_during_copy`)."""
    _excepthook_quiet_during_copy()
    _in_copy.active = True
    try:
        yield
    except SystemError as exc:
        # psycopg2 may report a lost connection mid-COPY as "returned a result with an exception set", the real
        # error being its cause: raise that one, so it is recognised (and recovered from, or reported clearly).
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, psycopg2.Error):
            raise cause from None
        raise
    finally:
        _in_copy.active = False


class CopyStream:
    """COPY ... FROM STDIN fed from this thread while the server consumes in another, with a bounded buffer."""

    def __init__(self, conn: psycopg2.extensions.connection, sql: str) -> None:
        self._q: queue.Queue[bytes | None] = queue.Queue(maxsize=8)
        self.error: BaseException | None = None
        self._conn = conn
        self._sql = sql
        self._thread = threading.Thread(target=self._run, name="copy", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        reader = _QueueReader(self._q)
        try:
            with _copying(), self._conn.cursor() as cur:
                cur.copy_expert(self._sql, reader, size=1 << 20)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the producer thread
            self.error = exc
            # Unblock the producer until it closes, unless the reader already saw the end (the server refused the
            # data only at the end of the COPY): then nothing more will be put.
            while not reader.done and self._q.get() is not None:
                pass

    def write(self, data: bytes) -> None:
        """Queue one chunk (blocks while the server is behind: memory stays bounded)."""
        if self.error is None:
            self._q.put(data)

    def close(self) -> None:
        """End the COPY and wait for the server; raise what the server said, if anything."""
        self._q.put(None)
        self._thread.join()
        if self.error is not None:
            raise self.error


#: What a watermark batch keeps beside its COPY stream: rows of keys that may exist (with sequence), their input
#: lines, and the COPY data already streamed into the table (to redo the batch the staging way if needed).
_Held = tuple[list[str], "array[int]", list[bytes]]


class _Commit(threading.Thread):
    """One handed-off batch: finish its COPY, merge, commit, on its own connection."""

    def __init__(  # noqa: PLR0917 - the batch's parts, handed over as they are
        self,
        sink: PostgresSink,
        conn: psycopg2.extensions.connection,
        copy: CopyStream | None,
        rows: int,
        lines: array[int],
        held: _Held | None,
        sent: list[bytes],
    ) -> None:
        super().__init__(name=f"commit-{sink.stream_name}", daemon=True)
        self.error: BaseException | None = None
        #: The connection the batch commits on: a new one replaces it when a transient fault made the batch redo.
        self.first_conn = self.conn = conn
        #: The batch transaction's id, known once its COPY is done: after a lost connection it tells whether the
        #: commit went through.
        self.xid: int | None = None
        #: Input lines of the rows a COPY error would be in; and whether the batch's own COPY is being finished.
        self.first_lines = self.lines = lines
        self.in_stream = False
        self._args = (sink, copy, rows, lines, held, sent)
        self._emitter = sink.target.state_emitter
        self._emitter.begin(self)  # before it can end: a STATE offered from now on waits for this commit
        self.start()

    def run(self) -> None:
        sink, copy, rows, lines, held, sent = self._args
        try:
            sink._commit_batch(self, copy, rows, lines, held, sent)  # noqa: SLF001 - the sink's own worker
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread by wait_committed()
            self.error = exc
        finally:
            sink.target.pool.release(self.conn)  # the slot is free for other streams at once
            # Writes the STATE that waited for this commit (none ever again if it failed).
            self._emitter.end(self, self.error)


class _ChunkReader:
    """A file-like object over an iterator of COPY data chunks, for psycopg2's copy_expert."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks

    def read(self, size: int = -1) -> bytes:  # noqa: ARG002 - chunks are pre-sized
        return next(self._chunks, b"")

    readline = read


def _chunked(rows: list[str]) -> Iterator[bytes]:
    """COPY text rows, encoded 2,048 at a time (never one copy of the whole list)."""
    step = 2048
    for start in range(0, len(rows), step):
        yield "".join(rows[start : start + step]).encode("utf-8")


def _rollback(conn: psycopg2.extensions.connection | None) -> None:
    """Roll back; a connection that is gone has nothing left to roll back (the server did it)."""
    if conn is not None and not conn.closed:
        with contextlib.suppress(psycopg2.Error):
            conn.rollback()


def _close_quietly(conn: psycopg2.extensions.connection | None) -> None:
    if conn is not None and not conn.closed:
        _rollback(conn)
        with contextlib.suppress(psycopg2.Error):
            conn.close()


#: A time of day whose second is 60 (a leap second), as COPY text.
_LEAP_SECOND = re.compile(rb"\d:\d\d:60(?!\d)")

#: Identifies a sink's temporary staging table on a pooled connection (a new SCHEMA needs a new one).
_SINK_TOKENS = itertools.count(1)

#: SQLSTATEs after which the same batch, sent again on a new connection, can succeed: the server shut down or is
#: restarting (57P01-57P03), a serialization failure or deadlock (40001, 40P01), a connection exception (08...).
_TRANSIENT_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "40001", "40P01"})

#: Reconnecting after a transient fault: at once, then after growing, jittered waits (a restarting server takes
#: seconds), for at most 60 seconds per batch; then the run stops with the fault as its error.
RECONNECT_POLICY = RetryPolicy(max_attempts=30, max_elapsed_seconds=60.0, base_delay=0.5, max_delay=5.0)
#: Times one batch is sent again after transient faults (each on a new connection) before the run stops.
REDO_ATTEMPTS = 5


def _is_transient(exc: BaseException, conn: psycopg2.extensions.connection | None) -> bool:
    """A fault of the connection or server, not of the batch: redoing it on a new connection may succeed."""
    if not isinstance(exc, psycopg2.Error):
        return False
    code = exc.pgcode or ""
    if code in _TRANSIENT_SQLSTATES or code.startswith("08"):
        return True
    if conn is None:  # opening a connection: no server answer (refused, unreachable); not a login or SQL error
        return isinstance(exc, (psycopg2.OperationalError, psycopg2.InterfaceError)) and not code
    # Connection lost (terminated backend, server crash, network): psycopg2 marks the connection closed.
    return isinstance(exc, (psycopg2.OperationalError, psycopg2.InterfaceError)) and bool(conn.closed)


def _transaction_committed(conn: psycopg2.extensions.connection, xid: int) -> bool:
    """Whether transaction `xid` committed (asked on another connection after the batch's was lost)."""
    clock = RECONNECT_POLICY.clock
    for _ in range(100):
        with conn.cursor() as cur:
            cur.execute("SELECT txid_status(%s)", (xid,))
            row = cur.fetchone()
        conn.commit()
        status = row[0] if row else None
        if status != "in progress":  # a backend that is going away may not have ended its transaction yet
            return status == "committed"
        clock.sleep(0.05)
    msg = f"transaction {xid} of the lost connection is still in progress"
    raise psycopg2.OperationalError(msg)


def _reason(exc: BaseException | None) -> str:
    """The first line of a server or connection error, quoted parts (values, names) masked."""
    if exc is None:
        return "unknown error"
    diag = getattr(exc, "diag", None)
    text = str(exc).strip()
    primary = (diag.message_primary if diag is not None else None) or (
        text.splitlines()[0] if text else type(exc).__name__
    )
    return _quoted.sub('"…"', primary)


#: Quoted parts of a server message (values, names): never logged.
_quoted = re.compile(r'"[^"]*"')
_COPY_CONTEXT = re.compile(r"COPY [^,]+, line (\d+)(?:, column ([^:]+))?")


class PostgresSink(BatchSink):
    """One stream into one table."""

    target: TargetPostgres

    def __init__(self, target: TargetPostgres, stream_name: str, schema: dict[str, Any], key_properties: Any) -> None:
        self.target = target
        pseudonymizer = target.pseudonymizer
        if pseudonymizer is not None and pseudonymizer.paths_for(stream_name):
            try:
                schema = pseudonymizer.transform_schema(stream_name, schema)
            except ConfigValidationError as exc:  # e.g. a configured path the stream does not have
                raise TargetLoadError(f"stream {stream_name!r}: {exc}") from None
            self._pseudonymize: Callable[[dict[str, Any]], dict[str, Any]] | None = lambda r: (
                pseudonymizer.transform_record(stream_name, r)
            )
        else:
            self._pseudonymize = None
        super().__init__(target, stream_name, schema, key_properties)
        self.conn: psycopg2.extensions.connection | None = None
        self._copy: CopyStream | None = None
        self._chunks: list[str] = []
        self._chunk_chars = 0
        self._batch_rows = 0
        self._batch_bytes = 0
        self._lines = array("q")
        self._watermark: int | None = None
        self._watermark_lost = False
        self._hi: Any = _BELOW_ALL
        self._old_rows: list[str] = []
        self._old_counted = 0
        self._old_lines = array("q")
        self._sent: list[bytes] = []
        self._reopened = 0
        self._keyof: Callable[[Any], Any] | None = None
        self._key_getter: Callable[[Any], Any] | None = None
        self._overwrite_pending = False
        self._session_sql: tuple[str, ...] = ()
        self._token = next(_SINK_TOKENS)
        #: `conn` holds one of the pool's streaming slots (an open batch streaming its COPY).
        self._streaming = False
        #: The open batch could not get a streaming connection ready: it sends its data at the hand-off.
        self._no_stream = False
        #: Rows of the open batch already flushed (their input lines are `_lines[:_lines_flushed]`).
        self._lines_flushed = 0
        #: Date, time and timestamp columns (checked for leap seconds per flushed chunk).
        self._temporal: list[int] = []
        self._inflight: _Commit | None = None
        self._max_rows = int(self.config.get("batch_size_rows") or 100_000)
        self._max_bytes = target.batch_size_bytes
        self.with_metadata = self.include_sdc_metadata_properties

    # -- configuration -------------------------------------------------------------------------------------------

    def get_validator(self) -> BaseJSONSchemaValidator | None:
        """Validation happens in the generated row builder (type checks while converting), not per dict."""
        return None

    @property
    def max_size(self) -> int:
        """Rows per batch."""
        return self._max_rows

    @property
    def is_full(self) -> bool:
        """Full by rows or by bytes, whichever comes first."""
        return self._batch_rows >= self._max_rows or self._batch_bytes >= self._max_bytes

    @property
    def current_size(self) -> int:
        """Rows in the open batch."""
        return self._batch_rows

    # -- table setup ---------------------------------------------------------------------------------------------

    def setup(self) -> None:
        """Create or evolve the table for this SCHEMA (one transaction), then prepare the load path.

        A server or connection error becomes one clear TargetLoadError (no traceback); the DDL transaction is rolled
        back, so the table is as it was.
        """
        pool = self.target.pool
        conn = pool.acquire()
        try:
            if conn is None:
                try:
                    conn = pool.open()
                except psycopg2.Error as exc:
                    msg = f"stream {self.stream_name!r}: {pool.describe(exc)}"
                    raise TargetLoadError(msg) from None
            self.conn = conn
            self._setup()
        except psycopg2.Error as exc:
            self.conn = None
            pool.release(conn)
            self.close()
            lines = str(exc).strip().splitlines()
            primary = exc.diag.message_primary or (lines[0] if lines else type(exc).__name__)
            msg = f"stream {self.stream_name!r}: preparing the table failed: {primary} (nothing was changed)"
            raise TargetLoadError(msg) from None
        except BaseException:
            self.conn = None
            pool.release(conn)
            raise
        # The open batch takes a connection when it first has data to stream (see `pool`).
        self.conn = None
        pool.release(conn)

    def _setup(self) -> None:
        self.schema_name = self.target.schema_name
        t = self.target
        assert self.conn is not None  # noqa: S101
        t.ensure_schema(self.conn)
        with self.conn.cursor() as cur:
            self.table_name = t.table_name_for(cur, self.stream_name)
            existing = connector.read_columns(cur, self.schema_name, self.table_name)
            self.plan: TablePlan = plan_table(
                self.stream_name,
                self.schema,
                list(self.key_properties),
                existing,
                connector.RULES,
                system_columns={t.timestamp_column: ColumnType(Kind.TIMESTAMP)},
                reserved=[SEQ_COLUMN],
                max_depth=t.flattening_max_depth,
            )
            existing_pk = connector.read_primary_key(cur, self.schema_name, self.table_name) if existing else []
            keys = self.plan.key_columns
            # Append-only tables take duplicates by design, so only merging load methods get a primary key.
            keyed = bool(keys) and t.load_method in {"upsert", "overwrite"}
            ddl = connector.plan_ddl(
                self.plan, self.schema_name, self.table_name, self.stream_name, t.timestamp_column, primary_key=keyed
            )
            if existing is not None and keyed and existing_pk != keys:
                ddl.extend(self._replace_primary_key(existing_pk, keys))
            for stmt in ddl:
                cur.execute(stmt)
            self.key_columns = keys or existing_pk
        self.conn.commit()
        if self.plan.create:
            self.logger.info("Created table %s.%s", self.schema_name, self.table_name)
        for col in self.plan.add:
            self.logger.info("Added column %s.%s (%s)", self.table_name, col.name, col.type)
        for col, old in self.plan.widen:
            self.logger.info("Widened column %s.%s from %s to %s", self.table_name, col.name, old, col.type)
        self._prepare_load()

    def _replace_primary_key(self, old: list[str], new: list[str]) -> list[str]:
        target = connector.qualified(self.schema_name, self.table_name)
        stmts = []
        if old:
            with self.conn.cursor() as cur:  # type: ignore[union-attr]
                cur.execute(
                    "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'p'", (target,)
                )
                row = cur.fetchone()
            if row:
                stmts.append(f"ALTER TABLE {target} DROP CONSTRAINT {quote(row[0])}")
        stmts.extend(f"ALTER TABLE {target} ALTER COLUMN {quote(k)} SET NOT NULL" for k in new)
        stmts.append(f"ALTER TABLE {target} ADD PRIMARY KEY (" + ", ".join(quote(k) for k in new) + ")")
        return stmts

    def _prepare_load(self) -> None:
        t = self.target
        self.load_columns = self.plan.source_columns
        self._temporal = [
            i for i, c in enumerate(self.load_columns) if c.type.kind in {Kind.DATE, Kind.TIME, Kind.TIMESTAMP}
        ]
        self._row = build_row_function(self.load_columns, validate=t.validate_records)
        required = [r for r in (self.schema.get("required") or []) if isinstance(r, str)]
        loader = build_struct_loader(self.load_columns, required) if t.validate_records else None
        self.typed = loader is not None and self._pseudonymize is None and not self.with_metadata
        self._key_names = [c.source.path[0] for c in self.plan.columns if c.is_key and c.source]
        self._required = [
            r for r in (self.schema.get("required") or []) if isinstance(r, str) and r not in self._key_names
        ]
        self.mode = t.load_method_for(self)
        self._watermark = self._watermark_column(loader)
        # Staged rows carry their input line number as sequence: the newest record of a key wins.
        self._seq = self.mode != "append-only" and self._watermark is None
        if loader is not None:
            self._decode_typed, self._row_typed = loader.decode, loader.row
            self.run = loader.run_function(self.stream_name, seq=self._seq, watermark=self._watermark)
            self._keyof = loader.value_of(self._watermark) if self._watermark is not None else None
        watermark_source = self.load_columns[self._watermark].source if self._watermark is not None else None
        self._key_getter = make_getter(watermark_source.path) if watermark_source is not None else None
        target = connector.qualified(self.schema_name, self.table_name)
        cols = ", ".join(quote(c.name) for c in self.load_columns)
        # What the open batch streams into while it is read: the table itself, or (merging loads) the staging table.
        self._table_copy_sql = f"COPY {target} ({cols}) FROM STDIN"
        self._stream_sql = self._table_copy_sql
        if self.mode == "append-only":
            return None
        if self._watermark is not None:
            with self.conn.cursor() as cur:  # type: ignore[union-attr]
                key = quote(self.load_columns[self._watermark].name)
                cur.execute(f"SELECT max({key}) FROM {target}")
                top = cur.fetchone()[0]
            self._hi = _BELOW_ALL if top is None else top
        plain_cols = cols
        cols += f", {quote(SEQ_COLUMN)}"
        if self.mode == "upsert":
            # One per table: a pooled connection serves several streams (and later SCHEMAs of one stream).
            stage = "pg_temp." + quote("hl_stage_" + hashlib.sha256(target.encode()).hexdigest()[:16])
            stage_sql: tuple[str, ...] = (
                f"DROP TABLE IF EXISTS {stage}",
                f"CREATE TEMP TABLE {stage} (LIKE {target} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS",
                f"ALTER TABLE {stage} ADD COLUMN {quote(SEQ_COLUMN)} bigint",
            )
        else:  # overwrite: a real staging table, swapped in once at the end of the run
            stage = connector.qualified(self.schema_name, t.overwrite_stage_name(self.table_name))
            stage_sql = (
                f"DROP TABLE IF EXISTS {stage}",
                f"CREATE TABLE {stage} (LIKE {target} INCLUDING DEFAULTS)",
                f"ALTER TABLE {stage} ADD COLUMN {quote(SEQ_COLUMN)} bigint",
            )
            if self.table_name in t.overwrite_started:
                stage_sql = self._resync_stage_sql(stage)
            t.overwrite_started.add(self.table_name)
        self._stage = stage
        if self.mode == "upsert":
            self._session_sql = stage_sql  # every load connection needs its own temporary staging table
            self._ensure_session(self.conn)
            return self._set_copy_sql(stage, plain_cols, cols)
        with self.conn.cursor() as cur:  # type: ignore[union-attr]
            for stmt in stage_sql:
                cur.execute(stmt)
        self.conn.commit()  # type: ignore[union-attr]
        return self._set_copy_sql(stage, plain_cols, cols)

    def _set_copy_sql(self, stage: str, plain_cols: str, cols: str) -> None:
        self._stage_copy_unsequenced = f"COPY {stage} ({plain_cols}) FROM STDIN"
        self._copy_sql = f"COPY {stage} ({cols}) FROM STDIN"
        if self._watermark is None:
            self._stream_sql = self._copy_sql

    def _watermark_column(self, loader: StructLoader | None) -> int | None:
        """The key column that makes new keys recognisable without asking the server, if the stream has one.

        Upserts keyed by one integer column: a key above every key the table held when the run started and every
        key this run sent cannot exist in the table, so its row is COPY'd straight in (the cost of an append);
        only the other rows take the staging table and `INSERT ... ON CONFLICT`. Sources that number new rows
        upwards (most of them) load their new rows at append speed.
        """
        keys = [i for i, c in enumerate(self.load_columns) if c.is_key]
        if loader is None or not self.typed or self.mode != "upsert" or len(keys) != 1:
            return None
        col = self.load_columns[keys[0]]
        if (
            col.type.kind is not Kind.INTEGER
            or col.source is None
            or _json_types(col.source.schema) - {"null"} != {"integer"}
        ):
            return None
        return keys[0]

    def _new_load_connection(self) -> psycopg2.extensions.connection:
        """A new connection for a slot this sink holds (opened, or reopened after a fault), ready to load."""
        conn = self.target.pool.open()
        try:
            self._ensure_session(conn)
        except BaseException:
            _close_quietly(conn)
            raise
        return conn

    def _ensure_session(self, conn: psycopg2.extensions.connection) -> None:
        """Give a (pooled) connection this sink's temporary staging table, once (it may hold an older one)."""
        if not self._session_sql:
            return
        prepared: dict[str, int] = conn.hl_prepared
        if prepared.get(self._stage) == self._token:
            return
        with conn.cursor() as cur:
            for stmt in self._session_sql:
                cur.execute(stmt)
        conn.commit()
        prepared[self._stage] = self._token

    def _checkout_streaming(self) -> psycopg2.extensions.connection | None:
        """A connection for the open batch to stream into, if the pool has one free right away and it is ready.

        Streaming is an optimisation: on any failure the batch keeps its data and sends it when it is handed off
        (where a failure is reported, after the earlier batches' outcome), and it does not try again.
        """
        if self._no_stream:
            return None
        pool = self.target.pool
        taken, conn = pool.try_acquire_streaming()
        if not taken:
            return None
        try:
            if conn is None:
                conn = self._new_load_connection()
            else:
                self._ensure_session(conn)
        except psycopg2.Error:
            _close_quietly(conn)
            pool.release(None, streaming=True)
            self._no_stream = True
            return None
        return conn

    def _checkout(self, lines: array[int]) -> psycopg2.extensions.connection:
        """A connection ready to load a handed-off batch, from the pool (waiting for a free one if need be)."""
        pool = self.target.pool
        conn = pool.acquire()
        try:
            if conn is not None:
                try:
                    self._ensure_session(conn)
                except psycopg2.Error:  # e.g. an idle connection the server dropped meanwhile: open a new one
                    _close_quietly(conn)
                    conn = None
            if conn is None:
                try:
                    conn = self._new_load_connection()
                except psycopg2.Error as exc:
                    if not _is_transient(exc, None):
                        raise TargetLoadError(self._load_failed(exc, lines)) from None
                    self.logger.warning("Stream %r: %s; reconnecting", self.stream_name, _reason(exc))
                    conn = self._reconnect(exc, lines)
        except BaseException:
            pool.release(None)
            raise
        return conn

    def _resync_stage_sql(self, stage: str) -> tuple[str, ...]:
        """A schema change in the middle of an overwrite run: give the staging table the same new columns/types."""
        stmts = [f"ALTER TABLE {stage} ADD COLUMN {quote(c.name)} {connector.pg_type(c.type)}" for c in self.plan.add]
        stmts += [
            f"ALTER TABLE {stage} ALTER COLUMN {quote(c.name)} TYPE {connector.pg_type(c.type)}"
            f" USING {quote(c.name)}::{connector.pg_type(c.type)}"
            for c, _old in self.plan.widen
        ]
        return tuple(stmts)

    # -- the record path -----------------------------------------------------------------------------------------

    def append_raw(self, raw: msgspec.Raw, line: int) -> bool:
        """`append` for a record still in JSON: decoded straight into a typed struct (validated in C)."""
        try:
            record = self._decode_typed(raw)
            row = self._row_typed(record)
        except msgspec.ValidationError as exc:
            raise RecordTypeError(self._describe_validation_error(line, exc)) from None
        except (UnicodeDecodeError, msgspec.DecodeError) as exc:
            # msgspec < 0.23 raised UnicodeDecodeError for invalid UTF-8; 0.23+ raises DecodeError (the envelope
            # decode keeps the record as raw bytes, so this is the first place its strings are checked).
            what = "holds text that is not valid UTF-8" if "UTF-8" in str(exc) else f"could not be decoded ({exc})"
            msg = f"stream {self.stream_name!r}, input line {line}: the record {what}"
            raise RecordTypeError(msg) from None
        except _Mismatch as exc:
            col = self.load_columns[exc.column or 0]
            raise RecordTypeError(self._type_error(line, col, _JSON_NAMES.get(exc.got, exc.got))) from None
        except _MissingKey as exc:
            raise self._missing_key_error(exc.name, line) from None
        return self._add_row(row, line, None if self._keyof is None else self._keyof(record))

    def _add_row(self, row: str, line: int, key: Any = None) -> bool:
        """Queue one COPY row of the open batch; True when the batch is full (by rows or by bytes)."""
        if self._watermark_lost:
            self._hi = _ABOVE_ALL
        if self._watermark is not None and not key > self._hi:
            row = f"{row[:-1]}\t{line}\n"
            self._old_rows.append(row)
            self._old_lines.append(line)
            return self.rows_added(1, len(row))
        if self._watermark is not None:
            self._hi = key
        elif self._seq:
            row = f"{row[:-1]}\t{line}\n"
        self._chunks.append(row)
        self._lines.append(line)
        return self.rows_added(1, len(row))

    @property
    def room(self) -> tuple[int, int]:
        """(rows, characters) the open batch and chunk take before `rows_added` must run."""
        chars = min(_FLUSH_CHARS - self._chunk_chars, self._max_bytes - self._batch_bytes - self._chunk_chars)
        return self._max_rows - self._batch_rows, chars

    def rows_added(self, rows: int, chars: int) -> bool:
        """Account for rows queued in the chunk (by `_add_row` or the tight loop); True when the batch is full."""
        self._batch_rows += rows
        self._chunk_chars += chars
        # Flush also when the unflushed text alone may reach the byte bound (a character is at least one byte), so
        # the bound is checked on exact byte counts and a batch never runs far past it.
        if self._chunk_chars >= _FLUSH_CHARS or self._batch_bytes + self._chunk_chars >= self._max_bytes:
            self._flush()
        return self._batch_rows >= self._max_rows or self._batch_bytes >= self._max_bytes

    def consume(self, raw: bytes, lines: Iterator[bytes], line: int) -> tuple[bytes | None, int, int, bool]:
        """Take RECORD lines of this stream through the tight loop, starting with `raw` (input line `line`).

        Returns the first line it did not take (None when it stopped because the chunk or batch filled up or the
        input ended), the number of the last line it read, how many records it took, and whether the batch is full.
        """
        rows, chars = self.room
        backslash = b"\\" if raw.__class__ is bytes else "\\"  # in-process callers may pass text lines
        leftover, line, taken, taken_chars, self._hi = self.run(
            raw,
            lines,
            line,
            rows,
            chars,
            self._chunks.append,
            self._lines.append,
            backslash,
            self._hi,
            self._old_rows.append,
            self._old_lines.append,
        )
        if self._watermark_lost:
            self._hi = _ABOVE_ALL
        return leftover, line, taken, taken > 0 and self.rows_added(taken, taken_chars)

    def _missing_key_error(self, name: str, line: int) -> MissingKeyPropertiesError:
        return MissingKeyPropertiesError(
            f"stream {self.stream_name!r}, input line {line}: record is missing key property {name!r} "
            f"(key_properties {list(self.key_properties)})"
        )

    def _describe_validation_error(self, line: int, exc: msgspec.ValidationError) -> str:
        """Name the property and the types, in the schema's words; never the value."""
        where = f"stream {self.stream_name!r}, input line {line}"
        match = _MSGSPEC_ERROR.match(str(exc))
        if not match:
            return f"{where}: record does not match its schema ({exc})"
        got, path = match.group("got"), tuple(p for p in match.group("path").split(".") if p)
        by_path = {c.source.path: c for c in self.load_columns if c.source}
        if not path:
            return f"{where}: the record is {_JSON_NAMES.get(got, got)}, not an object"
        col = by_path.get(path)
        if col is None:
            return f"{where}: property {'.'.join(path)!r} is {_JSON_NAMES.get(got, got)}, but the schema says object"
        return self._type_error(line, col, _JSON_NAMES.get(got, got))

    def _type_error(self, line: int, col: ColumnPlan, got: str) -> str:
        """Name the property and the types, in the schema's words; never the value (it may be personal data)."""
        prop = ".".join(col.source.path) if col.source else col.name
        where = f"stream {self.stream_name!r}, input line {line}"
        return f"{where}: property {prop!r} is {got}, but the schema says {col.type}"

    def append(self, record: dict[str, Any], line: int) -> bool:
        """Add one record to the open batch; True when the batch is full (called per RECORD: keep it lean)."""
        if self._pseudonymize is not None:
            record = self._pseudonymize(record)
        if self._required:
            missing = [r for r in self._required if r not in record]
            if missing:
                msg = f"stream {self.stream_name!r}, input line {line}: record is missing required {missing}"
                raise RecordTypeError(msg)
        try:
            row = self._row(record)
        except _Mismatch as exc:
            raise RecordTypeError(self._describe_mismatch(record, line, exc)) from None
        except _MissingKey as exc:
            raise self._missing_key_error(exc.name, line) from None
        return self._add_row(row, line, None if self._key_getter is None else self._key_getter(record))

    def _describe_mismatch(self, record: dict[str, Any], line: int, exc: _Mismatch) -> str:
        """Name the property that failed, never its value (values may be personal data)."""
        for col in self.load_columns:
            assert col.source is not None  # noqa: S101
            try:
                column_converter(col, validate=True)(make_getter(col.source.path)(record))
            except _Mismatch:
                return (
                    f"stream {self.stream_name!r}, input line {line}: property {'.'.join(col.source.path)!r} "
                    f"is {exc.got}, but the schema says {col.type}"
                )
        return f"stream {self.stream_name!r}, input line {line}: a value is {exc.got}, the schema says {exc.expected}"

    def _flush(self) -> None:
        if self._watermark is not None:
            # Held rows count toward the batch's byte bound too (as characters: they are sent at the commit).
            new = itertools.islice(self._old_rows, self._old_counted, None)
            if self._temporal:
                held = list(new)
                self._batch_bytes += sum(map(len, held))
                if ":60" in "".join(held):
                    self._refuse_leap_second([r.encode("utf-8") for r in held], self._old_lines, self._old_counted)
            else:
                self._batch_bytes += sum(map(len, new))
            self._old_counted = len(self._old_rows)
        if not self._chunks:
            self._chunk_chars = 0
            return
        data = "".join(self._chunks).encode("utf-8")
        self._chunks.clear()
        self._chunk_chars = 0
        self._batch_bytes += len(data)
        flushed, self._lines_flushed = self._lines_flushed, len(self._lines)
        if self._temporal and b":60" in data:  # one search per chunk (about 1 MB), not per record
            self._refuse_leap_second(data.split(b"\n"), self._lines, flushed)
        # Kept until the commit: after a transient fault the batch is sent again on a new connection (and a watermark
        # batch may have to be redone the staging way).
        self._sent.append(data)
        if self._copy is None:
            if self.conn is None:
                self.conn = self._checkout_streaming()
                if self.conn is None:
                    return  # no connection free now: the data is sent when the batch is handed off
                self._streaming = True
                for chunk in self._sent[:-1]:  # what the batch kept before it had a connection
                    self._start_copy().write(chunk)
        elif self._copy.error is not None:
            if _is_transient(self._copy.error, self.conn):
                self._reopen_batch()  # sends every chunk of the batch again, this one included
                return
            self._finish_copy()  # raises with context
        self._start_copy().write(data)

    def _refuse_leap_second(self, rows: list[bytes], lines: array[int], first: int) -> None:
        """Stop at a leap second (`23:59:60`) in a date/time column, naming stream, input line and property.

        PostgreSQL would store it as the next second (`9999-12-31T23:59:60` as year 10000, which no client reads
        back): the data is loaded exactly as sent or not at all.
        """
        for k, row in enumerate(rows):
            if b":60" not in row:
                continue
            fields = row.split(b"\t")
            for i in self._temporal:
                if i < len(fields) and _LEAP_SECOND.search(fields[i]):
                    col = self.load_columns[i]
                    prop = ".".join(col.source.path) if col.source else col.name
                    line = lines[first + k] if first + k < len(lines) else "?"
                    msg = (
                        f"stream {self.stream_name!r}, input line {line}: property {prop!r} holds a leap second "
                        "(second 60), which PostgreSQL cannot store as such (it would become the next second): "
                        "refused; nothing of the batch was committed"
                    )
                    raise RecordTypeError(msg)

    def _start_copy(self) -> CopyStream:
        if self._copy is None:
            self._copy = CopyStream(self.conn, self._stream_sql)  # type: ignore[arg-type,unused-ignore]
        return self._copy

    def _reopen_batch(self) -> None:
        """The open batch's connection was lost mid-COPY: stream the batch so far again on a new connection."""
        copy, self._copy = self._copy, None
        assert copy is not None  # noqa: S101
        fault = copy.error
        with contextlib.suppress(psycopg2.Error):
            copy.close()
        _close_quietly(self.conn)
        self.conn = None
        self._reopened += 1
        if self._reopened > REDO_ATTEMPTS:
            raise TargetLoadError(self._load_failed(fault, self._lines)) from None  # type: ignore[arg-type]
        self.logger.warning("Stream %r: %s; reconnecting and redoing the batch", self.stream_name, _reason(fault))
        self.conn = self._reconnect(fault, self._lines)
        self._copy = CopyStream(self.conn, self._stream_sql)
        for chunk in self._sent:
            self._copy.write(chunk)

    def _reconnect(
        self, fault: BaseException | None, lines: array[int], held: _Held | None = None, started: float | None = None
    ) -> psycopg2.extensions.connection:
        """A new load connection after a transient fault, tried under RECONNECT_POLICY; a clear error when none.

        `started`: when the batch's first fault happened (its whole redo shares one time budget).
        """
        policy = RECONNECT_POLICY
        if started is None:
            started = policy.clock.monotonic()
        for attempt in range(1, policy.max_attempts + 1):
            if attempt > 1:
                delay = policy.backoff_delay(attempt - 1)
                if policy.clock.monotonic() - started + delay > policy.max_elapsed_seconds:
                    break
                policy.clock.sleep(delay)
            try:
                return self._new_load_connection()
            except psycopg2.Error as exc:
                if not _is_transient(exc, None):
                    fault = exc
                    break
                fault = exc
        raise TargetLoadError(self._load_failed(fault, lines, held)) from None  # type: ignore[arg-type]

    def _finish_copy(self) -> None:
        copy, self._copy = self._copy, None
        if copy is None:
            return
        try:
            copy.close()
        except psycopg2.Error as exc:
            _rollback(self.conn)
            if isinstance(exc, psycopg2.OperationalError):  # connection lost, shutdown, cancel: not the data
                raise TargetLoadError(self._load_failed(exc, self._lines)) from None
            raise TargetLoadError(self._describe_copy_error(exc)) from None

    def _describe_copy_error(self, exc: psycopg2.Error, lines: array[int] | None = None) -> str:
        diag = exc.diag
        primary = _quoted.sub('"…"', diag.message_primary or str(exc).splitlines()[0])
        where = ""
        match = _COPY_CONTEXT.search(diag.context or "")
        lines = self._lines if lines is None else lines
        if match:
            n = int(match.group(1))
            if 0 < n <= len(lines):
                where = f", input line {lines[n - 1]}"
            if match.group(2):
                where += f", column {match.group(2)!r}"
        return f"stream {self.stream_name!r}{where}: PostgreSQL refused the batch: {primary} (nothing was committed)"

    # -- draining ------------------------------------------------------------------------------------------------

    def process_batch(self, context: dict[str, Any]) -> None:  # noqa: ARG002
        """Hand the batch to a commit thread (finish COPY, merge when upserting, commit) and go on reading.

        The next batch streams into a second connection meanwhile, so the server's merge overlaps Python's parsing.
        Batches still commit in order (the previous commit is awaited first: later batches win), and the target
        writes STATE only once every batch before it has committed.
        """
        self._flush()
        copy, self._copy = self._copy, None
        conn, rows, lines = self.conn, self._batch_rows, self._lines
        if self._streaming:
            self.target.pool.streaming_ended()  # the connection now belongs to the commit
            self._streaming = False
        self.conn = None
        try:
            self.wait_committed()
        except BaseException:
            if copy is not None:
                with contextlib.suppress(Exception):  # rolled back by `release`
                    copy.close()
            if conn is not None:
                self.target.pool.release(conn)
            raise
        if conn is None:  # the batch did not stream: send its data on a connection of the pool
            conn = self._checkout(lines)
        if self.mode == "overwrite":
            self._overwrite_pending = True
        old = (self._old_rows, self._old_lines, self._sent) if self._watermark is not None else None
        self._inflight = _Commit(self, conn, copy, rows, lines, old, self._sent)
        self._batch_bytes = 0
        self._lines = array("q")
        self._old_rows, self._old_lines, self._sent = [], array("q"), []
        self._old_counted = 0
        self._lines_flushed = 0
        self._reopened = 0
        self._no_stream = False

    @property
    def committing(self) -> bool:
        """A handed-off batch is not committed yet."""
        return self._inflight is not None and self._inflight.is_alive()

    def wait_committed(self) -> None:
        """Wait for the handed-off batch; raise its error (nothing of it was committed) if it failed."""
        job, self._inflight = self._inflight, None
        if job is None:
            return
        job.join()
        if job.error is not None:
            raise job.error

    def _commit_batch(  # noqa: PLR0917 - the batch's parts, as handed over
        self,
        job: _Commit,
        copy: CopyStream | None,
        rows: int,
        lines: array[int],
        held: _Held | None,
        sent: list[bytes],
    ) -> None:
        """Runs in the commit thread."""
        started = time.perf_counter()
        try:
            # A batch that did not stream sends the data it kept now (the same way as a redo).
            self._commit_once(job, job.conn, copy, held, sent if copy is None else None)
        except psycopg2.Error as exc:
            _rollback(job.conn)
            if _is_transient(exc, job.conn):
                self._redo_after_fault(job, exc, lines, held, sent)
            else:
                self._refused(job, exc, lines, held)
        self.logger.info(
            "Committed %d rows into %s.%s (%s) in %.2fs",
            rows,
            self.schema_name,
            self.table_name,
            self.mode,
            time.perf_counter() - started,
        )
        self.record_counter_metric.increment(rows)

    def _commit_once(
        self,
        job: _Commit,
        conn: psycopg2.extensions.connection,
        copy: CopyStream | None,
        held: _Held | None,
        replay: list[bytes] | None,
    ) -> None:
        """Finish the batch's COPY (or send its kept data again: `replay`), merge when upserting, commit."""
        job.xid = None
        job.lines = job.first_lines
        job.in_stream = True
        if copy is not None:
            copy.close()
        with conn.cursor() as cur:
            if replay:
                with _copying():
                    cur.copy_expert(self._stream_sql, _ChunkReader(iter(replay)), size=1 << 20)
            job.in_stream = False
            cur.execute("SELECT txid_current()")
            job.xid = cur.fetchone()[0]
            if held is not None:
                if held[0]:
                    job.lines = held[1]  # a COPY error below is in these rows
                    with _copying():
                        cur.copy_expert(self._copy_sql, _ChunkReader(_chunked(held[0])), size=1 << 20)
                    cur.execute(self._merge_sql(self._stage, self.table_target))
            elif self.mode == "upsert":
                cur.execute(self._merge_sql(self._stage, self.table_target))
        conn.commit()

    def _refused(self, job: _Commit, exc: psycopg2.Error, lines: array[int], held: _Held | None) -> None:
        """The server refused the batch (not a transient fault): redo it the staging way or raise one clear error."""
        from_stream = job.in_stream  # the error is in the rows streamed during the read (not held or merged ones)
        if isinstance(exc, psycopg2.errors.UniqueViolation) and held is not None and from_stream:
            self._redo_staged(job.conn, job.lines, held)
        elif isinstance(exc, psycopg2.OperationalError):  # shutdown, cancel, lock or statement timeout
            raise TargetLoadError(self._load_failed(exc, lines, held)) from None
        elif isinstance(exc, psycopg2.DataError) or from_stream:
            raise TargetLoadError(self._describe_copy_error(exc, job.lines)) from None
        else:
            raise TargetLoadError(self._load_failed(exc, lines, held)) from None

    def _redo_after_fault(
        self, job: _Commit, fault: psycopg2.Error, lines: array[int], held: _Held | None, sent: list[bytes]
    ) -> None:
        """The batch's connection was lost (or the server shut down, or a deadlock): redo it on a new connection.

        If the commit itself may have gone through (the connection was lost while committing), the transaction's
        status on the server decides: a committed batch is not sent twice.
        """
        started = RECONNECT_POLICY.clock.monotonic()
        for attempt in range(1, REDO_ATTEMPTS + 1):
            self.logger.warning(
                "Stream %r: %s; reconnecting and redoing the batch (attempt %d)",
                self.stream_name,
                _reason(fault),
                attempt + 1,
            )
            _close_quietly(job.conn)
            job.conn = self._reconnect(fault, lines, held, started)
            try:
                if job.xid is not None and _transaction_committed(job.conn, job.xid):
                    self.logger.info("Stream %r: the batch had been committed before the fault", self.stream_name)
                    return
                self._commit_once(job, job.conn, None, held, sent)
            except psycopg2.Error as exc:
                _rollback(job.conn)
                if not _is_transient(exc, job.conn):
                    self._refused(job, exc, lines, held)
                    return
                fault = exc
            else:
                return
        raise TargetLoadError(self._load_failed(fault, lines, held)) from None

    def _load_failed(self, exc: BaseException, lines: array[int] | None = None, held: _Held | None = None) -> str:
        """One line for a batch that failed as a whole: stream, the input lines it held, the server's reason."""
        why = _reason(exc)
        spans = [a for a in (lines, held[1] if held is not None else None) if a]
        where = ""
        if spans:
            first, last = min(min(a) for a in spans), max(max(a) for a in spans)
            where = f", input line {first}" if first == last else f", input lines {first}-{last}"
        return f"stream {self.stream_name!r}{where}: loading the batch failed: {why} (nothing was committed)"

    def _redo_staged(self, conn: psycopg2.extensions.connection, lines: array[int], held: _Held) -> None:
        """A key above the watermark was in the table after all (another writer): redo the batch the staging way.

        The rows streamed to the table go to the staging table without sequence (they are the older record of their
        key: a row of the same key that came later was held with its sequence), then the usual merge. From now on
        every row takes the staging way.
        """
        self._watermark_lost = True
        old_rows, old_lines, sent = held
        self.logger.warning(
            "Stream %r: a new key was already in %s.%s (another writer?); redoing the batch through the staging table",
            self.stream_name,
            self.schema_name,
            self.table_name,
        )
        try:
            with _copying(), conn.cursor() as cur:
                cur.copy_expert(self._stage_copy_unsequenced, _ChunkReader(iter(sent)), size=1 << 20)
                lines = old_lines  # a COPY error from here on is in the held rows
                cur.copy_expert(self._copy_sql, _ChunkReader(_chunked(old_rows)), size=1 << 20)
                cur.execute(self._merge_sql(self._stage, self.table_target))
            conn.commit()
        except psycopg2.Error as exc:
            _rollback(conn)
            if isinstance(exc, psycopg2.DataError):
                raise TargetLoadError(self._describe_copy_error(exc, lines)) from None
            raise TargetLoadError(self._load_failed(exc, lines, held)) from None

    def mark_drained(self) -> None:
        """Reset batch counters after the SDK's bookkeeping."""
        self._batch_records_read = self._batch_rows
        super().mark_drained()
        self._batch_rows = 0

    @property
    def table_target(self) -> str:
        """Quoted `"schema"."table"`."""
        return connector.qualified(self.schema_name, self.table_name)

    def _merge_sql(self, source: str, target: str, *, replace: bool = False) -> str:
        ts = quote(self.target.timestamp_column)
        cols = [quote(c.name) for c in self.load_columns]
        col_list = ", ".join(cols)
        keys = [quote(k) for k in self.key_columns]
        if not keys:
            return f"INSERT INTO {target} ({col_list}, {ts}) SELECT {col_list}, now() FROM {source}"
        key_list = ", ".join(keys)
        select = (
            f"SELECT DISTINCT ON ({key_list}) {col_list}, now() FROM {source} "
            f"ORDER BY {key_list}, {quote(SEQ_COLUMN)} DESC NULLS LAST"
        )
        sql = f"INSERT INTO {target} ({col_list}, {ts}) {select}"
        if replace:
            return sql
        updates = [f"{c} = EXCLUDED.{c}" for c in cols if c not in keys] + [f"{ts} = EXCLUDED.{ts}"]
        return f"{sql} ON CONFLICT ({key_list}) DO UPDATE SET {', '.join(updates)}"

    @property
    def holds_state(self) -> bool:
        """An overwrite run's rows are only in the target table after the final swap: hold STATE until then."""
        return self.mode == "overwrite" and (self._overwrite_pending or self._batch_rows > 0)

    def finalize_overwrite(self) -> None:
        """Replace the table's rows with the staged ones in one transaction (readers see old or new, never none)."""
        self.wait_committed()
        if self.mode != "overwrite" or not self._overwrite_pending:
            return
        pool = self.target.pool
        conn = pool.acquire()
        try:
            conn = conn or pool.open()
            with conn.cursor() as cur:
                cur.execute(f"DELETE FROM {self.table_target}")
                cur.execute(self._merge_sql(self._stage, self.table_target, replace=True))
                cur.execute(f"DROP TABLE {self._stage}")
            conn.commit()
        except psycopg2.Error as exc:
            _rollback(conn)
            msg = (
                f"stream {self.stream_name!r}: replacing the rows of {self.schema_name}.{self.table_name} failed: "
                f"{_reason(exc)} (the table keeps its previous rows)"
            )
            raise TargetLoadError(msg) from None
        finally:
            pool.release(conn)
        self._overwrite_pending = False
        self.target.overwrite_started.discard(self.table_name)
        self.logger.info("Replaced the rows of %s.%s (overwrite)", self.schema_name, self.table_name)

    def clean_up(self) -> None:
        """End of input: wait for the last commit, finish an overwrite, close the connections."""
        try:
            self.wait_committed()
            self.finalize_overwrite()
        finally:
            self.close()
        super().clean_up()

    def abandon(self) -> None:
        """The run failed: roll back the open batch and give back its connections (see `drop_overwrite_stage`)."""
        with contextlib.suppress(Exception):
            self.close()

    def drop_overwrite_stage(self) -> None:
        """After a failed run (every sink closed): drop an overwrite run's staging table.

        Only if a connection is free: the next run drops and recreates it anyway.
        """
        if getattr(self, "mode", None) != "overwrite" or not getattr(self, "_stage", None):
            return
        pool = self.target.pool
        taken, conn = pool.try_acquire()
        if not taken:
            return
        try:
            conn = conn or pool.open()
            with conn.cursor() as cur:
                cur.execute(f"DROP TABLE IF EXISTS {self._stage}")
            conn.commit()
        except psycopg2.Error:
            _rollback(conn)
        finally:
            pool.release(conn)
        self.target.overwrite_started.discard(self.table_name)

    def close(self) -> None:
        """Abandon anything uncommitted and close the connections (a handed-off batch is waited for first)."""
        if self._copy is not None:
            with contextlib.suppress(Exception):  # the transaction is rolled back below anyway
                self._copy.close()
            self._copy = None
        job, self._inflight = self._inflight, None
        if job is not None:
            job.join()  # it gives its connection back itself
        conn, self.conn = self.conn, None
        if self._streaming:
            self._streaming = False
            self.target.pool.release(conn, streaming=True)
        elif conn is not None:
            _close_quietly(conn)
