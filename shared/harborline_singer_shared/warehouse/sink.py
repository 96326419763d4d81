"""The dialect-neutral half of a warehouse sink: records in, delimited text rows out, batched by rows and bytes.

A dialect's sink subclasses `WarehouseSink` and supplies what touches the warehouse: `setup` (create or evolve the
table from `plan`, then call `prepare_rows`), `_flush` (hand the queued chunk on: stream it, stage it), and the
commit pipeline (`process_batch`, `wait_committed`, `close`, `abandon`, `drop_overwrite_stage`,
`finalize_overwrite`). Everything a user sees about a record (its type errors, a missing key, which input line)
is decided here, once, so both targets say the same thing about the same input.
"""

from __future__ import annotations

import abc
import contextlib
import time
from array import array
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import msgspec
from singer_sdk.exceptions import ConfigValidationError, MissingKeyPropertiesError
from singer_sdk.sinks import BatchSink

from harborline_singer_shared.rules import ColumnPlan, ColumnType, Kind, TablePlan, make_getter
from harborline_singer_shared.warehouse.errors import RecordTypeError, TargetLoadError
from harborline_singer_shared.warehouse.rows import (
    COPY_TEXT,
    Mismatch,
    MissingKey,
    OutOfRange,
    RowFormat,
    build_row_function,
    column_converter,
    json_types,
)
from harborline_singer_shared.warehouse.structs import (
    JSON_NAMES,
    MSGSPEC_ERROR,
    StructLoader,
    build_struct_loader,
)

if TYPE_CHECKING:
    from singer_sdk.sinks.core import BaseJSONSchemaValidator

    from harborline_singer_shared.warehouse.target import WarehouseTarget

#: The column a staging table orders a key's rows by (the input line): the newest record of a key wins.
SEQ_COLUMN = "__harborline_seq"


class _Bound:
    """A key watermark below (or above) every key, integer or text alike (a float infinity cannot compare to text).

    Only `key > bound` is ever asked (Python turns it into `bound < key`), and only until the first real key.
    """

    __slots__ = ("_above",)

    def __init__(self, *, above: bool) -> None:
        self._above = above

    def __lt__(self, other: object) -> bool:
        return not self._above

    def __gt__(self, other: object) -> bool:
        return self._above

    def __repr__(self) -> str:
        return "ABOVE_ALL" if self._above else "BELOW_ALL"


def _stored_key(key: Any) -> Any:
    """A key as the table stores it, for the watermark's comparisons: NUL in text is stored as U+FFFD."""
    if key.__class__ is str:
        return key.replace("\x00", "\ufffd") if "\x00" in key else key
    if key.__class__ is tuple:
        return tuple(_stored_key(k) for k in key)
    return key


def _key_function(parts: list[Callable[[Any], Any]]) -> Callable[[Any], Any] | None:
    """`record -> key` from one function per watermark column: the value itself for one, else the tuple."""
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    return lambda record: tuple(part(record) for part in parts)


#: The (column kind, declared JSON types) of a key the watermark can order exactly as the server does.
_WATERMARK_KINDS = {(Kind.INTEGER, frozenset({"integer"})), (Kind.STRING, frozenset({"string"}))}
#: Below every key: the key watermark of an empty table.
BELOW_ALL: Any = _Bound(above=False)
#: Above every key: a watermark that sends every row the staging way (after a concurrent writer was seen).
ABOVE_ALL: Any = _Bound(above=True)
#: ACTIVATE_VERSION's columns (MeltanoLabs' names): the table version a row was loaded with, and when it was retired.
VERSION_COLUMN = "_sdc_table_version"
DELETED_AT_COLUMN = "_sdc_deleted_at"
#: Characters of queued rows after which they are flushed as one chunk (about 256 KB).
FLUSH_CHARS = 1 << 18


