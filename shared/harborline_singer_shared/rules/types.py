"""Logical column types and the widening lattice.

JSON schema says what a value is; a warehouse column has one type. This module maps the first to a dialect-free
logical type and decides, when a later SCHEMA disagrees with an existing column, whether the column may be widened
(every old value still fits) or the change must be refused (it would narrow or reinterpret data).

The lattice (an arrow means "may widen to"):

    integer -> number -> string          boolean -> string
    date -> timestamp -> string          time -> string
    string(n) -> string(m), m > n        json stays json (any value is valid JSON)
    null -> anything (a property that has only ever been null: its column holds no value yet)

Anything else (number -> integer, string -> anything, scalar -> json, boolean -> integer, ...) is refused.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class Kind(enum.Enum):
    """Logical kinds a column can have."""

    BOOLEAN = "boolean"
    INTEGER = "integer"
    NUMBER = "number"
    DATE = "date"
    TIME = "time"
    TIMESTAMP = "timestamp"
    STRING = "string"
    JSON = "json"
    #: Declared only as null so far: the column holds nothing but NULL, so a later SCHEMA may give it any type.
    NULL = "null"


@dataclass(frozen=True)
class ColumnType:
    """A logical column type; `max_length` only matters to dialects that keep varchar lengths."""

    kind: Kind
    max_length: int | None = None

    def __str__(self) -> str:
        if self.kind is Kind.STRING and self.max_length is not None:
            return f"string({self.max_length})"
        return self.kind.value


class IncompatibleSchemaChangeError(ValueError):
    """A later SCHEMA asks for a column type the existing column cannot widen to."""

    def __init__(self, stream: str, column: str, old: ColumnType, new: ColumnType) -> None:
        self.stream, self.column, self.old, self.new = stream, column, old, new
        narrowing = _can_widen(new, old)
        what = "a narrowing" if narrowing else "an incompatible"
        super().__init__(
            f"stream {stream!r}: column {column!r} is {old} and the new SCHEMA asks for {new}: "
            f"{what} type change, refused; nothing was changed. Widen the source type instead "
            f"(allowed: integer->number->string, boolean->string, date->timestamp->string, "
            f"time->string, longer strings, null->any type)."
        )


_WIDENS_TO: dict[Kind, frozenset[Kind]] = {
    Kind.INTEGER: frozenset({Kind.NUMBER, Kind.STRING}),
    Kind.NUMBER: frozenset({Kind.STRING}),
    Kind.BOOLEAN: frozenset({Kind.STRING}),
    Kind.DATE: frozenset({Kind.TIMESTAMP, Kind.STRING}),
    Kind.TIMESTAMP: frozenset({Kind.STRING}),
    Kind.TIME: frozenset({Kind.STRING}),
    Kind.STRING: frozenset(),
    Kind.JSON: frozenset(),
}
_WIDENS_TO[Kind.NULL] = frozenset(_WIDENS_TO) - {Kind.NULL}

_STRING_FORMATS = {
    "date-time": Kind.TIMESTAMP,
    "date": Kind.DATE,
    "time": Kind.TIME,
    "singer.decimal": Kind.NUMBER,
    "x-singer.decimal": Kind.NUMBER,
}


def _can_widen(old: ColumnType, new: ColumnType) -> bool:
    """True when every value of `old` is representable, unchanged in meaning, as `new`."""
    if old.kind is new.kind:
        if old.kind is not Kind.STRING:
            return True
        if new.max_length is None:
            return True
        return old.max_length is not None and old.max_length <= new.max_length
    return new.kind in _WIDENS_TO[old.kind]


def widen(stream: str, column: str, old: ColumnType, new: ColumnType) -> ColumnType:
    """The type an existing column of type `old` must have to accept `new`.

    Returns `old` when nothing needs to change (including any value into a JSON column), `new` when the column
    must be widened, and raises when the change would narrow or reinterpret existing data.
    """
    if old == new or old.kind is Kind.JSON or new.kind is Kind.NULL:
        return old  # (a property now declared only null: its NULLs fit the column as it is)
    if _can_widen(new, old) and new.kind is Kind.STRING and old.kind is Kind.STRING:
        # A shorter maximum length for a string column: a narrowing of the declared type.
        raise IncompatibleSchemaChangeError(stream, column, old, new)
    if _can_widen(old, new):
        return new
    raise IncompatibleSchemaChangeError(stream, column, old, new)


def join(a: ColumnType, b: ColumnType) -> ColumnType:
    """The narrowest type that holds values of both `a` and `b` (for unions in one schema)."""
    if a == b:
        return a
    if Kind.JSON in (a.kind, b.kind):
        return ColumnType(Kind.JSON)
    if _can_widen(a, b):
        return b
    if _can_widen(b, a):
        return a
    common = _WIDENS_TO[a.kind] & _WIDENS_TO[b.kind]
    for kind in (Kind.NUMBER, Kind.TIMESTAMP):
        if kind in common:
            return ColumnType(kind)
    return ColumnType(Kind.STRING)


def _branch_types(prop: dict[str, Any]) -> list[ColumnType]:
    """The non-null types one JSON schema node admits, one per branch."""
    branches: list[ColumnType] = []
    for key in ("anyOf", "oneOf"):
        for sub in prop.get(key) or []:
            if isinstance(sub, dict):
                branches.extend(_branch_types(sub))
    declared = prop.get("type")
    if declared is None:
        if not branches and "properties" in prop:
            branches.append(ColumnType(Kind.JSON))
        return branches
    kinds = [declared] if isinstance(declared, str) else list(declared)
    for kind in kinds:
        if kind == "null":
            continue
        if kind in {"object", "array"}:
            branches.append(ColumnType(Kind.JSON))
        elif kind == "integer":
            branches.append(ColumnType(Kind.INTEGER))
        elif kind == "number":
            branches.append(ColumnType(Kind.NUMBER))
        elif kind == "boolean":
            branches.append(ColumnType(Kind.BOOLEAN))
        elif kind == "string":
            fmt = prop.get("format")
            if fmt in _STRING_FORMATS:
                branches.append(ColumnType(_STRING_FORMATS[fmt]))
            else:
                max_length = prop.get("maxLength")
                branches.append(ColumnType(Kind.STRING, max_length if isinstance(max_length, int) else None))
        else:
            branches.append(ColumnType(Kind.JSON))
    return branches


def _only_null(prop: dict[str, Any]) -> bool:
    """The schema admits null and nothing else (directly, or in every anyOf/oneOf branch)."""
    declared = prop.get("type")
    if declared is not None:
        return declared in ("null", ["null"])
    subs = [s for key in ("anyOf", "oneOf") for s in prop.get(key) or []]
    return bool(subs) and all(isinstance(s, dict) and _only_null(s) for s in subs)


def column_type_from_jsonschema(prop: dict[str, Any]) -> ColumnType:
    """Map one JSON schema property to its logical column type.

    A property with no type at all (`{}`) can hold anything, so it is JSON; a property that is only `null`
    is a NULL column: it holds NULLs until a later SCHEMA gives it a type, any type (see the lattice).
    """
    branches = _branch_types(prop)
    if not branches:
        return ColumnType(Kind.NULL) if _only_null(prop) else ColumnType(Kind.JSON)
    result = branches[0]
    for branch in branches[1:]:
        result = join(result, branch)
    return result


def is_nullable(prop: dict[str, Any]) -> bool:
    """Whether the schema admits null (an absent type admits everything)."""
    declared = prop.get("type")
    if declared is None:
        subs = (prop.get("anyOf") or []) + (prop.get("oneOf") or [])
        return not subs or any(is_nullable(s) for s in subs if isinstance(s, dict))
    return declared == "null" or (isinstance(declared, list) and "null" in declared)
