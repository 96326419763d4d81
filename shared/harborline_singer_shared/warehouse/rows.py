"""Records to delimited text rows, in the form a warehouse's bulk loader reads: one row builder, two formats.

`COPY_TEXT` is PostgreSQL's COPY *text* format: fields separated by a tab, `\\N` for NULL, backslash escapes for
`\\ \t \n \r`, NUL replaced by U+FFFD, booleans `t`/`f`, JSON columns as JSON text. `QUOTED_CSV` is the CSV
target-snowflake's FILE_FORMAT reads: fields separated by a tab, NULL an empty unenclosed field; a text value that
is non-empty printable ASCII without `"` or backslash (most values) as it is; any other text (the empty string,
JSON, non-ASCII text, text with a tab, newline, quote, backslash or control character) enclosed in `"`, an embedded
`"` doubled, everything else raw inside the quotes, NUL replaced by U+FFFD; numbers and booleans unenclosed.

A dialect names its `RowFormat`; the builders below take it as a parameter, so each dialect's rows are built once,
directly in the form it loads (no re-encoding pass). The row function is generated once per SCHEMA, not per record,
because per-record Python work is what limits a target's speed.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from harborline_singer_shared.rules import ColumnPlan, ColumnType, Kind, make_getter

NULL = "\\N"
ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\x00": "\ufffd"})
_json_encode = msgspec.json.Encoder(decimal_format="number").encode


@dataclasses.dataclass(frozen=True)
class RowFormat:
    """How a row's fields are written (see the module docstring): NULL, text escaping, an integer limit.

    A text value is written as it is when `is_plain` says so (most values; the test runs in C), else escaped with
    `escapes` and enclosed in `quote`. `plain` is the same test as code over `{v}`, for the generated row functions;
    `plain_unescaped` the test for text taken from a JSON line without a backslash (which cannot hold a quote, a
    backslash or a control character). `max_integer_digits` refuses longer integers in integer columns
    (`OutOfRange`): for a warehouse whose integer type holds fewer digits than a JSON integer may have.
    """

    name: str
    null: str
    escapes: dict[int, str]
    is_plain: Callable[[str], object]
    plain: str
    plain_unescaped: str
    quote: str = ""
    max_integer_digits: int | None = None

    def text(self, v: str) -> str:
        """One text value as a field."""
        if self.is_plain(v):
            return v
        return f"{self.quote}{v.translate(self.escapes)}{self.quote}"

    def text_code(self, var: str, *, escape: bool = True) -> str:
        """Code for the field of the str variable `var` (`E` names `escapes` in the generated namespace).

        With `escape` false the text comes from a JSON line without a backslash (see `plain_unescaped`).
        """
        plain = (self.plain if escape else self.plain_unescaped).format(v=var)
        if plain == "True":
            return var
        q = self.quote
        escaped = f"f'{q}{{{var}.translate(E)}}{q}'" if q else f"{var}.translate(E)"
        return f"({var} if ({plain}) else {escaped})"

    @property
    def integer_bound(self) -> int | None:
        """Integers must lie strictly between -bound and bound (None: no limit)."""
        return None if self.max_integer_digits is None else 10**self.max_integer_digits


#: PostgreSQL COPY text (target-postgres): a text value is escaped only where it holds what COPY escapes.
COPY_TEXT = RowFormat(
    "COPY text",
    NULL,
    ESCAPES,
    is_plain=lambda v: v.isprintable() and "\\" not in v,
    plain="{v}.isprintable() and '\\\\' not in {v}",
    plain_unescaped="True",
)
#: Tab-separated CSV, `"` encloses (target-snowflake). Plain: non-empty printable ASCII without `"` or backslash; any
#: other text is enclosed (so the empty string is `""` and NULL, the empty unenclosed field, stays distinct).
QUOTED_CSV = RowFormat(
    "quoted CSV",
    "",
    str.maketrans({'"': '""', "\x00": "\ufffd"}),
    is_plain=lambda v: v and v.isascii() and v.isprintable() and '"' not in v and "\\" not in v,
    plain="{v} and {v}.isascii() and {v}.isprintable() and '\"' not in {v} and '\\\\' not in {v}",
    # (no backslash in the line: no quote, backslash or control character in its strings; isascii() is O(1))
    plain_unescaped="{v} and {v}.isascii()",
    quote='"',
)


def with_integer_limit(fmt: RowFormat, digits: int) -> RowFormat:
    """`fmt`, refusing integers of more than `digits` digits in integer columns."""
    return dataclasses.replace(fmt, max_integer_digits=digits)


def _sanitize_json(value: Any) -> Any:
    """PostgreSQL jsonb rejects \\u0000: replace NUL in strings (and keys) with U+FFFD, as for text columns."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_sanitize_json(k): _sanitize_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_sanitize_json(v) for v in value]
    return value


