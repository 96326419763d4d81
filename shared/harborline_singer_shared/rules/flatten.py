"""Flattening nested objects into `parent__child` columns.

Objects with declared properties become one column per leaf, at any depth, so analysts query plain columns.
Arrays, free-form objects (no properties) and unions that include an object or array stay one JSON column.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from harborline_singer_shared.rules.types import ColumnType, column_type_from_jsonschema

SEPARATOR = "__"


@dataclass(frozen=True)
class SourceColumn:
    """One leaf of a (possibly nested) record schema."""

    path: tuple[str, ...]
    schema: Mapping[str, Any]
    type: ColumnType

    @property
    def source_name(self) -> str:
        """The flattened source name (`parent__child`), before normalisation."""
        return SEPARATOR.join(self.path)


def _is_flattenable(prop: Mapping[str, Any]) -> bool:
    """An object with declared properties and no other non-null type."""
    declared = prop.get("type")
    kinds = {declared} if isinstance(declared, str) else set(declared or [])
    kinds.discard("null")
    if kinds != {"object"}:
        return False
    props = prop.get("properties")
    return isinstance(props, dict) and bool(props)


def flatten_schema(schema: Mapping[str, Any], max_depth: int | None = None) -> list[SourceColumn]:
    """Leaves of a record schema, in property order, nested objects expanded to `max_depth` levels.

    Walked with an explicit stack, not recursion: a schema nested deeper than Python's recursion limit still plans.
    """
    out: list[SourceColumn] = []
    stack: list[tuple[tuple[str, ...], Any]] = [((), iter((schema.get("properties") or {}).items()))]
    while stack:
        prefix, items = stack[-1]
        item = next(items, None)
        if item is None:
            stack.pop()
            continue
        name, prop = item
        path = (*prefix, name)
        prop_map = prop if isinstance(prop, dict) else {}
        if _is_flattenable(prop_map) and (max_depth is None or len(path) <= max_depth):
            stack.append((path, iter(prop_map["properties"].items())))
        else:
            out.append(SourceColumn(path, prop_map, column_type_from_jsonschema(prop_map)))
    return out


def schema_depth(schema: Mapping[str, Any]) -> int:
    """How many levels of nested objects flattening would walk into (0: no flattenable object)."""
    deepest = 0
    stack: list[tuple[int, Mapping[str, Any]]] = [(0, schema.get("properties") or {})]
    while stack:
        depth, props = stack.pop()
        for prop in props.values():
            if isinstance(prop, dict) and _is_flattenable(prop):
                deepest = max(deepest, depth + 1)
                stack.append((depth + 1, prop["properties"]))
    return deepest


def make_getter(path: tuple[str, ...]) -> Callable[[Mapping[str, Any]], Any]:
    """A fast accessor for one flattened path; a missing or null parent yields None."""
    if len(path) == 1:
        key = path[0]
        return lambda record: record.get(key)

    def get(record: Mapping[str, Any]) -> Any:
        value: Any = record
        for key in path:
            if not isinstance(value, dict):
                return None
            value = value.get(key)
        return value

    return get
