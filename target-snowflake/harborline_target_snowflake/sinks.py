"""The Snowflake sink: the shared record path, batches staged as files and committed by one MERGE each.

Per batch and per stream, one transaction: the CSV rows the shared loader built (kept in memory, bounded by
`batch_size_bytes`) become a gzip CSV file, PUT to the stage, COPY'd into a temporary staging table, then ONE
`MERGE` (keyed upsert, newest record per key) or `INSERT ... SELECT`, then COMMIT (`load.TableLoad`). The batch is
handed to a commit thread while the next one is read; the target's `StateEmitter` writes a STATE only once every
batch before it has committed. A transient fault rolls the batch back and redoes it, from the kept rows, on a new
connection; any other error is one line naming stream and input lines, and no later STATE is written.
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import threading
import time
from array import array
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from snowflake.connector import errors as sf_errors

from harborline_singer_shared.retry import RetryPolicy
from harborline_singer_shared.rules import ColumnPlan, TablePlan, plan_table
from harborline_singer_shared.warehouse.errors import RecordTypeError, TargetLoadError
from harborline_singer_shared.warehouse.sink import VERSION_COLUMN, WarehouseSink
from harborline_target_snowflake import connector
from harborline_target_snowflake.load import (
    SEQ_COLUMN,
    SNOWFLAKE_ROWS,
    BatchAttempt,
    BatchLoadError,
    TableLoad,
    copy_rejection,
)

if TYPE_CHECKING:
    from harborline_target_snowflake.pool import PooledConnection
    from harborline_target_snowflake.target import TargetSnowflake

__all__ = ["SnowflakeSink"]

_T = TypeVar("_T")

#: A transient fault is redone after growing, jittered waits, for at most 60 seconds per batch (the connector's own
#: HTTP retries come first, within its timeouts); then the run stops with the fault as its error.
RECONNECT_POLICY = RetryPolicy(max_attempts=30, max_elapsed_seconds=60.0, base_delay=0.5, max_delay=5.0)
#: Times one batch (or retirement, or overwrite swap) is sent again after transient faults before the run stops.
REDO_ATTEMPTS = 5
#: Identifies a sink's temporary staging table on a pooled connection (a new SCHEMA needs a new one).
_SINK_TOKENS = itertools.count(1)
#: Errors of a load that are the data's or the warehouse's, reported as one line (others are bugs: traceback).
_LOAD_ERRORS = (sf_errors.Error, BatchLoadError, connector.SnowflakeConnectError, OSError)


class _Commit(threading.Thread):
    """One handed-off batch, committed on a pooled connection; registered with the STATE emitter."""

    def __init__(self, sink: SnowflakeSink, data: list[bytes], rows: int, lines: array[int]) -> None:
        super().__init__(name=f"commit-{sink.stream_name}", daemon=True)
        self.error: BaseException | None = None
        self._args = (sink, data, rows, lines)
        self._emitter = sink.target.state_emitter
        self._emitter.begin(self)  # before it can end: a STATE offered from now on waits for this commit
        self.start()

    def run(self) -> None:
        sink, data, rows, lines = self._args
        try:
            sink._commit_batch(data, rows, lines)  # noqa: SLF001 - the sink's own worker
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread by wait_committed()
            self.error = exc
        finally:
            # Writes the STATE that waited for this commit (none ever again if it failed).
            self._emitter.end(self, self.error)


class SnowflakeSink(WarehouseSink):
    """One stream into one Snowflake table."""

    target: TargetSnowflake
    supports_watermark = False  # every keyed row goes through staging and the MERGE
    row_format = SNOWFLAKE_ROWS  # rows built as the CSV the COPY reads; integers past NUMBER(38,0) refused

    def __init__(self, target: TargetSnowflake, stream_name: str, schema: dict[str, Any], key_properties: Any) -> None:
        super().__init__(target, stream_name, schema, key_properties)
        self._data: list[bytes] = []
        self._inflight: _Commit | None = None
        self._load: TableLoad | None = None
        self._token = next(_SINK_TOKENS)

    # -- table setup ---------------------------------------------------------------------------------------------

    def setup(self) -> None:
        """Create or evolve the table for this SCHEMA (DDL, before any data transaction), then prepare the load.

        A refused type change is the rule engine's error, raised before any DDL. A Snowflake error becomes one line.
        """
        pool = self.target.pool
        try:
            pooled = pool.acquire()
        except connector.SnowflakeConnectError as exc:
            raise TargetLoadError(f"stream {self.stream_name!r}: {exc}") from None
        broken = False
        try:
            self._setup(pooled)
        except sf_errors.Error as exc:
            broken = connector.is_transient(exc)
            msg = (
                f"stream {self.stream_name!r}: preparing the table failed: {connector.describe_error(exc)} "
                "(no rows were changed)"
            )
            raise TargetLoadError(msg) from None
        except connector.RebuildCountMismatchError as exc:
            raise TargetLoadError(f"stream {self.stream_name!r}: {exc}") from None
        finally:
            pool.release(pooled, broken=broken)

    def _setup(self, pooled: PooledConnection) -> None:
        t = self.target
        self.schema_name = t.schema_name
        cur = pooled.conn.cursor()
        t.ensure_schema(cur)
        pooled.schema = self.schema_name
        self.table_name = t.table_name_for(cur, self.stream_name)
        rebuild = connector.side_name(self.table_name, "rebuild")
        tables = connector.read_tables(cur, self.schema_name, [self.table_name, rebuild])
        if rebuild in tables:
            connector.discard_rebuild(cur, self.schema_name, self.table_name)
        physical = tables.get(connector.stored_name(self.table_name))
        existing = connector.existing_columns(physical)
        self.plan: TablePlan = plan_table(
            self.stream_name,
            self.schema,
            list(self.key_properties),
            existing,
            connector.RULES,
            system_columns=self.system_columns(),
            reserved=[SEQ_COLUMN],
            max_depth=t.flattening_max_depth,
        )
        # Append-only tables take duplicates by design, so only merging load methods record a primary key.
        keyed = bool(self.plan.key_columns) and t.load_method in {"upsert", "overwrite"}
        options = t.type_options
        ddl = connector.plan_ddl(
            self.plan, self.schema_name, self.table_name, self.stream_name, t.timestamp_column, options, physical,
            primary_key=keyed,
        )  # fmt: skip
        connector.apply_ddl(cur, ddl)
        self.key_columns = self.plan.key_columns
        if not self.key_columns and existing is not None:
            self.key_columns = connector.read_primary_key(cur, self.schema_name, self.table_name)
        self._log_changes(ddl)
        self.prepare_rows()
        self._load = TableLoad(
            schema=self.schema_name,
            table=self.table_name,
            columns=self._row_columns(),
            key_columns=self.key_columns if self.mode != "append-only" else [],
            timestamp_column=t.timestamp_column,
            options=options,
            mode=self.mode,
            seq=self._seq,
            stage=t.stage,
            workdir=t.workdir,
            # (with the metadata columns, the record itself carries `_sdc_deleted_at`)
            deleted_at_column=self.version_columns()[1] if self.versioned and not self.with_metadata else None,
        )
        start = True
        if self.mode == "overwrite":
            if self.table_name in t.overwrite_started:
                start = False  # a later SCHEMA of this run: the side table keeps its rows and gets the same changes
                side = connector.read_physical_columns(cur, self.schema_name, self._load.side_table)
                side_ddl = connector.plan_ddl(
                    self.plan, self.schema_name, self._load.side_table, self.stream_name, t.timestamp_column,
                    options, side, primary_key=keyed,
                )  # fmt: skip
                connector.apply_ddl(cur, side_ddl)
            t.overwrite_started.add(self.table_name)
        self._load.prepare(cur, start=start)
        pooled.staged[self._load.staging] = self._token

    def _row_columns(self) -> list[ColumnPlan]:
        """The columns a row fills, in order: the record's, then the table version when rows carry it."""
        columns = list(self.load_columns)
        if self.copy_column_names[len(columns) :]:
            columns += [c for c in self.plan.columns if c.source is None and c.name == VERSION_COLUMN]
        return columns

    def _log_changes(self, ddl: connector.DdlPlan) -> None:
        if self.plan.create:
            self.logger.info("Created table %s.%s", self.schema_name, self.table_name)
        for col in self.plan.add:
            self.logger.info("Added column %s.%s (%s)", self.table_name, col.name, col.type)
        for col, old in self.plan.widen:
            how = "rebuilt the table" if connector.stored_name(col.name) in ddl.rebuild else "in place"
            self.logger.info("Widened column %s.%s from %s to %s (%s)", self.table_name, col.name, old, col.type, how)

    def _ensure_session(self, pooled: PooledConnection) -> None:
        """Give a pooled connection the current schema and this sink's temporary staging table, once."""
        assert self._load is not None  # noqa: S101 - set by setup
        cur = pooled.conn.cursor()
        if pooled.schema != self.schema_name:
            cur.execute(f"USE SCHEMA {connector.quote(self.schema_name)}")
            pooled.schema = self.schema_name
        if pooled.staged.get(self._load.staging) != self._token:
            self._load.prepare(cur, start=False)
            pooled.staged[self._load.staging] = self._token

    # -- the record path -----------------------------------------------------------------------------------------

    def _flush(self) -> None:
        """Keep the queued rows as bytes until the batch commits (a transient fault redoes it from them)."""
        if not self._chunks:
            self._chunk_chars = 0
            return
        data = "".join(self._chunks).encode("utf-8")
        first = len(self._lines) - len(self._chunks)
        self._chunks.clear()
        self._chunk_chars = 0
        self._batch_bytes += len(data)
        if len(data) > connector.MAX_VARCHAR:  # only a chunk holding a very large value can be this long
            self._refuse_oversized(data, first)
        self._data.append(data)

    def _refuse_oversized(self, data: bytes, first: int) -> None:
        """A value over Snowflake's 16 MB limit (VARCHAR and VARIANT) stops the run naming stream, line, property.

        Only for a chunk this long, so a real CSV reader can afford to find the rows (values may hold newlines).
        """
        names = [*(".".join(c.source.path) if c.source else c.name for c in self.load_columns), "?", "?"]
        limit = csv.field_size_limit()
        csv.field_size_limit(len(data) + 1)
        try:
            rows = csv.reader(io.StringIO(data.decode("utf-8"), newline=""), delimiter="\t", quotechar='"', strict=True)
            for k, row in enumerate(rows):
                for i, value in enumerate(row):
                    size = len(value.encode("utf-8"))
                    if size > connector.MAX_VARCHAR:
                        line = self._lines[first + k] if first + k < len(self._lines) else "?"
                        msg = (
                            f"stream {self.stream_name!r}, input line {line}: property {names[i]!r} holds "
                            f"{size:,} bytes, over Snowflake's limit of {connector.MAX_VARCHAR:,} (16 MB) "
                            "for one value; nothing of the batch was committed"
                        )
                        raise RecordTypeError(msg)
        finally:
            csv.field_size_limit(limit)

    # -- committing ----------------------------------------------------------------------------------------------

    def process_batch(self, context: dict[str, Any]) -> None:  # noqa: ARG002
        """Hand the batch to a commit thread and go on reading; batches of a stream commit in input order."""
        self._flush()
        data, self._data = self._data, []
        rows, lines = self._batch_rows, self._lines
        self._lines = array("q")
        self._batch_bytes = 0
        self.wait_committed()  # the previous batch first: later batches win, and a failure stops the run here
        if rows == 0:
            return
        if self.mode == "overwrite":
            self._overwrite_pending = True
        self._inflight = _Commit(self, data, rows, lines)

    def wait_committed(self) -> None:
        """Wait for the handed-off batch; raise its error (nothing of it was committed) if it failed."""
        job, self._inflight = self._inflight, None
        if job is None:
            return
        job.join()
        if job.error is not None:
            raise job.error

    def _commit_batch(self, data: list[bytes], rows: int, lines: array[int]) -> None:
        """Runs in the commit thread: one transaction, redone from `data` after a transient fault."""
        load = self._load
        assert load is not None  # noqa: S101 - set by setup
        started = time.perf_counter()
        attempt = BatchAttempt()  # the same across redos: a redo after a lost COMMIT answer asks whether it took
        result = self._with_connection(
            lambda pooled: load.load(pooled.conn, data, rows, attempt),
            lambda exc: self._load_failed(exc, lines),
            "redoing the batch",
        )
        if result.already_committed:
            self.logger.info("Stream %r: the batch had been committed before the fault", self.stream_name)
        self.committed(rows, started)

    def _with_connection(
        self, action: Callable[[PooledConnection], _T], failed: Callable[[BaseException], str], redo: str
    ) -> _T:
        """Run `action` on a pooled connection; after a transient fault again on a new one (shared retry policy).

        `action` is one transaction that rolls itself back on error. A fault that is not transient, or one that
        outlasts the policy, raises `TargetLoadError` with the line `failed` gives.
        """
        policy = RECONNECT_POLICY
        pool = self.target.pool
        started = policy.clock.monotonic()
        fault: BaseException | None = None
        for attempt in range(1, REDO_ATTEMPTS + 2):
            if attempt > 1:
                delay = policy.backoff_delay(attempt - 1)
                if policy.clock.monotonic() - started + delay > policy.max_elapsed_seconds:
                    break
                policy.clock.sleep(delay)
            try:
                pooled = pool.acquire()
            except connector.SnowflakeConnectError as exc:  # e.g. the service is unreachable for a moment
                fault = exc
                continue
            broken = False
            try:
                self._ensure_session(pooled)
                return action(pooled)
            except _LOAD_ERRORS as exc:
                if not connector.is_transient(exc):
                    raise TargetLoadError(failed(exc)) from None
                broken, fault = True, exc
                if attempt <= REDO_ATTEMPTS:
                    self.logger.warning(
                        "Stream %r: %s; reconnecting and %s (attempt %d)",
                        self.stream_name,
                        connector.describe_error(exc),
                        redo,
                        attempt + 1,
                    )
            finally:
                pool.release(pooled, broken=broken)
        raise TargetLoadError(failed(fault or RuntimeError("no connection")))

    def _load_failed(self, exc: BaseException, lines: array[int]) -> str:
        """One line for a batch that failed as a whole: stream, the input lines it held, Snowflake's reason.

        When Snowflake's COPY refused a value, the line names the record's input line (the staged file's rows are
        the batch's rows in input order) and the property, besides the batch's lines.
        """
        batch = ""
        if lines:
            first, last = min(lines), max(lines)
            batch = f"input line {first}" if first == last else f"input lines {first}-{last}"
        reason = str(exc) if isinstance(exc, connector.SnowflakeConnectError) else connector.describe_error(exc)
        rejection = copy_rejection(exc)
        if rejection is None or self._load is None:
            where = f", {batch}" if batch else ""
            return f"stream {self.stream_name!r}{where}: loading the batch failed: {reason} (nothing was committed)"
        where = f", input line {lines[rejection.row - 1]}" if 1 <= rejection.row <= len(lines) else ""
        column = self._load.column_at(rejection)
        if column is not None:
            prop = ".".join(column.source.path) if column.source is not None else column.name
            where += f", property {prop!r} (column {connector.stored_name(column.name)})"
        elif rejection.column is not None:
            where += f", column {rejection.column}"
        about = f"the batch of {batch}; " if batch else ""
        return f"stream {self.stream_name!r}{where}: loading the batch failed: {reason} ({about}nothing was committed)"

    def finalize_overwrite(self) -> None:
        """Replace the table's rows with the run's in one transaction (readers see old or new, never none)."""
        self.wait_committed()
        load = self._load
        if self.mode != "overwrite" or not self._overwrite_pending or load is None:
            return

        def failed(exc: BaseException) -> str:
            return (
                f"stream {self.stream_name!r}: replacing the rows of {self.schema_name}.{self.table_name} failed: "
                f"{connector.describe_error(exc)} (the table keeps its previous rows)"
            )

        self._with_connection(lambda pooled: load.finalize_overwrite(pooled.conn), failed, "replacing the rows again")
        self._overwrite_pending = False
        self.target.overwrite_started.discard(self.table_name)
        self.logger.info("Replaced the rows of %s.%s (overwrite)", self.schema_name, self.table_name)

    def retire_older_versions(self, version: int, *, hard: bool) -> int:
        """Soft-delete (or delete) the rows of earlier table versions in one statement; transient faults redone."""
        assert self._load is not None  # noqa: S101 - set by setup
        ver, deleted = (connector.quote(c) for c in self.version_columns())
        older = f"({ver} < {int(version)} OR {ver} IS NULL)"
        target = self._load.target
        if hard:
            sql = f"DELETE FROM {target} WHERE {older}"
        else:
            sql = f"UPDATE {target} SET {deleted} = {self._load.now_sql()} WHERE {older} AND {deleted} IS NULL"

        def retire(pooled: PooledConnection) -> int:
            cur = pooled.conn.cursor()
            cur.execute(sql)  # autocommit: one statement, one transaction
            return int(cur.rowcount or 0)

        def failed(exc: BaseException) -> str:
            return (
                f"stream {self.stream_name!r}: retiring the rows of table versions before {version} failed: "
                f"{connector.describe_error(exc)} (nothing was changed)"
            )

        return self._with_connection(retire, failed, "retiring again")

    # -- the end of a sink ---------------------------------------------------------------------------------------

    def drop_overwrite_stage(self) -> None:
        """After a failed run (every sink closed): drop an overwrite run's side table, if a connection is free.

        Only a courtesy: the next overwrite run replaces it anyway, and the target table was never touched.
        """
        load = self._load
        if getattr(self, "mode", None) != "overwrite" or load is None:
            return
        pool = self.target.pool
        with contextlib.suppress(Exception):
            pooled = pool.try_acquire()
            if pooled is not None:
                try:
                    pooled.conn.cursor().execute(load.drop_side_sql())
                finally:
                    pool.release(pooled)
        self.target.overwrite_started.discard(self.table_name)

    def close(self) -> None:
        """Wait for a handed-off batch (its thread gives its connection back) and drop what is uncommitted."""
        job, self._inflight = self._inflight, None
        if job is not None:
            job.join()
        self._data = []
        self._chunks.clear()
