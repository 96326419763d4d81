"""Keyset paging: the page query and the position it resumes after.

A page is ``WHERE (MODIFIED_DATE, key...) > (last...) ORDER BY MODIFIED_DATE, key... LIMIT page_size``, with the row
comparison written out (``d > ? OR (d = ? AND (k1 > ? OR (k1 = ? AND k2 > ?)))``) so dialects without row values take
it. The tie-breaker is the whole key: batch processes stamp hundreds of rows with one MODIFIED_DATE, and the
versions of a hist row share its ``<X>_ID``. Values are bound with the driver's ``paramstyle``, never written into
the SQL, and there is never an OFFSET. A page shorter than ``page_size`` ends the table.

The position is the source's own values (MODIFIED_DATE as the source wrote it, without a zone), so converting to
UTC for output can never move a bookmark across a daylight-saving gap.
"""

from __future__ import annotations

import datetime
import decimal
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Keyset", "PageQuery", "Placeholders", "decode_value", "encode_value", "page_query", "quote"]


def quote(name: str, *, quoted: bool = True) -> str:
    """An identifier as the SQL names it: double-quoted (UPPERCASE kept) unless ``quote_identifiers`` is off."""
    if not quoted:
        return name
    return '"' + name.replace('"', '""') + '"'


class Placeholders:
    """Placeholders in the driver's ``paramstyle``, collecting the values in the order the style needs."""

    def __init__(self, paramstyle: str) -> None:
        if paramstyle not in {"qmark", "format", "pyformat", "named", "numeric"}:
            raise ValueError(f"unsupported DB-API paramstyle {paramstyle!r}")
        self.paramstyle = paramstyle
        self._values: list[Any] = []

    def add(self, value: Any) -> str:
        """The placeholder for ``value``; every use binds its own copy (positional styles need that)."""
        self._values.append(value)
        n = len(self._values)
        return {
            "qmark": "?",
            "format": "%s",
            "pyformat": f"%(p{n})s",
            "named": f":p{n}",
            "numeric": f":{n}",
        }[self.paramstyle]

    @property
    def params(self) -> tuple[Any, ...] | dict[str, Any]:
        """The values for ``cursor.execute``: a dict for the named styles, a tuple otherwise."""
        if self.paramstyle in {"pyformat", "named"}:
            return {f"p{i}": v for i, v in enumerate(self._values, start=1)}
        return tuple(self._values)


@dataclass(frozen=True)
class Keyset:
    """The last row emitted: its MODIFIED_DATE and key values, as the source gave them."""

    modified: Any
    key: tuple[Any, ...]

    def to_state(self) -> dict[str, Any]:
        """JSON for the stream's STATE (types kept, so the values bind back as what the driver returned)."""
        return {"modified_date": encode_value(self.modified), "key": [encode_value(v) for v in self.key]}

    @classmethod
    def from_state(cls, value: Any) -> Keyset | None:
        """The position a STATE holds, or None when it holds none (or another shape)."""
        if not isinstance(value, dict) or "modified_date" not in value or not isinstance(value.get("key"), list):
            return None
        return cls(decode_value(value["modified_date"]), tuple(decode_value(v) for v in value["key"]))


def encode_value(value: Any) -> Any:
    """A bound value as JSON, tagged where JSON would lose its type."""
    if isinstance(value, datetime.datetime):
        return {"datetime": value.isoformat()}
    if isinstance(value, datetime.date):
        return {"date": value.isoformat()}
    if isinstance(value, decimal.Decimal):
        return {"decimal": str(value)}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def decode_value(value: Any) -> Any:
    """The inverse of :func:`encode_value`."""
    if isinstance(value, dict) and len(value) == 1:
        ((tag, text),) = value.items()
        if tag == "datetime":
            return datetime.datetime.fromisoformat(text)
        if tag == "date":
            return datetime.date.fromisoformat(text)
        if tag == "decimal":
            return decimal.Decimal(text)
    return value


@dataclass(frozen=True)
class PageQuery:
    """One page's SQL and its bound values."""

    sql: str
    params: tuple[Any, ...] | dict[str, Any]


def _after(columns: Sequence[str], values: Sequence[Any], marks: Placeholders) -> str:
    """``c1 > v1 OR (c1 = v1 AND (c2 > v2 OR (...)))``: strictly after the position, without row values."""
    column, value = columns[0], values[0]
    if len(columns) == 1:
        return f"{column} > {marks.add(value)}"
    greater = f"{column} > {marks.add(value)}"
    equal = f"{column} = {marks.add(value)}"
    return f"{greater} OR ({equal} AND ({_after(columns[1:], values[1:], marks)}))"


def page_query(
    *,
    table: str,
    columns: Sequence[str],
    replication_key: str,
    key: Sequence[str],
    page_size: int,
    paramstyle: str,
    after: Keyset | None = None,
    start: Any = None,
    quoted: bool = True,
) -> PageQuery:
    """The SQL of the next page after ``after`` (or the first), rows modified at or after ``start`` only."""
    q = [quote(c, quoted=quoted) for c in columns]
    order = [quote(replication_key, quoted=quoted), *(quote(k, quoted=quoted) for k in key)]
    marks = Placeholders(paramstyle)
    # A NULL cannot be positioned (dialects sort it first or last, and `k > NULL` is never true): such rows are skipped.
    conditions = [f"{column} IS NOT NULL" for column in order]
    if after is not None:
        conditions.append(f"({_after(order, [after.modified, *after.key], marks)})")
    if start is not None:
        conditions.append(f"{order[0]} >= {marks.add(start)}")
    sql = (
        f"SELECT {', '.join(q)} FROM {quote(table, quoted=quoted)} WHERE {' AND '.join(conditions)} "
        f"ORDER BY {', '.join(order)} LIMIT {int(page_size)}"
    )
    return PageQuery(sql, marks.params)
