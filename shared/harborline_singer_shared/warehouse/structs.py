"""The typed record path: records decoded by msgspec straight into structs (validated in C), then formatted as rows.

Built once per SCHEMA from the table plan's columns. Where the schema has a shape only the dict path handles (unions
of scalars in one column, unusual names), `build_struct_loader` returns None and `rows.build_row_function` serves.
"""

from __future__ import annotations

import decimal
import itertools
import re
from collections.abc import Callable
from typing import Any

import msgspec

from harborline_singer_shared.rules import ColumnPlan, Kind
from harborline_singer_shared.warehouse.rows import (
    COPY_TEXT,
    Mismatch,
    MissingKey,
    RowFormat,
    integer_text,
    json_text,
    json_types,
)

_SIMPLE_TYPES: dict[str, Any] = {
    "integer": int,
    "number": int | decimal.Decimal,
    "boolean": bool,
    "string": str,
}
_RAW_NULL = msgspec.Raw(b"null")
_UNNAMEABLE = re.compile(r'[\\"\x00-\x1f]')
MSGSPEC_ERROR = re.compile(r"Expected `[^`]*`, got `(?P<got>[^`]*)`(?: - at `\$(?P<path>[^`]*)`)?")
JSON_NAMES = {
    "str": "string",
    "int": "integer",
    "float": "number",
    "bool": "boolean",
    "array": "array",
    "dict": "object",
    "list": "array",
    "Decimal": "number",
    "NoneType": "null",
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
    if col.type.kind is Kind.NULL:
        return type(None)  # declared only null: msgspec refuses any other value
    types = json_types(col.source.schema) - {"null"}
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


def _struct_field_lines(
    columns: list[ColumnPlan], numbers: set[int], indent: str, *, escape: bool, fmt: RowFormat
) -> list[str]:
    """Code formatting each `v<i>` as the field `f<i>` in `fmt` (values are type-checked by msgspec already).

    Columns in `numbers` hold raw JSON text, checked here to be a number (`X` raises `Mismatch` otherwise).
    With `escape` false the caller guarantees that no string holds a character either format escapes: the record's
    JSON has no backslash, and JSON cannot carry a raw tab, newline, carriage return, NUL or `"` without one.
    Integers past the format's limit raise `OutOfRange` (`O`).
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
        elif kind is Kind.NULL:
            expr = "N"
        elif kind is Kind.INTEGER and fmt.max_integer_digits is not None:
            # At most that many characters: in range. Longer (a sign, or too many digits): `O` checks, maybe refuses.
            expr = f"N if v{i} is None else (s if len(s := str(v{i})) <= {fmt.max_integer_digits} else O(v{i}, {i}))"
        elif kind is Kind.INTEGER:
            expr = f"N if v{i} is None else str(v{i})"
        elif kind is Kind.BOOLEAN:
            expr = f"N if v{i} is None else ('t' if v{i} else 'f')"
        else:
            expr = f"N if v{i} is None else {fmt.text_code(f'v{i}', escape=escape)}"
        lines.append(f"{indent}f{i} = {expr}")
    return lines


def _join_expr(columns: list[ColumnPlan], *, seq: bool, version: bool = False) -> str:
    names = [f"f{i}" for i in range(len(columns))]
    names += ["(N if env.version is None else str(env.version))"] if version else []
    names += ["str(line)"] if seq else []
    return "'\\t'.join((" + ", ".join(names) + ",)) + '\\n'" if names else "'\\n'"


def _struct_row_source(
    columns: list[ColumnPlan], access: dict[int, list[str]], numbers: set[int], fmt: RowFormat
) -> str:
    """Source of `row(struct) -> row text in fmt`: values are type-checked already, so it only formats."""
    lines = ["def row(r):", *_struct_value_lines(columns, access, "    ")]
    lines.extend(f"    if v{i} is None: K({i})" for i, col in enumerate(columns) if col.is_key)
    lines.extend(_struct_field_lines(columns, numbers, "    ", escape=True, fmt=fmt))
    lines.append(f"    return {_join_expr(columns, seq=False)}")
    return "\n".join(lines) + "\n"


def _struct_run_source(
    columns: list[ColumnPlan],
    access: dict[int, list[str]],
    numbers: set[int],
    *,
    seq: bool,
    watermark: tuple[int, ...] | None,
    version: bool = False,
    fmt: RowFormat = COPY_TEXT,
) -> str:
    """Source of `run(...)`: the tight loop that turns consecutive RECORD lines of one stream into rows (in `fmt`).

    It decodes each line's whole message (envelope and record) in one msgspec call and stops at the first line it
    cannot take as it is: another message or stream, a decoding or type error, a missing key. That line goes back to
    the generic path, which handles it or reports it precisely. It also stops when the batch or the chunk is full.
    With `watermark` (the key columns' indexes, in the order they compare: one value, or a tuple), a record whose
    key is above `hi` (every key the table can hold so far) is new: its row goes to `append`, straight into the
    table; any other goes, with its input line as sequence, to `hold(key, row, line)`, for the staging table and
    the merge.
    With `version` the message's table version
    follows the columns (ACTIVATE_VERSION); without it, a record that carries a version is handed back (the target
    then adds the version columns to the table).
    """
    done = "            return raw, line, n, chars, hi"
    lines = [
        "def run(raw, it, line, room_rows, room_chars, append, lines_append, backslash, hi, hold):",
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
        *([] if version else ["        if env.version is not None:", done]),
        "        r = env.record",
        *_struct_value_lines(columns, access, "        "),
    ]
    keys = [f"v{i} is None" for i, col in enumerate(columns) if col.is_key]
    if keys:
        lines += [f"        if {' or '.join(keys)}:", done]
    lines += [
        "        try:",
        "            if backslash in raw:",
        *_struct_field_lines(columns, numbers, "                ", escape=True, fmt=fmt),
        "            else:",
        *_struct_field_lines(columns, numbers, "                ", escape=False, fmt=fmt),
        "        except MISMATCH:",
        done,
        f"        row = {_join_expr(columns, seq=seq, version=version)}",
    ]
    if watermark is None:
        lines += ["        append(row)", "        lines_append(line)"]
    else:
        # Keys are compared as stored: a NUL in text is stored as U+FFFD (so "a\0" and "a\uFFFD" are one key).
        for j, i in enumerate(watermark):
            lines.append(f"        w{j} = v{i}")
            if columns[i].type.kind is Kind.STRING:
                lines.append(f"        if '\\x00' in w{j}: w{j} = w{j}.replace('\\x00', '\\ufffd')")
        parts = [f"w{j}" for j in range(len(watermark))]
        lines.append(f"        k = {parts[0] if len(parts) == 1 else '(' + ', '.join(parts) + ')'}")
        lines += [
            "        if k > hi:",
            "            hi = k",
            "            append(row)",
            "            lines_append(line)",
            "        else:",
            "            row = f'{row[:-1]}\\t{line}\\n'",
            "            hold(k, row, line)",
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

    def __init__(
        self, columns: list[ColumnPlan], tree: dict[str, Any], required: list[str], fmt: RowFormat = COPY_TEXT
    ) -> None:
        access: dict[int, list[str]] = {}
        self.record_type = _struct_type(tree, [], access, required)
        self.decode: Callable[[Any], Any] = msgspec.json.Decoder(self.record_type).decode
        self._columns = columns
        self._access = access
        self._numbers = _raw_number_columns(tree)
        self._fmt = fmt
        keys = [".".join(c.source.path) if c.source else c.name for c in columns]

        def missing_key(i: int) -> None:
            raise MissingKey(keys[i])

        in_range = {i: integer_text(fmt, i) for i, c in enumerate(columns) if c.type.kind is Kind.INTEGER}

        def out_of_range(v: int, i: int) -> str:
            return in_range[i](v)

        self._namespace: dict[str, Any] = {
            "E": fmt.escapes,
            "N": fmt.null,
            "J": lambda raw: _raw_json_text(raw, fmt),
            "K": missing_key,
            "O": out_of_range,
            "X": lambda text, column: _not_a_number(text, column, fmt),
            "DEC": _decimal_text,
            "DIGITS": "-0123456789",
        }
        self.row: Callable[[Any], str] = self._compile(_struct_row_source(columns, access, self._numbers, fmt), "row")

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

    def run_function(
        self, stream: str, *, seq: bool, watermark: tuple[int, ...] | None = None, version: bool = False
    ) -> Callable[..., Any]:
        """The tight loop for `stream` (see `_struct_run_source`); `seq` adds the input line as last field."""
        envelope = msgspec.defstruct(
            "RecordMessage",
            [("stream", str), ("record", self.record_type), ("version", int | None, None)],
            tag_field="type",
            tag="RECORD",
            forbid_unknown_fields=False,
            gc=False,
        )
        return self._compile(  # type: ignore[no-any-return]
            _struct_run_source(
                self._columns, self._access, self._numbers, seq=seq, watermark=watermark, version=version, fmt=self._fmt
            ),
            "run",
            DECODE=msgspec.json.Decoder(envelope).decode,
            ERRORS=(msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError),
            MISMATCH=Mismatch,
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


def _not_a_number(text: str, column: int, fmt: RowFormat) -> str:
    """Raw text in a number column that does not start like a number: null, or a type error for that column."""
    if text == "null":
        return fmt.null
    raise Mismatch("number", _JSON_KIND_OF.get(text[:1]), column)


def _decimal_text(text: str, column: int) -> str:
    """A `singer.decimal` string in a number column: checked and normalised as a decimal (never raw text in COPY)."""
    try:
        return str(decimal.Decimal(text))
    except decimal.InvalidOperation:
        raise Mismatch("number", text, column) from None


def build_struct_loader(
    columns: list[ColumnPlan], required: list[str], fmt: RowFormat = COPY_TEXT
) -> StructLoader | None:
    """A typed decoder for the stream's records and a row function over the decoded structs.

    msgspec validates every value's JSON type while decoding (in C), so the row function only formats. Returns None
    when the schema has a shape only the dict path handles (unions of scalars in one column, unusual names).
    """
    tree = _field_tree(columns)
    if tree is None:
        return None
    return StructLoader(columns, tree, required, fmt)


def _raw_json_text(raw: msgspec.Raw, fmt: RowFormat) -> str:
    """The field of a JSON value received as raw JSON (null -> NULL; \\u0000 replaced as for text columns)."""
    data = bytes(raw)
    if data == b"null":
        return fmt.null
    if b"\\u0000" in data:
        return json_text(_decode_exact(data), fmt)
    return fmt.text(data.decode("utf-8"))
