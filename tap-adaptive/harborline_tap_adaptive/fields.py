"""XML attributes to typed record fields: names in snake_case, ids integer, flags boolean, dates as ISO dates.

Each stream declares the attributes it knows (``"id:i code name isAssumption:b"``: ``i`` integer, ``b`` boolean,
``d`` date, ``t`` date-time, no suffix text). Adaptive writes flags as ``1``/``0`` (some methods ``true``/``false``)
and dates as ``MM/DD/YYYY`` or ``YYYY-MM-DD``. An attribute the stream does not know, or a value that does not fit
its type, is kept as text in the record's ``extra`` object: nothing the API sends is dropped or guessed at.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from singer_sdk import typing as th

if TYPE_CHECKING:
    from xml.etree.ElementTree import Element

__all__ = ["Fields", "nested_value", "snake_case"]

_TRUE = frozenset({"1", "true", "yes", "y"})
_FALSE = frozenset({"0", "false", "no", "n"})
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_TYPES: dict[str, Any] = {
    "": th.StringType,
    "i": th.IntegerType,
    "b": th.BooleanType,
    "d": th.DateType,
    "t": th.DateTimeType,
}


def snake_case(name: str) -> str:
    """``shortName`` -> ``short_name``, ``timeWeightAcctId`` -> ``time_weight_acct_id``, ``ID`` -> ``id``."""
    return _CAMEL.sub("_", name).replace("-", "_").lower()


def _integer(text: str) -> int | None:
    stripped = text.strip()
    if not stripped:
        return None
    return int(stripped)  # ValueError: kept in extra


def _boolean(text: str) -> bool | None:
    lowered = text.strip().lower()
    if not lowered:
        return None
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(text)


def _date(text: str) -> str | None:
    stripped = text.strip()
    if not stripped:
        return None
    if "/" in stripped:
        return datetime.strptime(stripped, "%m/%d/%Y").date().isoformat()  # noqa: DTZ007 - a date, no time zone
    return date.fromisoformat(stripped).isoformat()


def _datetime(text: str) -> str | None:
    stripped = text.strip()
    if not stripped:
        return None
    for pattern in ("%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M"):
        try:
            return datetime.strptime(stripped, pattern).isoformat()  # noqa: DTZ007 - as the API wrote it
        except ValueError:
            continue
    return datetime.fromisoformat(stripped).isoformat()


_CONVERTERS: dict[str, Any] = {"": lambda text: text, "i": _integer, "b": _boolean, "d": _date, "t": _datetime}


class Fields:
    """The known attributes of one record element, their field names and types."""

    def __init__(self, spec: str) -> None:
        self.kinds: dict[str, str] = {}
        for item in spec.split():
            name, _, kind = item.partition(":")
            if kind not in _CONVERTERS:
                raise ValueError(f"unknown field kind {kind!r} in {item!r}")
            self.kinds[name] = kind
        self.names = {attribute: snake_case(attribute) for attribute in self.kinds}

    def properties(self) -> list[th.Property[Any]]:
        """A schema property per known attribute."""
        return [th.Property(self.names[a], _TYPES[k]) for a, k in self.kinds.items()]

    def convert(self, attributes: dict[str, str], record: dict[str, Any]) -> None:
        """Typed fields into ``record``; unknown attributes and values that do not fit their type into ``extra``."""
        extra: dict[str, str] = record.get("extra") or {}
        for name, text in attributes.items():
            kind = self.kinds.get(name)
            if kind is None:
                extra[snake_case(name)] = text
                continue
            try:
                record[self.names[name]] = _CONVERTERS[kind](text)
            except ValueError:
                record[self.names[name]] = None
                extra[self.names[name]] = text
        record["extra"] = extra or None


def nested_value(node: Element) -> Any:
    """A nested element as JSON: with child elements an array of them (each its attributes), else its attributes.

    ``<attributes><attribute id="1" name="x"/></attributes>`` -> ``[{"id": "1", "name": "x"}]``;
    ``<subscriptions noNewsletter="1"/>`` -> ``{"no_newsletter": "1"}``. Values stay text: nested shapes differ
    between methods and versions, and text loses nothing.
    """
    children = list(node)
    if children:
        return [_attributes_and_text(child) for child in children]
    return _attributes_and_text(node)


def _attributes_and_text(node: Element) -> dict[str, Any]:
    value: dict[str, Any] = {snake_case(k): v for k, v in node.attrib.items()}
    text = (node.text or "").strip()
    if text:
        value["value" if "value" not in value else "text"] = text
    if len(node):
        value[snake_case(node[0].tag) + "_items"] = [_attributes_and_text(child) for child in node]
    return value
