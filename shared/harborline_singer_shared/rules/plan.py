"""From a SCHEMA message and what the warehouse already has, to a table plan.

`plan_table` is pure: it reads the existing columns (names, logical types, the source each one holds) and the new
SCHEMA, and returns which columns to create, add or widen. It raises before any DDL when a change is refused, so a
refused SCHEMA changes nothing. Columns absent from the new SCHEMA are kept (never dropped) and load as NULL.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harborline_singer_shared.rules.flatten import SourceColumn, flatten_schema
from harborline_singer_shared.rules.naming import NameAllocator
from harborline_singer_shared.rules.types import ColumnType, Kind, widen


@dataclass(frozen=True)
class DialectRules:
    """What the rule engine needs to know about a warehouse dialect."""

    max_identifier_bytes: int
    normalize_type: Callable[[ColumnType], ColumnType] = lambda t: t


@dataclass(frozen=True)
class ExistingColumn:
    """A column read back from the warehouse."""

    name: str
    type: ColumnType
    source: tuple[str, ...] | None = None


@dataclass(frozen=True)
class ColumnPlan:
    """One column of the planned table and where its values come from (None: a system column)."""

    name: str
    type: ColumnType
    source: SourceColumn | None
    is_key: bool = False

    @property
    def comment(self) -> str | None:
        """What the column comment records: the source path, so the name mapping survives runs.

        For a NULL column also its kind, which no warehouse type expresses.
        """
        return encode_source(self.source.path, null_only=self.type.kind is Kind.NULL) if self.source else None


@dataclass
class TablePlan:
    """What to do to one table for one SCHEMA message."""

    stream: str
    create: bool
    columns: list[ColumnPlan]
    key_columns: list[str]
    add: list[ColumnPlan] = field(default_factory=list)
    widen: list[tuple[ColumnPlan, ColumnType]] = field(default_factory=list)
    kept: list[ExistingColumn] = field(default_factory=list)

    @property
    def source_columns(self) -> list[ColumnPlan]:
        """Columns fed from the record, in load order."""
        return [c for c in self.columns if c.source is not None]


def encode_source(path: Sequence[str], *, null_only: bool = False) -> str:
    """Column comment text for a source path (a JSON array: unambiguous whatever the names hold).

    A column whose property has only ever been null is stored as the dialect's text type; its comment says so
    (`{"source": [...], "type": "null"}`), so a later SCHEMA may still give it any type.
    """
    if null_only:
        return json.dumps({"source": list(path), "type": "null"}, ensure_ascii=False)
    return json.dumps(list(path), ensure_ascii=False)


def _comment_value(comment: str | None) -> Any:
    if not comment:
        return None
    try:
        return json.loads(comment)
    except ValueError:
        return None


def decode_source(comment: str | None) -> tuple[str, ...] | None:
    """Inverse of `encode_source`; None for comments we did not write."""
    value = _comment_value(comment)
    if isinstance(value, dict):
        value = value.get("source")
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    return None


def is_null_only(comment: str | None) -> bool:
    """Whether a column comment marks a column that has only ever held NULL (see `encode_source`)."""
    value = _comment_value(comment)
    return isinstance(value, dict) and value.get("type") == "null" and decode_source(comment) is not None


class MissingKeyColumnError(ValueError):
    """key_properties names a property the schema does not have."""


def plan_table(
    stream: str,
    schema: Mapping[str, Any],
    key_properties: Sequence[str],
    existing: Sequence[ExistingColumn] | None,
    rules: DialectRules,
    *,
    system_columns: Mapping[str, ColumnType],
    reserved: Sequence[str] = (),
    max_depth: int | None = None,
) -> TablePlan:
    """Plan the table for `stream` under `schema`.

    Args:
        stream: stream name, for messages.
        schema: the SCHEMA message's JSON schema.
        key_properties: the SCHEMA message's key properties (top-level names).
        existing: the table's current columns, or None when the table does not exist.
        rules: the dialect.
        system_columns: columns the target adds itself (e.g. `__loaded_at`), name -> type.
        reserved: further names no source column may take (e.g. the target's own staging columns).
        max_depth: flatten nested objects to this many levels (None: all).
    """
    leaves = flatten_schema(schema, max_depth=max_depth)
    existing_by_name = {c.name: c for c in existing or []}
    owners = {
        c.name: (encode_source(c.source) if c.source else encode_source([c.name]))
        for c in existing or []
        if c.name not in system_columns
    }
    allocator = NameAllocator(rules.max_identifier_bytes, existing=owners, reserved=[*system_columns, *reserved])
    names = allocator.assign(
        [encode_source(leaf.path) for leaf in leaves],
        {encode_source(leaf.path): leaf.source_name for leaf in leaves},
    )

    key_paths = {(k,) for k in key_properties}
    leaf_paths = {leaf.path for leaf in leaves}
    missing = [k for k in key_properties if (k,) not in leaf_paths]
    if missing:
        raise MissingKeyColumnError(f"stream {stream!r}: key_properties {missing} are not properties of the schema")

    plan = TablePlan(stream=stream, create=existing is None, columns=[], key_columns=[])
    for leaf in leaves:
        name = names[encode_source(leaf.path)]
        new_type = rules.normalize_type(leaf.type)
        is_key = leaf.path in key_paths
        current = existing_by_name.get(name)
        if current is None:
            col = ColumnPlan(name, new_type, leaf, is_key)
            if existing is not None:
                plan.add.append(col)
        else:
            target = widen(stream, name, rules.normalize_type(current.type), new_type)
            col = ColumnPlan(name, target, leaf, is_key)
            if target != rules.normalize_type(current.type):
                plan.widen.append((col, current.type))
        plan.columns.append(col)
        if is_key:
            plan.key_columns.append(name)
    # Keep key order as declared, not as the properties happen to be ordered.
    plan.key_columns = [names[encode_source((k,))] for k in key_properties]
    planned = {c.name for c in plan.columns}
    for sys_name, sys_type in system_columns.items():
        if sys_name not in existing_by_name:
            col = ColumnPlan(sys_name, rules.normalize_type(sys_type), None)
            if existing is not None:
                plan.add.append(col)
        else:
            col = ColumnPlan(sys_name, existing_by_name[sys_name].type, None)
        plan.columns.append(col)
        planned.add(sys_name)
    plan.kept = [c for c in existing or [] if c.name not in planned]
    return plan