def json_text(value: Any, fmt: RowFormat = COPY_TEXT) -> str:
    """A JSON value as one text field (NUL in strings replaced, as for text columns)."""
    text = _json_encode(value).decode("utf-8")
    if "\\u0000" in text:
        text = _json_encode(_sanitize_json(value)).decode("utf-8")
    return fmt.text(text)


class Mismatch(Exception):  # noqa: N818 - a signal, turned into RecordTypeError with context by the sink
    """A value does not fit its column's type (the sink names stream, line and property; never the value)."""

    def __init__(self, expected: str, value: Any, column: int | None = None) -> None:
        super().__init__(expected)
        self.expected = expected
        self.got = type(value).__name__
        self.column = column


class OutOfRange(Mismatch):
    """An integer with more digits than the format's integer columns hold (`RowFormat.max_integer_digits`).

    A `Mismatch`, so the tight loop hands the line back; the sink then names stream, line and property.
    """

    def __init__(self, value: int, column: int | None, limit: int) -> None:
        super().__init__("integer", value, column)
        self.digits = len(str(abs(value)))
        self.limit = limit


def integer_text(fmt: RowFormat, column: int | None = None) -> Callable[[int], str]:
    """`int -> field text`, refusing integers past the format's limit (`OutOfRange` names `column`)."""
    bound, limit = fmt.integer_bound, fmt.max_integer_digits
    if bound is None or limit is None:
        return str

    def checked(v: int) -> str:
        if -bound < v < bound:
            return str(v)
        raise OutOfRange(v, column, limit)

    return checked


def _converter(  # noqa: C901
    column_type: ColumnType, *, validate: bool, fmt: RowFormat, column: int | None = None
) -> Callable[[Any], str]:
    """Value -> field text for one column type (None -> the format's NULL); `column` is named by `OutOfRange`."""
    kind = column_type.kind
    null, text = fmt.null, fmt.text
    int_text = integer_text(fmt, column) if kind is Kind.INTEGER else str

    def loose(v: Any) -> str:
        if v is None:
            return null
        if isinstance(v, (dict, list)):
            return json_text(v, fmt)
        if v is True or v is False:
            return "true" if v else "false"  # valid input for boolean and text columns alike
        if type(v) is int:
            return int_text(v)
        return text(str(v))

    if kind is Kind.JSON:
        return lambda v: null if v is None else json_text(v, fmt)
    if not validate:
        return loose
    if kind is Kind.NULL:

        def null_only(v: Any) -> str:
            if v is None:
                return null
            raise Mismatch("null", v)

        return null_only
    if kind is Kind.STRING:

        def string(v: Any) -> str:
            if type(v) is str:
                return text(v)
            if v is None:
                return null
            raise Mismatch("string", v)

        return string
    if kind is Kind.INTEGER:

        def integer(v: Any) -> str:
            if type(v) is int:
                return int_text(v)
            if v is None:
                return null
            if type(v) is decimal.Decimal and v == v.to_integral_value():
                return int_text(int(v))
            raise Mismatch("integer", v)

        return integer
    if kind is Kind.NUMBER:

        def number(v: Any) -> str:
            t = type(v)
            if t is decimal.Decimal or t is int or t is float:
                return str(v)
            if v is None:
                return null
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
                return null
            raise Mismatch("boolean", v)

        return boolean

    # date, time, timestamp: ISO text, parsed (offsets honoured) by the warehouse while loading.
    def temporal(v: Any) -> str:
        if type(v) is str:
            return text(v)
        if v is None:
            return null
        if isinstance(v, (datetime.date, datetime.time)):
            return text(v.isoformat())
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


