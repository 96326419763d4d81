"""Records to delimited text rows: the one encoding both warehouses' batches are built in.

Each row is PostgreSQL's COPY *text* format: fields separated by a tab, `\\N` for NULL, backslash escapes for
`\\ \t \n \r`, NUL replaced by U+FFFD, booleans `t`/`f`, JSON columns as JSON text. PostgreSQL COPYs it as it is;
target-snowflake re-encodes each chunk into the quoted CSV its COPY reads (whole-buffer replaces, not per value).
The row function is generated once per SCHEMA, not per record, because per-record Python work is what limits a
target's speed.
"""

from __future__ import annotations

import datetime
import decimal
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from harborline_singer_shared.rules import ColumnPlan, ColumnType, Kind, make_getter

NULL = "\\N"
ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\x00": "\ufffd"})
_json_encode = msgspec.json.Encoder(decimal_format="number").encode


def _sanitize_json(value: Any) -> Any:
    """PostgreSQL jsonb rejects \\u0000: replace NUL in strings (and keys) with U+FFFD, as for text columns."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_sanitize_json(k): _sanitize_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_sanitize_json(v) for v in value]
    return value


def json_text(value: Any) -> str:
    """A JSON value as one escaped text field (NUL in strings replaced, as for text columns)."""
    text = _json_encode(value).decode("utf-8")
    if "\\u0000" in text:
        text = _json_encode(_sanitize_json(value)).decode("utf-8")
    return escape_text(text)


class Mismatch(Exception):  # noqa: N818 - a signal, turned into RecordTypeError with context by the sink
    """A value does not fit its column's type (the sink names stream, line and property; never the value)."""

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
            return NULL
        if isinstance(v, (dict, list)):
            return json_text(v)
        if v is True or v is False:
            return "true" if v else "false"  # valid input for boolean and text columns alike
        return escape_text(str(v))

    if kind is Kind.JSON:
        return lambda v: NULL if v is None else json_text(v)
    if not validate:
        return loose
    if kind is Kind.NULL:

        def null(v: Any) -> str:
            if v is None:
                return NULL
            raise Mismatch("null", v)

        return null
    if kind is Kind.STRING:

        def string(v: Any) -> str:
            if type(v) is str:
                return escape_text(v)
            if v is None:
                return NULL
            raise Mismatch("string", v)

        return string
    if kind is Kind.INTEGER:

        def integer(v: Any) -> str:
            if type(v) is int:
                return str(v)
            if v is None:
                return NULL
            if type(v) is decimal.Decimal and v == v.to_integral_value():
                return str(int(v))
            raise Mismatch("integer", v)

        return integer
    if kind is Kind.NUMBER:

        def number(v: Any) -> str:
            t = type(v)
            if t is decimal.Decimal or t is int or t is float:
                return str(v)
            if v is None:
                return NULL
            if t is str and kind is Kind.NUMBER:
                try:
                    return str(decimal.Decimal(v))
                except decimal.InvalidOperation:
                    pass
            raise Mismatch("number", v)

        return number
    if kind is Kind.BOOLEAN:

        def boolean(v: Any) -> str:
            if v is True:
                return "t"
            if v is False:
                return "f"
            if v is None:
                return NULL
            raise Mismatch("boolean", v)

        return boolean

    # date, time, timestamp: ISO text, parsed (offsets honoured) by PostgreSQL during COPY.
    def temporal(v: Any) -> str:
        if type(v) is str:
            return escape_text(v)
        if v is None:
            return NULL
        if isinstance(v, (datetime.date, datetime.time)):
            return v.isoformat()
        raise Mismatch(kind.value, v)

    return temporal


def json_types(schema: Mapping[str, Any]) -> set[str]:
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
                found |= json_types(sub)
    return found


def _scalar_text(v: Any) -> str:
    """A text column fed by a union such as [integer, string]: non-string scalars are stored as their JSON text."""
    if type(v) is str:
        return escape_text(v)
    if v is None:
        return NULL
    if v is True or v is False:
        return "true" if v else "false"
    if type(v) is int or type(v) is decimal.Decimal or type(v) is float:
        return str(v)
    raise Mismatch("string", v)


def column_converter(col: ColumnPlan, *, validate: bool) -> Callable[[Any], str]:
    """The converter for one loaded column, taking the property's JSON types into account (not only the column's).

    A union like [integer, string] or [boolean, string] lands in a text column: its integers and booleans are valid
    values of the schema and must load (as text), not be refused as "not a string".
    """
    scalar_union = col.source is not None and json_types(col.source.schema) & {"integer", "number", "boolean"}
    if validate and col.type.kind is Kind.STRING and scalar_union:
        return _scalar_text
    return _converter(col.type, validate=validate)


def escape_text(v: str) -> str:
    """COPY text escaping; most strings need none, and the check is ten times cheaper than translate()."""
    if v.isprintable() and "\\" not in v:
        return v
    return v.translate(ESCAPES)


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


class MissingKey(Exception):  # noqa: N818 - a signal, turned into MissingKeyPropertiesError by the sink
    """A key property is absent or null in a record."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def build_row_function(columns: list[ColumnPlan], *, validate: bool) -> Callable[[Mapping[str, Any]], str]:
    """Generate `record -> "f1\\tf2\\t...\\n"` once per schema: straight-line code, no per-record loops.

    Key columns are checked for presence in the same pass (a missing or null key raises `MissingKey`).
    """
    namespace: dict[str, Any] = {"E": ESCAPES, "N": NULL, "D": decimal.Decimal}
    kinds = [c.type.kind for c in columns]
    keys = [".".join(c.source.path) if c.source else c.name for c in columns]

    def mismatch(i: int, v: Any) -> None:
        raise Mismatch(kinds[i].value, v)

    def missing_key(i: int) -> None:
        raise MissingKey(keys[i])

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