class WarehouseSink(BatchSink):
    """One stream into one table: the record path and the batch bookkeeping (see the module docstring)."""

    target: WarehouseTarget
    #: Whether this dialect can load rows of new keys straight into the table (see `_watermark_columns`).
    supports_watermark = False
    #: The form rows are built in: what the dialect's bulk load reads, so they are never re-encoded.
    row_format: RowFormat = COPY_TEXT
    #: Where the stream lands, set by the dialect's `setup`.
    schema_name: str
    table_name: str

    def __init__(self, target: WarehouseTarget, stream_name: str, schema: dict[str, Any], key_properties: Any) -> None:
        self.target = target
        pseudonymizer = target.pseudonymizer
        if pseudonymizer is not None and pseudonymizer.paths_for(stream_name):
            try:
                schema = pseudonymizer.transform_schema(stream_name, schema)
            except ConfigValidationError as exc:  # e.g. a configured path the stream does not have
                raise TargetLoadError(f"stream {stream_name!r}: {exc}") from None
            self._pseudonymize: Callable[[dict[str, Any]], dict[str, Any]] | None = lambda r: (
                pseudonymizer.transform_record(stream_name, r)
            )
        else:
            self._pseudonymize = None
        super().__init__(target, stream_name, schema, key_properties)
        self.plan: TablePlan
        self.load_columns: list[ColumnPlan] = []
        self.key_columns: list[str] = []
        self.mode = "append-only"
        self.typed = False
        self._chunks: list[str] = []
        self._chunk_chars = 0
        self._batch_rows = 0
        self._batch_bytes = 0
        self._lines = array("q")
        #: The key columns (load column indexes) in the order the key watermark compares them; None: no watermark.
        self._watermark: tuple[int, ...] | None = None
        self._watermark_lost = False
        self._hi: Any = BELOW_ALL
        self._seq = False
        #: Watermark path: rows of keys the table may hold, with their input lines, in input order (`_hold`).
        self._old_rows: list[str] = []
        self._old_counted = 0
        self._old_lines = array("q")
        #: ... and where each key's newest held row is, and the positions later rows of their key superseded.
        self._held_at: dict[Any, int] = {}
        self._superseded: list[int] = []
        self._keyof: Callable[[Any], Any] | None = None
        self._key_getter: Callable[[Any], Any] | None = None
        self._required: list[str] = []
        self._overwrite_pending = False
        self._max_rows = int(self.config.get("batch_size_rows") or 100_000)
        self._max_bytes = target.batch_size_bytes
        self.with_metadata = self.include_sdc_metadata_properties
        #: Rows carry their table version (ACTIVATE_VERSION): in the metadata columns, or in the version column the
        #: target added when the stream's first version arrived (`_version_field`: the row's last field).
        self.versioned = self.with_metadata or stream_name in target.versioned_streams
        self._version_field = False

    # -- configuration -------------------------------------------------------------------------------------------

    def get_validator(self) -> BaseJSONSchemaValidator | None:
        """Validation happens in the generated row builder (type checks while converting), not per dict."""
        return None

    @property
    def max_size(self) -> int:
        """Rows per batch."""
        return self._max_rows

    @property
    def is_full(self) -> bool:
        """Full by rows or by bytes, whichever comes first."""
        return self._batch_rows >= self._max_rows or self._batch_bytes >= self._max_bytes

    @property
    def current_size(self) -> int:
        """Rows in the open batch."""
        return self._batch_rows

    @property
    def holds_state(self) -> bool:
        """An overwrite run's rows are only in the target table after the final swap: hold STATE until then."""
        return self.mode == "overwrite" and (self._overwrite_pending or self._batch_rows > 0)

    def system_columns(self) -> dict[str, ColumnType]:
        """The columns the target adds to every row of this table: load time, and the version columns if versioned."""
        columns = {self.target.timestamp_column: ColumnType(Kind.TIMESTAMP)}
        if self.versioned and not self.with_metadata:
            columns[VERSION_COLUMN] = ColumnType(Kind.INTEGER)
            columns[DELETED_AT_COLUMN] = ColumnType(Kind.TIMESTAMP)
        return columns

    @property
    def copy_column_names(self) -> list[str]:
        """The columns a row fills, in order (before the sequence column of staged rows)."""
        names = [c.name for c in self.load_columns]
        return [*names, VERSION_COLUMN] if self._version_field else names

    def version_columns(self) -> tuple[str, str]:
        """(version, deleted-at) column names of a versioned table: ours, or the metadata columns' planned names."""
        if not self.with_metadata:
            return VERSION_COLUMN, DELETED_AT_COLUMN
        by_source = {c.source.path: c.name for c in self.plan.columns if c.source is not None}
        return by_source[(VERSION_COLUMN,)], by_source[(DELETED_AT_COLUMN,)]

    def prepare_rows(self) -> StructLoader | None:
        """Build the record path for `self.plan` (after the table is ready): row functions, load mode, key routing."""
        t = self.target
        self.load_columns = self.plan.source_columns
        fmt = self.row_format
        self._row = build_row_function(self.load_columns, validate=t.validate_records, fmt=fmt)
        required = [r for r in (self.schema.get("required") or []) if isinstance(r, str)]
        loader = build_struct_loader(self.load_columns, required, fmt) if t.validate_records else None
        self.typed = loader is not None and self._pseudonymize is None and not self.with_metadata
        key_names = [c.source.path[0] for c in self.plan.columns if c.is_key and c.source]
        self._required = [r for r in required if r not in key_names]
        self.mode = t.load_method_for(self)
        self._watermark = self._watermark_columns(loader)
        # Staged rows carry their input line number as sequence: the newest record of a key wins.
        self._seq = self.mode != "append-only" and self._watermark is None
        self._version_field = self.versioned and not self.with_metadata
        if loader is not None:
            self._decode_typed, self._row_typed = loader.decode, loader.row
            self.run = loader.run_function(
                self.stream_name, seq=self._seq, watermark=self._watermark, version=self._version_field
            )
            self._keyof = _key_function([loader.value_of(i) for i in self._watermark or ()])
        paths = [self.load_columns[i].source.path for i in self._watermark or ()]  # type: ignore[union-attr]
        self._key_getter = _key_function([make_getter(path) for path in paths])
        return loader

    def _watermark_columns(self, loader: StructLoader | None) -> tuple[int, ...] | None:
        """The key columns that make new keys recognisable without asking the server, if the stream's key allows.

        Upserts keyed by integer and plain text columns: a key above every key the table held when the run started
        and every key this run sent cannot exist in the table, so its row can go straight in (the cost of an
        append); only the other rows take the staging table and the merge. Sources that number or name new rows
        upwards (most of them: ids, `INV-000123` codes) load their new rows at append speed. A composite key is
        compared as a tuple, integer columns first (ids grow; a tenant or region column does not), then text, each
        in key order: any fixed order is correct, this one finds the most new keys. Text compares in code-point
        order, so the dialect must read the table's highest key in that order (byte order of UTF-8, PostgreSQL's
        "C" collation). Only for dialects that say so (`supports_watermark`).
        """
        keys = [i for i, c in enumerate(self.load_columns) if c.is_key]
        if not self.supports_watermark or loader is None or not self.typed or self.mode != "upsert" or not keys:
            return None
        for i in keys:
            col = self.load_columns[i]
            if col.source is None:
                return None
            declared = frozenset(json_types(col.source.schema) - {"null"})
            if (col.type.kind, declared) not in _WATERMARK_KINDS:
                return None
        return tuple(sorted(keys, key=lambda i: self.load_columns[i].type.kind is not Kind.INTEGER))

    # -- the record path -----------------------------------------------------------------------------------------

    def append_raw(self, raw: msgspec.Raw, line: int, version: int | None = None) -> bool:
        """`append` for a record still in JSON: decoded straight into a typed struct (validated in C)."""
        try:
            record = self._decode_typed(raw)
            row = self._row_typed(record)
        except msgspec.ValidationError as exc:
            raise RecordTypeError(self._describe_validation_error(line, exc)) from None
        except OutOfRange as exc:
            raise RecordTypeError(self._out_of_range(line, exc)) from None
        except (UnicodeDecodeError, msgspec.DecodeError) as exc:
            # msgspec < 0.23 raised UnicodeDecodeError for invalid UTF-8; 0.23+ raises DecodeError (the envelope
            # decode keeps the record as raw bytes, so this is the first place its strings are checked).
            what = "holds text that is not valid UTF-8" if "UTF-8" in str(exc) else f"could not be decoded ({exc})"
            msg = f"stream {self.stream_name!r}, input line {line}: the record {what}"
            raise RecordTypeError(msg) from None
        except Mismatch as exc:
            col = self.load_columns[exc.column or 0]
            raise RecordTypeError(self._type_error(line, col, JSON_NAMES.get(exc.got, exc.got))) from None
        except MissingKey as exc:
            raise self._missing_key_error(exc.name, line) from None
        except RecursionError:
            raise RecordTypeError(self._too_deep(line)) from None
        return self._add_row(row, line, None if self._keyof is None else self._keyof(record), version)

    def _add_row(self, row: str, line: int, key: Any = None, version: int | None = None) -> bool:
        """Queue one row of the open batch; True when the batch is full (by rows or by bytes)."""
        if self._version_field:
            row = f"{row[:-1]}\t{self.row_format.null if version is None else version}\n"
        if self._watermark_lost:
            self._hi = ABOVE_ALL
        if self._watermark is not None:
            key = _stored_key(key)
        if self._watermark is not None and not key > self._hi:
            row = f"{row[:-1]}\t{line}\n"
            self._hold(key, row, line)
            return self.rows_added(1, len(row))
        if self._watermark is not None:
            self._hi = key
        elif self._seq:
            row = f"{row[:-1]}\t{line}\n"
        self._chunks.append(row)
        self._lines.append(line)
        return self.rows_added(1, len(row))

    def committed(self, rows: int, started: float) -> None:
        """Log a batch's commit (from its commit thread, `started` by `time.perf_counter()`) and count its rows."""
        self.logger.info(
            "Committed %d rows into %s.%s (%s) in %.2fs",
            rows,
            self.schema_name,
            self.table_name,
            self.mode,
            time.perf_counter() - started,
        )
        self.record_counter_metric.increment(rows)

    def _hold(self, key: Any, row: str, line: int) -> None:
        """Keep a row of a key the table may hold (watermark path), noting the earlier row of its key it supersedes."""
        at = self._held_at.get(key)
        if at is not None:
            self._superseded.append(at)
        self._held_at[key] = len(self._old_rows)
        self._old_rows.append(row)
        self._old_lines.append(line)

    def take_held(self) -> tuple[list[str], array[int], list[int]]:
        """The batch's held rows, their input lines, and the lines of rows a later row of their key superseded.

        The sink starts a new batch. Every held row is still sent (the server checks each value: a bad one fails
        the batch, superseded or not); deleting the superseded ones by their sequence leaves one row per key, which
        merges without de-duplication (PostgreSQL's `DISTINCT ON` sorts every row).
        """
        rows, lines = self._old_rows, self._old_lines
        superseded = [lines[i] for i in self._superseded]
        self._old_rows, self._old_lines, self._superseded, self._held_at = [], array("q"), [], {}
        self._old_counted = 0
        return rows, lines, superseded

    @property
    def room(self) -> tuple[int, int]:
        """(rows, characters) the open batch and chunk take before `rows_added` must run."""
        chars = min(FLUSH_CHARS - self._chunk_chars, self._max_bytes - self._batch_bytes - self._chunk_chars)
        return self._max_rows - self._batch_rows, chars

    def rows_added(self, rows: int, chars: int) -> bool:
        """Account for rows queued in the chunk (by `_add_row` or the tight loop); True when the batch is full."""
        self._batch_rows += rows
        self._chunk_chars += chars
        # Flush also when the unflushed text alone may reach the byte bound (a character is at least one byte), so
        # the bound is checked on exact byte counts and a batch never runs far past it.
        if self._chunk_chars >= FLUSH_CHARS or self._batch_bytes + self._chunk_chars >= self._max_bytes:
            self._flush()
        return self._batch_rows >= self._max_rows or self._batch_bytes >= self._max_bytes

    # -- the dialect's part: sending and committing batches -----------------------------------------------------

    @abc.abstractmethod
    def wait_committed(self) -> None:
        """Wait for the handed-off batch; raise its error (nothing of it was committed) if it failed."""

    @abc.abstractmethod
    def close(self) -> None:
        """Abandon anything uncommitted and give back the connections (a handed-off batch is waited for first)."""

    @abc.abstractmethod
    def finalize_overwrite(self) -> None:
        """End of an overwrite run: replace the table's rows with the run's in one transaction (else nothing)."""

    def clean_up(self) -> None:
        """End of input: wait for the last commit, finish an overwrite, close the connections."""
        try:
            self.wait_committed()
            self.finalize_overwrite()
        finally:
            self.close()
        super().clean_up()

    def abandon(self) -> None:
        """The run failed: roll back the open batch and give back its connections, never raising.

        The run's own error is the one reported; see `drop_overwrite_stage`.
        """
        with contextlib.suppress(Exception):
            self.close()

    @abc.abstractmethod
    def drop_overwrite_stage(self) -> None:
        """After a failed run (every sink closed): drop an overwrite run's side table, if a connection is free."""

    @abc.abstractmethod
    def retire_older_versions(self, version: int, *, hard: bool) -> int:
        """Retire the rows of table versions before `version` (and rows without one); return how many.

        Soft (default): set the deleted-at column to now where it is unset. `hard`: delete them. Committed before it
        returns (the open batch of this stream is committed first by the target).
        """

    @abc.abstractmethod
    def _flush(self) -> None:
        """Hand the queued chunk (`_chunks`) on and count its bytes into `_batch_bytes`: the dialect's job."""

    def consume(self, raw: bytes, lines: Iterator[bytes], line: int) -> tuple[bytes | None, int, int, bool]:
        """Take RECORD lines of this stream through the tight loop, starting with `raw` (input line `line`).

        Returns the first line it did not take (None when it stopped because the chunk or batch filled up or the
        input ended), the number of the last line it read, how many records it took, and whether the batch is full.
        """
        rows, chars = self.room
        backslash = b"\\" if raw.__class__ is bytes else "\\"  # in-process callers may pass text lines
        leftover, line, taken, taken_chars, self._hi = self.run(
            raw,
            lines,
            line,
            rows,
            chars,
            self._chunks.append,
            self._lines.append,
            backslash,
            self._hi,
            self._hold,
        )
        if self._watermark_lost:
            self._hi = ABOVE_ALL
        return leftover, line, taken, taken > 0 and self.rows_added(taken, taken_chars)

    def append(self, record: dict[str, Any], line: int, version: int | None = None) -> bool:
        """Add one record to the open batch; True when the batch is full (called per RECORD: keep it lean)."""
        if self._pseudonymize is not None:
            record = self._pseudonymize(record)
        if self._required:
            missing = [r for r in self._required if r not in record]
            if missing:
                msg = f"stream {self.stream_name!r}, input line {line}: record is missing required {missing}"
                raise RecordTypeError(msg)
        try:
            row = self._row(record)
        except OutOfRange as exc:
            raise RecordTypeError(self._out_of_range(line, exc)) from None
        except Mismatch as exc:
            raise RecordTypeError(self._describe_mismatch(record, line, exc)) from None
        except MissingKey as exc:
            raise self._missing_key_error(exc.name, line) from None
        except RecursionError:
            raise RecordTypeError(self._too_deep(line)) from None
        return self._add_row(row, line, None if self._key_getter is None else self._key_getter(record), version)

    # -- errors: stream, input line and property, never the value (it may be personal data) ----------------------

    def _too_deep(self, line: int) -> str:
        return f"stream {self.stream_name!r}, input line {line}: the record is nested too deeply to store"

    def _missing_key_error(self, name: str, line: int) -> MissingKeyPropertiesError:
        return MissingKeyPropertiesError(
            f"stream {self.stream_name!r}, input line {line}: record is missing key property {name!r} "
            f"(key_properties {list(self.key_properties)})"
        )

    def _describe_validation_error(self, line: int, exc: msgspec.ValidationError) -> str:
        """Name the property and the types, in the schema's words; never the value."""
        where = f"stream {self.stream_name!r}, input line {line}"
        match = MSGSPEC_ERROR.match(str(exc))
        if not match:
            return f"{where}: record does not match its schema ({exc})"
        got, path = match.group("got"), tuple(p for p in match.group("path").split(".") if p)
        by_path = {c.source.path: c for c in self.load_columns if c.source}
        if not path:
            return f"{where}: the record is {JSON_NAMES.get(got, got)}, not an object"
        col = by_path.get(path)
        if col is None:
            return f"{where}: property {'.'.join(path)!r} is {JSON_NAMES.get(got, got)}, but the schema says object"
        return self._type_error(line, col, JSON_NAMES.get(got, got))

    def _out_of_range(self, line: int, exc: OutOfRange) -> str:
        col = self.load_columns[exc.column or 0]
        prop = ".".join(col.source.path) if col.source else col.name
        return (
            f"stream {self.stream_name!r}, input line {line}: property {prop!r} is an integer of {exc.digits} digits, "
            f"more than its column holds ({exc.limit}); nothing of the batch was committed"
        )

    def _type_error(self, line: int, col: ColumnPlan, got: str) -> str:
        prop = ".".join(col.source.path) if col.source else col.name
        where = f"stream {self.stream_name!r}, input line {line}"
        return f"{where}: property {prop!r} is {got}, but the schema says {col.type}"

    def _describe_mismatch(self, record: dict[str, Any], line: int, exc: Mismatch) -> str:
        for col in self.load_columns:
            assert col.source is not None  # noqa: S101
            try:
                column_converter(col, validate=True, fmt=self.row_format)(make_getter(col.source.path)(record))
            except Mismatch:
                return (
                    f"stream {self.stream_name!r}, input line {line}: property {'.'.join(col.source.path)!r} "
                    f"is {JSON_NAMES.get(exc.got, exc.got)}, but the schema says {col.type}"
                )
        got = JSON_NAMES.get(exc.got, exc.got)
        return f"stream {self.stream_name!r}, input line {line}: a value is {got}, the schema says {exc.expected}"

    def mark_drained(self) -> None:
        """Reset batch counters after the SDK's bookkeeping."""
        self._batch_records_read = self._batch_rows
        super().mark_drained()
        self._batch_rows = 0