def _scalar_text(fmt: RowFormat) -> Callable[[Any], str]:
    """A text column fed by a union such as [integer, string]: non-string scalars are stored as their JSON text."""
    null, text = fmt.null, fmt.text

    def scalar_text(v: Any) -> str:
        if type(v) is str:
            return text(v)
        if v is None:
            return null
        if v is True or v is False:
            return text("true" if v else "false")
        if type(v) is int or type(v) is decimal.Decimal or type(v) is float:
            return text(str(v))
        raise Mismatch("string", v)

    return scalar_text


def _is_scalar_union(col: ColumnPlan) -> bool:
    """A text column whose property also admits integers, numbers or booleans (e.g. [integer, string])."""
    return (
        col.type.kind is Kind.STRING
        and col.source is not None
        and bool(json_types(col.source.schema) & {"integer", "number", "boolean"})
    )


def column_converter(
    col: ColumnPlan, *, validate: bool, fmt: RowFormat = COPY_TEXT, column: int | None = None
) -> Callable[[Any], str]:
    """The converter for one loaded column, taking the property's JSON types into account (not only the column's).

    A union like [integer, string] or [boolean, string] lands in a text column: its integers and booleans are valid
    values of the schema and must load (as text), not be refused as "not a string". `column`: the column's index,
    named by the `OutOfRange` it raises.
    """
    if validate and _is_scalar_union(col):
        return _scalar_text(fmt)
    return _converter(col.type, validate=validate, fmt=fmt, column=column)


def escape_text(v: str) -> str:
    """COPY text escaping; most strings need none, and the check is ten times cheaper than translate()."""
    if v.isprintable() and "\\" not in v:
        return v
    return v.translate(ESCAPES)


def _inline(kind: Kind, fmt: RowFormat) -> str | None:
    """Inline code for one column kind, generated into the row function (no per-value call on the hot path).

    `v` is the value; the snippet assigns the field text to `f{i}`. `M(i, v)` reports a type mismatch for column i,
    `c{i}` is the column's converter (the rare cases), `N` the format's NULL.
    """

    def branches(test: str, field: str, other: str) -> str:
        return f"if {test}: f{{i}} = {field}\n    elif v is None: f{{i}} = N\n    else: {other}"

    text = fmt.text_code("v").replace("{", "{{").replace("}", "}}")
    if kind is Kind.STRING:
        return branches("v.__class__ is str", text, "M({i}, v)")
    if kind in {Kind.DATE, Kind.TIME, Kind.TIMESTAMP}:
        return branches("v.__class__ is str", text, "f{i} = c{i}(v)")
    if kind is Kind.INTEGER:
        limit = fmt.max_integer_digits  # at most that many characters: in range; else `c{i}` checks (and refuses)
        field = "str(v)" if limit is None else f"s if len(s := str(v)) <= {limit} else c{{i}}(v)"
        return branches("v.__class__ is int", field, "f{i} = c{i}(v)")
    if kind is Kind.NUMBER:
        return branches("v.__class__ is D or v.__class__ is int", "str(v)", "f{i} = c{i}(v)")
    if kind is Kind.BOOLEAN:
        return (
            "if v is True: f{i} = 't'\n"
            "    elif v is False: f{i} = 'f'\n"
            "    elif v is None: f{i} = N\n"
            "    else: M({i}, v)"
        )
    return None


class MissingKey(Exception):  # noqa: N818 - a signal, turned into MissingKeyPropertiesError by the sink
    """A key property is absent or null in a record."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def build_row_function(
    columns: list[ColumnPlan], *, validate: bool, fmt: RowFormat = COPY_TEXT
) -> Callable[[Mapping[str, Any]], str]:
    """Generate `record -> "f1\\tf2\\t...\\n"` once per schema: straight-line code, no per-record loops.

    Key columns are checked for presence in the same pass (a missing or null key raises `MissingKey`).
    """
    namespace: dict[str, Any] = {"E": fmt.escapes, "N": fmt.null, "D": decimal.Decimal}
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
        namespace[f"c{i}"] = column_converter(col, validate=validate, fmt=fmt, column=i)
        if len(col.source.path) == 1:
            lines.append(f"    v = get({col.source.path[0]!r})")
        else:
            namespace[f"g{i}"] = make_getter(col.source.path)
            lines.append(f"    v = g{i}(r)")
        if col.is_key:
            lines.append(f"    if v is None: K({i})")
        inline_ok = validate and not _is_scalar_union(col)
        snippet = _inline(col.type.kind, fmt) if inline_ok else None
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
