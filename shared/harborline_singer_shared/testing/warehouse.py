"""A small probe interface over a warehouse target, so every target runs the same read-back assertions.

Why: the rule and bad-input tests (names, schema evolution, clean failures) check behaviour the shared rule engine
and loader promise for every dialect. Written against this probe instead of SQL, target-postgres and
target-snowflake run the very same assertions (`warehouse_suite`); each target implements the probe once.

A probe speaks in *logical* terms, as the rule engine computed them:

* names are the engine's lower-case identifiers (`order_id`), whatever case the engine stores them in;
* column types are `rules.Kind` values, not dialect type names (a column whose comment marks it as only ever null
  is `Kind.NULL`); a probe should refuse (raise) a dialect type its target never creates, so a wrong type cannot
  hide behind a loose mapping;
* values come back as plain Python: `int`, `Decimal`, `str`, `bool`, `date`, `time`, `datetime` (aware, UTC),
  `dict`/`list` for JSON, `None` for NULL.

Config overrides passed to `run`/`cli`/`new_target` replace the probe's base settings; an override of `None` removes
the setting (as if the user never set it).
"""

from __future__ import annotations

import abc
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import datetime

    from harborline_singer_shared.rules import Kind

__all__ = [
    "Messages",
    "RunResult",
    "WarehouseProbe",
    "lines_of",
    "record_msg",
    "schema_msg",
    "state_msg",
]

#: Singer input: a list of messages (dicts are JSON-encoded, strings taken verbatim as lines) or the whole text.
Messages = list[Any] | str


def lines_of(messages: Messages) -> str:
    """Singer input text: dicts are JSON-encoded, strings are taken verbatim (to send malformed lines)."""
    if isinstance(messages, str):
        return messages
    return "\n".join(m if isinstance(m, str) else json.dumps(m) for m in messages) + "\n"


def schema_msg(stream: str, properties: dict[str, Any], keys: list[str] | None = None) -> dict[str, Any]:
    """A SCHEMA message for an object with these properties."""
    return {
        "type": "SCHEMA",
        "stream": stream,
        "schema": {"type": "object", "properties": properties},
        "key_properties": keys or [],
    }


def record_msg(stream: str, record: dict[str, Any], version: int | None = None) -> dict[str, Any]:
    """A RECORD message (with a table `version` for ACTIVATE_VERSION tests)."""
    msg: dict[str, Any] = {"type": "RECORD", "stream": stream, "record": record}
    if version is not None:
        msg["version"] = version
    return msg


def state_msg(value: Any) -> dict[str, Any]:
    """A STATE message."""
    return {"type": "STATE", "value": value}


@dataclass
class RunResult:
    """What one run of a target printed (stdout: STATE lines) and how it ended."""

    stdout: str
    stderr: str
    returncode: int = 0

    @property
    def states(self) -> list[Any]:
        """The STATE values written to stdout, in order."""
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]


class WarehouseProbe(abc.ABC):
    """Runs one target against one test's own schema and reads the results back in logical terms.

    A probe is made per test (a fresh schema, `schema`, that does not exist yet). Reading a table or schema that
    does not exist: `tables` returns `[]`; the other readers may raise.
    """

    #: Short dialect name, for skips and messages (`postgres`, `snowflake`).
    dialect: ClassVar[str]
    #: The longest identifier the dialect allows, in UTF-8 bytes (the engine's `DialectRules.max_identifier_bytes`).
    max_identifier_bytes: ClassVar[int]
    #: The schema unqualified names resolve to (PostgreSQL and Snowflake: `public`); the suite expects it empty.
    default_schema: ClassVar[str] = "public"
    #: The target's log line after a commit; group 1 is the number of rows committed.
    commit_log_pattern: ClassVar[str] = r"Committed (\d+) rows"

    #: The test's default target schema (logical name); it does not exist before the first run creates it.
    schema: str

    # -- running the target ---------------------------------------------------------------------------------

    @abc.abstractmethod
    def run(self, messages: Messages, **config_overrides: Any) -> RunResult:
        """Run the target in-process to the end of input; raises what the target raises."""

    @abc.abstractmethod
    def cli(self, messages: Messages | bytes, **config_overrides: Any) -> RunResult:
        """Run the target's real CLI as a subprocess with the input on stdin (returncode, stdout, stderr)."""

    @abc.abstractmethod
    def new_target(self, **config_overrides: Any) -> Any:
        """Construct the target (config validated) without running it; raises what construction raises."""

    # -- reading back ---------------------------------------------------------------------------------------

    @abc.abstractmethod
    def tables(self, schema: str | None = None) -> list[str]:
        """Logical table names in `schema` (default: `self.schema`), sorted; `[]` when the schema does not exist."""

    @abc.abstractmethod
    def columns(self, table: str, schema: str | None = None) -> dict[str, Kind]:
        """Logical column name -> logical kind, in table order."""

    @abc.abstractmethod
    def comments(self, table: str, schema: str | None = None) -> dict[str, str | None]:
        """Logical column name -> column comment (the source path as JSON, e.g. `["a b"]`), in table order."""

    @abc.abstractmethod
    def table_comment(self, table: str, schema: str | None = None) -> str | None:
        """The table's comment (the stream name as a JSON array, e.g. `["users"]`)."""

    @abc.abstractmethod
    def rows(
        self,
        table: str,
        columns: list[str],
        order_by: list[str] | None = None,
        schema: str | None = None,
    ) -> list[tuple[Any, ...]]:
        """Values of `columns` (logical names), ordered by `order_by` (default: the selected columns, in order).

        Values are normalised to plain Python types (see the module docstring).
        """

    @abc.abstractmethod
    def primary_key(self, table: str, schema: str | None = None) -> list[str]:
        """The table's primary key columns (logical names), in key order; `[]` when it has none."""

    @abc.abstractmethod
    def new_schema(self) -> str:
        """A fresh logical schema name that does not exist yet (not created)."""

    @abc.abstractmethod
    def schema_exists(self, name: str) -> bool:
        """Whether the logical schema `name` exists."""

    @abc.abstractmethod
    def seed_table(self, table: str, column: str, values: list[int], schema: str | None = None) -> None:
        """Create the schema if needed and a table with one integer column holding `values` (not via the target)."""

    @abc.abstractmethod
    def timestamp_as_text(self, value: datetime.datetime) -> str:
        """How a timestamp value reads back after its column was widened to a string (dialect's own text form)."""

    # -- conveniences ---------------------------------------------------------------------------------------

    def count(self, table: str, schema: str | None = None) -> int:
        """Number of rows in the table."""
        first = next(iter(self.columns(table, schema)))
        return len(self.rows(table, [first], schema=schema))

    def dicts(self, table: str, *, exclude: tuple[str, ...] = ("__loaded_at",)) -> list[dict[str, Any]]:
        """Every row as a dict of its columns (minus `exclude`), ordered by the table's first column."""
        names = [name for name in self.columns(table) if name not in exclude]
        return [dict(zip(names, row, strict=True)) for row in self.rows(table, names, order_by=names[:1])]
