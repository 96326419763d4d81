"""The warehouse rules both targets share, independent of any SQL dialect.

A target describes its dialect once (identifier length limit, which type parameters it keeps) and asks this
package what to do with a SCHEMA message: which table and column names to use, which columns to create, add or
widen, and which changes to refuse. The SQL is the dialect's own business; the decisions live here, once.
"""

from __future__ import annotations

from harborline_singer_shared.rules.flatten import SourceColumn, flatten_schema, make_getter
from harborline_singer_shared.rules.naming import NameAllocator, normalize_identifier
from harborline_singer_shared.rules.plan import (
    ColumnPlan,
    DialectRules,
    ExistingColumn,
    MissingKeyColumnError,
    TablePlan,
    decode_source,
    encode_source,
    is_null_only,
    plan_table,
)
from harborline_singer_shared.rules.types import (
    ColumnType,
    IncompatibleSchemaChangeError,
    Kind,
    column_type_from_jsonschema,
    widen,
)

__all__ = [
    "ColumnPlan",
    "ColumnType",
    "DialectRules",
    "ExistingColumn",
    "IncompatibleSchemaChangeError",
    "Kind",
    "MissingKeyColumnError",
    "NameAllocator",
    "SourceColumn",
    "TablePlan",
    "column_type_from_jsonschema",
    "decode_source",
    "encode_source",
    "flatten_schema",
    "is_null_only",
    "make_getter",
    "normalize_identifier",
    "plan_table",
    "widen",
]
