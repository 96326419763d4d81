"""The PostgreSQL sink: records become COPY text rows streamed to the server while the input is still being read.

Per batch and per stream, one transaction: rows are COPY'd (text format) into the table (append-only) or into a
temporary staging table (upsert: then one `INSERT ... SELECT DISTINCT ON (key) ... ON CONFLICT DO UPDATE`, newest
record of the batch wins), then committed. Nothing of a batch is visible before its commit, so a failure or a kill
leaves no half-written batch. The record path (rows, types, errors, batching) is the shared
`harborline_singer_shared.warehouse` one; this module is what speaks PostgreSQL.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import re
import threading
import time
from array import array
from typing import TYPE_CHECKING, Any

import psycopg2
import psycopg2.errors
import psycopg2.extensions

from harborline_singer_shared.retry import RetryPolicy
from harborline_singer_shared.rules import Kind, TablePlan, plan_table
from harborline_singer_shared.warehouse.errors import RecordTypeError, TargetLoadError
from harborline_singer_shared.warehouse.sink import (
    ABOVE_ALL,
    BELOW_ALL,
    DELETED_AT_COLUMN,
    SEQ_COLUMN,
    WarehouseSink,
)
from harborline_target_postgres import connector
from harborline_target_postgres.connector import quote
from harborline_target_postgres.copy import ChunkReader, CopyStream, chunked, copying
from harborline_target_postgres.faults import QUOTED, close_quietly, is_transient, reason, rollback

if TYPE_CHECKING:
    from harborline_target_postgres.target import TargetPostgres

__all__ = ["PostgresSink", "RecordTypeError", "TargetLoadError"]


#: What a watermark batch keeps beside its COPY stream: rows of keys that may exist (with sequence), their input
#: lines, the COPY data already streamed into the table (to redo the batch the staging way if needed), and the input
#: lines (sequences) of held rows a later row of their key superseded.
_Held = tuple[list[str], "array[int]", list[bytes], list[int]]


class _Commit(threading.Thread):
    """One handed-off batch: finish its COPY, merge, commit, on its own connection."""

    def __init__(  # noqa: PLR0917 - the batch's parts, handed over as they are
        self,
        sink: PostgresSink,
        conn: psycopg2.extensions.connection,
        copy: CopyStream | None,
        rows: int,
        lines: array[int],
        held: _Held | None,
        sent: list[bytes],
    ) -> None:
        super().__init__(name=f"commit-{sink.stream_name}", daemon=True)
        self.error: BaseException | None = None
        #: The connection the batch commits on: a new one replaces it when a transient fault made the batch redo.
        self.first_conn = self.conn = conn
        #: The batch transaction's id, known once its COPY is done: after a lost connection it tells whether the
        #: commit went through.
        self.xid: int | None = None
        #: Input lines of the rows a COPY error would be in; and whether the batch's own COPY is being finished.
        self.first_lines = self.lines = lines
        self.in_stream = False
        self._args = (sink, copy, rows, lines, held, sent)
        self._emitter = sink.target.state_emitter
        self._emitter.begin(self)  # before it can end: a STATE offered from now on waits for this commit
        self.start()

    def run(self) -> None:
        sink, copy, rows, lines, held, sent = self._args
        try:
            sink._commit_batch(self, copy, rows, lines, held, sent)  # noqa: SLF001 - the sink's own worker
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread by wait_committed()
            self.error = exc
        finally:
            sink.target.pool.release(self.conn)  # the slot is free for other streams at once
            # Writes the STATE that waited for this commit (none ever again if it failed).
            self._emitter.end(self, self.error)


#: A time of day whose second is 60 (a leap second), as COPY text.
_LEAP_SECOND = re.compile(rb"\d:\d\d:60(?!\d)")

#: What a concurrent run's CREATE TABLE / ADD COLUMN of the same name looks like to ours (the catalog's unique index).
_CONCURRENT_DDL = (psycopg2.errors.DuplicateTable, psycopg2.errors.DuplicateColumn, psycopg2.errors.UniqueViolation)

#: Identifies a sink's temporary staging table on a pooled connection (a new SCHEMA needs a new one).
_SINK_TOKENS = itertools.count(1)

#: Reconnecting after a transient fault: at once, then after growing, jittered waits (a restarting server takes
#: seconds), for at most 60 seconds per batch; then the run stops with the fault as its error.
RECONNECT_POLICY = RetryPolicy(max_attempts=30, max_elapsed_seconds=60.0, base_delay=0.5, max_delay=5.0)
#: Times one batch is sent again after transient faults (each on a new connection) before the run stops.
REDO_ATTEMPTS = 5
#: Longest the read of a table's highest text key may take at start-up before the run does without a watermark.
WATERMARK_SECONDS = 10.0


def _transaction_committed(conn: psycopg2.extensions.connection, xid: int) -> bool:
    """Whether transaction `xid` committed (asked on another connection after the batch's was lost)."""
    clock = RECONNECT_POLICY.clock
    for _ in range(100):
        with conn.cursor() as cur:
            cur.execute("SELECT txid_status(%s)", (xid,))
            row = cur.fetchone()
        conn.commit()
        status = row[0] if row else None
        if status != "in progress":  # a backend that is going away may not have ended its transaction yet
            return status == "committed"
        clock.sleep(0.05)
    msg = f"transaction {xid} of the lost connection is still in progress"
    raise psycopg2.OperationalError(msg)


_COPY_CONTEXT = re.compile(r"COPY [^,]+, line (\d+)(?:, column ([^:]+))?")


class PostgresSink(WarehouseSink):
    """One stream into one table, loaded by COPY."""

    target: TargetPostgres
    supports_watermark = True  # rows of new integer or text keys are COPY'd straight into the table

    def __init__(self, target: TargetPostgres, stream_name: str, schema: dict[str, Any], key_properties: Any) -> None:
        super().__init__(target, stream_name, schema, key_properties)
        self.conn: psycopg2.extensions.connection | None = None
        self._copy: CopyStream | None = None
        self._sent: list[bytes] = []
        self._reopened = 0
        self._session_sql: tuple[str, ...] = ()
        self._token = next(_SINK_TOKENS)
        #: `conn` holds one of the pool's streaming slots (an open batch streaming its COPY).
        self._streaming = False
        #: The open batch could not get a streaming connection ready: it sends its data at the hand-off.
        self._no_stream = False
        #: Rows of the open batch already flushed (their input lines are `_lines[:_lines_flushed]`).
        self._lines_flushed = 0
        #: Date, time and timestamp columns (checked for leap seconds per flushed chunk).
        self._temporal: list[int] = []
        self._inflight: _Commit | None = None

    # -- table setup ---------------------------------------------------------------------------------------------

    def setup(self) -> None:
        """Create or evolve the table for this SCHEMA (one transaction), then prepare the load path.

        A server or connection error becomes one clear TargetLoadError (no traceback); the DDL transaction is rolled
        back, so the table is as it was.
        """
        pool = self.target.pool
        conn = pool.acquire()
        try:
            if conn is None:
                try:
                    conn = pool.open()
                except psycopg2.Error as exc:
                    msg = f"stream {self.stream_name!r}: {pool.describe(exc)}"
                    raise TargetLoadError(msg) from None
            self.conn = conn
            try:
                self._setup()
            except _CONCURRENT_DDL:
                # Another run created the table (or added the column) between our read and our DDL: what it did is
                # read back and planned against once more (the same rules decide; a conflicting type still fails).
                conn.rollback()
                self._setup()
        except psycopg2.Error as exc:
            self.conn = None
            pool.release(conn)
            self.close()
            lines = str(exc).strip().splitlines()
            primary = exc.diag.message_primary or (lines[0] if lines else type(exc).__name__)
            msg = f"stream {self.stream_name!r}: preparing the table failed: {primary} (nothing was changed)"
            raise TargetLoadError(msg) from None
        except BaseException:
            self.conn = None
            pool.release(conn)
            raise
        # The open batch takes a connection when it first has data to stream (see `pool`).
        self.conn = None
        pool.release(conn)

    def _setup(self) -> None:
        self.schema_name = self.target.schema_name
        t = self.target
        assert self.conn is not None  # noqa: S101
        t.ensure_schema(self.conn)
        with self.conn.cursor() as cur:
            self.table_name = t.table_name_for(cur, self.stream_name)
            existing = connector.read_columns(cur, self.schema_name, self.table_name)
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
            existing_pk = connector.read_primary_key(cur, self.schema_name, self.table_name) if existing else []
            keys = self.plan.key_columns
            # Append-only tables take duplicates by design, so only merging load methods get a primary key.
            keyed = bool(keys) and t.load_method in {"upsert", "overwrite"}
            ddl = connector.plan_ddl(
                self.plan, self.schema_name, self.table_name, self.stream_name, t.timestamp_column, primary_key=keyed
            )
            if existing is not None and keyed and existing_pk != keys:
                ddl.extend(self._replace_primary_key(existing_pk, keys))
            for stmt in ddl:
                cur.execute(stmt)
            self.key_columns = keys or existing_pk
        self.conn.commit()
        if self.plan.depth_limited_to is not None:
            self.logger.warning(
                "Stream %r: flattening every nested object would exceed PostgreSQL's %d columns per table: objects "
                "nested deeper than %d level(s) are stored as jsonb columns",
                self.stream_name,
                connector.MAX_COLUMNS,
                self.plan.depth_limited_to,
            )
        if self.plan.create:
            self.logger.info("Created table %s.%s", self.schema_name, self.table_name)
        for col in self.plan.add:
            self.logger.info("Added column %s.%s (%s)", self.table_name, col.name, col.type)
        for col, old in self.plan.widen:
            self.logger.info("Widened column %s.%s from %s to %s", self.table_name, col.name, old, col.type)
        self._prepare_load()

    def _replace_primary_key(self, old: list[str], new: list[str]) -> list[str]:
        target = connector.qualified(self.schema_name, self.table_name)
        stmts = []
        if old:
            with self.conn.cursor() as cur:  # type: ignore[union-attr]
                cur.execute(
                    "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'p'", (target,)
                )
                row = cur.fetchone()
            if row:
                stmts.append(f"ALTER TABLE {target} DROP CONSTRAINT {quote(row[0])}")
        stmts.extend(f"ALTER TABLE {target} ALTER COLUMN {quote(k)} SET NOT NULL" for k in new)
        stmts.append(f"ALTER TABLE {target} ADD PRIMARY KEY (" + ", ".join(quote(k) for k in new) + ")")
        return stmts

    def _prepare_load(self) -> None:
        t = self.target
        self.prepare_rows()
        self._temporal = [
            i for i, c in enumerate(self.load_columns) if c.type.kind in {Kind.DATE, Kind.TIME, Kind.TIMESTAMP}
        ]
        target = connector.qualified(self.schema_name, self.table_name)
        cols = ", ".join(quote(c) for c in self.copy_column_names)
        # What the open batch streams into while it is read: the table itself, or (merging loads) the staging table.
        self._table_copy_sql = f"COPY {target} ({cols}) FROM STDIN"
        self._stream_sql = self._table_copy_sql
        if self.mode == "append-only":
            return None
        if self._watermark is not None:
            self._hi = BELOW_ALL if self.plan.create else self._highest_key(target)
        plain_cols = cols
        cols += f", {quote(SEQ_COLUMN)}"
        if self.mode == "upsert":
            # One per table: a pooled connection serves several streams (and later SCHEMAs of one stream).
            stage = "pg_temp." + quote("hl_stage_" + hashlib.sha256(target.encode()).hexdigest()[:16])
            stage_sql: tuple[str, ...] = (
                f"DROP TABLE IF EXISTS {stage}",
                f"CREATE TEMP TABLE {stage} (LIKE {target} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS",
                f"ALTER TABLE {stage} ADD COLUMN {quote(SEQ_COLUMN)} bigint",
            )
        else:  # overwrite: a real staging table, swapped in once at the end of the run
            stage = connector.qualified(self.schema_name, t.overwrite_stage_name(self.table_name))
            stage_sql = (
                f"DROP TABLE IF EXISTS {stage}",
                f"CREATE TABLE {stage} (LIKE {target} INCLUDING DEFAULTS)",
                f"ALTER TABLE {stage} ADD COLUMN {quote(SEQ_COLUMN)} bigint",
            )
            if self.table_name in t.overwrite_started:
                stage_sql = self._resync_stage_sql(stage)
            t.overwrite_started.add(self.table_name)
        self._stage = stage
        if self.mode == "upsert":
            self._session_sql = stage_sql  # every load connection needs its own temporary staging table
            self._ensure_session(self.conn)
            return self._set_copy_sql(stage, plain_cols, cols)
        with self.conn.cursor() as cur:  # type: ignore[union-attr]
            for stmt in stage_sql:
                cur.execute(stmt)
        self.conn.commit()  # type: ignore[union-attr]
        return self._set_copy_sql(stage, plain_cols, cols)

    def _highest_key(self, target: str) -> Any:
        """The table's highest key in the order the loader compares keys; ABOVE_ALL (no watermark) if too costly.

        One integer column: from the primary key's index. Text compares in code-point order, which is UTF-8 byte
        order, i.e. the "C" collation, and a composite key in the watermark's column order: an index serves only
        when it has that order, else the key columns are read once. That read is bounded (`WATERMARK_SECONDS`):
        past it every row takes the staging way, as without a watermark, rather than delaying the run on a huge
        table.
        """
        assert self.conn is not None  # noqa: S101 - called from _prepare_load
        assert self._watermark is not None  # noqa: S101
        columns = [self.load_columns[i] for i in self._watermark]
        names = ", ".join(quote(c.name) for c in columns)
        order = ", ".join(
            quote(c.name) + (' COLLATE "C"' if c.type.kind is Kind.STRING else "") + " DESC NULLS LAST" for c in columns
        )
        try:
            with self.conn.cursor() as cur:
                cur.execute(f"SET LOCAL statement_timeout = {int(WATERMARK_SECONDS * 1000)}")
                cur.execute(f"SELECT {names} FROM {target} ORDER BY {order} LIMIT 1")
                top = cur.fetchone()
        except psycopg2.errors.QueryCanceled:
            self.logger.info(
                "Stream %r: reading the highest key of %s.%s took over %ss; every row takes the staging table",
                self.stream_name,
                self.schema_name,
                self.table_name,
                WATERMARK_SECONDS,
            )
            return ABOVE_ALL
        finally:
            self.conn.rollback()  # ends the read (and the SET LOCAL) before the session's own setup
        if top is None:
            return BELOW_ALL
        return top[0] if len(top) == 1 else tuple(top)

    def _set_copy_sql(self, stage: str, plain_cols: str, cols: str) -> None:
        self._stage_copy_unsequenced = f"COPY {stage} ({plain_cols}) FROM STDIN"
        self._copy_sql = f"COPY {stage} ({cols}) FROM STDIN"
        if self._watermark is None:
            self._stream_sql = self._copy_sql

    def _new_load_connection(self) -> psycopg2.extensions.connection:
        """A new connection for a slot this sink holds (opened, or reopened after a fault), ready to load."""
        conn = self.target.pool.open()
        try:
            self._ensure_session(conn)
        except BaseException:
            close_quietly(conn)
            raise
        return conn

    def _ensure_session(self, conn: psycopg2.extensions.connection) -> None:
        """Give a (pooled) connection this sink's temporary staging table, once (it may hold an older one)."""
        if not self._session_sql:
            return
        prepared: dict[str, int] = conn.hl_prepared
        if prepared.get(self._stage) == self._token:
            return
        with conn.cursor() as cur:
            for stmt in self._session_sql:
                cur.execute(stmt)
        conn.commit()
        prepared[self._stage] = self._token

    def _checkout_streaming(self) -> psycopg2.extensions.connection | None:
        """A connection for the open batch to stream into, if the pool has one free right away and it is ready.

        Streaming is an optimisation: on any failure the batch keeps its data and sends it when it is handed off
        (where a failure is reported, after the earlier batches' outcome), and it does not try again.
        """
        if self._no_stream:
            return None
        pool = self.target.pool
        taken, conn = pool.try_acquire_streaming()
        if not taken:
            return None
        try:
            if conn is None:
                conn = self._new_load_connection()
            else:
                self._ensure_session(conn)
        except psycopg2.Error:
            close_quietly(conn)
            pool.release(None, streaming=True)
            self._no_stream = True
            return None
        return conn

    def _checkout(self, lines: array[int]) -> psycopg2.extensions.connection:
        """A connection ready to load a handed-off batch, from the pool (waiting for a free one if need be)."""
        pool = self.target.pool
        conn = pool.acquire()
        try:
            if conn is not None:
                try:
                    self._ensure_session(conn)
                except psycopg2.Error:  # e.g. an idle connection the server dropped meanwhile: open a new one
                    close_quietly(conn)
                    conn = None
            if conn is None:
                try:
                    conn = self._new_load_connection()
                except psycopg2.Error as exc:
                    if not is_transient(exc, None):
                        raise TargetLoadError(self._load_failed(exc, lines)) from None
                    self.logger.warning("Stream %r: %s; reconnecting", self.stream_name, reason(exc))
                    conn = self._reconnect(exc, lines)
        except BaseException:
            pool.release(None)
            raise
        return conn

    def _resync_stage_sql(self, stage: str) -> tuple[str, ...]:
        """A schema change in the middle of an overwrite run: give the staging table the same new columns/types."""
        stmts = [f"ALTER TABLE {stage} ADD COLUMN {quote(c.name)} {connector.pg_type(c.type)}" for c in self.plan.add]
        stmts += [
            f"ALTER TABLE {stage} ALTER COLUMN {quote(c.name)} TYPE {connector.pg_type(c.type)}"
            f" USING {quote(c.name)}::{connector.pg_type(c.type)}"
            for c, _old in self.plan.widen
        ]
        return tuple(stmts)

    # -- the record path -----------------------------------------------------------------------------------------

    def _flush(self) -> None:
        if self._watermark is not None:
            # Held rows count toward the batch's byte bound too (as characters: they are sent at the commit).
            new = itertools.islice(self._old_rows, self._old_counted, None)
            if self._temporal:
                held = list(new)
                self._batch_bytes += sum(map(len, held))
                if ":60" in "".join(held):
                    self._refuse_leap_second([r.encode("utf-8") for r in held], self._old_lines, self._old_counted)
            else:
                self._batch_bytes += sum(map(len, new))
            self._old_counted = len(self._old_rows)
        if not self._chunks:
            self._chunk_chars = 0
            return
        data = "".join(self._chunks).encode("utf-8")
        self._chunks.clear()
        self._chunk_chars = 0
        self._batch_bytes += len(data)
        flushed, self._lines_flushed = self._lines_flushed, len(self._lines)
        if self._temporal and b":60" in data:  # one search per chunk (about 1 MB), not per record
            self._refuse_leap_second(data.split(b"\n"), self._lines, flushed)
        # Kept until the commit: after a transient fault the batch is sent again on a new connection (and a watermark
        # batch may have to be redone the staging way).
        self._sent.append(data)
        if self._copy is None:
            if self.conn is None:
                self.conn = self._checkout_streaming()
                if self.conn is None:
                    return  # no connection free now: the data is sent when the batch is handed off
                self._streaming = True
                for chunk in self._sent[:-1]:  # what the batch kept before it had a connection
                    self._start_copy().write(chunk)
        elif self._copy.error is not None:
            if is_transient(self._copy.error, self.conn):
                self._reopen_batch()  # sends every chunk of the batch again, this one included
                return
            self._finish_copy()  # raises with context
        self._start_copy().write(data)

    def _refuse_leap_second(self, rows: list[bytes], lines: array[int], first: int) -> None:
        """Stop at a leap second (`23:59:60`) in a date/time column, naming stream, input line and property.

        PostgreSQL would store it as the next second (`9999-12-31T23:59:60` as year 10000, which no client reads
        back): the data is loaded exactly as sent or not at all.
        """
        for k, row in enumerate(rows):
            if b":60" not in row:
                continue
            fields = row.split(b"\t")
            for i in self._temporal:
                if i < len(fields) and _LEAP_SECOND.search(fields[i]):
                    col = self.load_columns[i]
                    prop = ".".join(col.source.path) if col.source else col.name
                    line = lines[first + k] if first + k < len(lines) else "?"
                    msg = (
                        f"stream {self.stream_name!r}, input line {line}: property {prop!r} holds a leap second "
                        "(second 60), which PostgreSQL cannot store as such (it would become the next second): "
                        "refused; nothing of the batch was committed"
                    )
                    raise RecordTypeError(msg)

    def _start_copy(self) -> CopyStream:
        if self._copy is None:
            self._copy = CopyStream(self.conn, self._stream_sql)  # type: ignore[arg-type,unused-ignore]
        return self._copy

    def _reopen_batch(self) -> None:
        """The open batch's connection was lost mid-COPY: stream the batch so far again on a new connection."""
        copy, self._copy = self._copy, None
        assert copy is not None  # noqa: S101
        fault = copy.error
        with contextlib.suppress(psycopg2.Error):
            copy.close()
        close_quietly(self.conn)
        self.conn = None
        self._reopened += 1
        if self._reopened > REDO_ATTEMPTS:
            raise TargetLoadError(self._load_failed(fault, self._lines)) from None  # type: ignore[arg-type]
        self.logger.warning("Stream %r: %s; reconnecting and redoing the batch", self.stream_name, reason(fault))
        self.conn = self._reconnect(fault, self._lines)
        self._copy = CopyStream(self.conn, self._stream_sql)
        for chunk in self._sent:
            self._copy.write(chunk)

    def _reconnect(
        self, fault: BaseException | None, lines: array[int], held: _Held | None = None, started: float | None = None
    ) -> psycopg2.extensions.connection:
        """A new load connection after a transient fault, tried under RECONNECT_POLICY; a clear error when none.

        `started`: when the batch's first fault happened (its whole redo shares one time budget).
        """
        policy = RECONNECT_POLICY
        if started is None:
            started = policy.clock.monotonic()
        for attempt in range(1, policy.max_attempts + 1):
            if attempt > 1:
                delay = policy.backoff_delay(attempt - 1)
                if policy.clock.monotonic() - started + delay > policy.max_elapsed_seconds:
                    break
                policy.clock.sleep(delay)
            try:
                return self._new_load_connection()
            except psycopg2.Error as exc:
                if not is_transient(exc, None):
                    fault = exc
                    break
                fault = exc
        raise TargetLoadError(self._load_failed(fault, lines, held)) from None  # type: ignore[arg-type]

    def _finish_copy(self) -> None:
        copy, self._copy = self._copy, None
        if copy is None:
            return
        try:
            copy.close()
        except psycopg2.Error as exc:
            rollback(self.conn)
            if isinstance(exc, psycopg2.OperationalError):  # connection lost, shutdown, cancel: not the data
                raise TargetLoadError(self._load_failed(exc, self._lines)) from None
            raise TargetLoadError(self._describe_copy_error(exc)) from None

    def _describe_copy_error(self, exc: psycopg2.Error, lines: array[int] | None = None) -> str:
        diag = exc.diag
        primary = QUOTED.sub('"…"', diag.message_primary or str(exc).splitlines()[0])
        where = ""
        match = _COPY_CONTEXT.search(diag.context or "")
        lines = self._lines if lines is None else lines
        if match:
            n = int(match.group(1))
            if 0 < n <= len(lines):
                where = f", input line {lines[n - 1]}"
            if match.group(2):
                where += f", column {match.group(2)!r}"
        return f"stream {self.stream_name!r}{where}: PostgreSQL refused the batch: {primary} (nothing was committed)"

    # -- draining ------------------------------------------------------------------------------------------------

    def process_batch(self, context: dict[str, Any]) -> None:  # noqa: ARG002
        """Hand the batch to a commit thread (finish COPY, merge when upserting, commit) and go on reading.

        The next batch streams into a second connection meanwhile, so the server's merge overlaps Python's parsing.
        Batches still commit in order (the previous commit is awaited first: later batches win), and the target
        writes STATE only once every batch before it has committed.
        """
        self._flush()
        copy, self._copy = self._copy, None
        conn, rows, lines = self.conn, self._batch_rows, self._lines
        if self._streaming:
            self.target.pool.streaming_ended()  # the connection now belongs to the commit
            self._streaming = False
        self.conn = None
        try:
            self.wait_committed()
        except BaseException:
            if copy is not None:
                with contextlib.suppress(Exception):  # rolled back by `release`
                    copy.close()
            if conn is not None:
                self.target.pool.release(conn)
            raise
        if conn is None:  # the batch did not stream: send its data on a connection of the pool
            conn = self._checkout(lines)
        if self.mode == "overwrite":
            self._overwrite_pending = True
        if self._watermark is not None:
            rows_held, lines_held, superseded = self.take_held()
            old: _Held | None = (rows_held, lines_held, self._sent, superseded)
        else:
            old = None
        self._inflight = _Commit(self, conn, copy, rows, lines, old, self._sent)
        self._batch_bytes = 0
        self._lines = array("q")
        self._sent = []
        self._lines_flushed = 0
        self._reopened = 0
        self._no_stream = False

    @property
    def committing(self) -> bool:
        """A handed-off batch is not committed yet."""
        return self._inflight is not None and self._inflight.is_alive()

    def wait_committed(self) -> None:
        """Wait for the handed-off batch; raise its error (nothing of it was committed) if it failed."""
        job, self._inflight = self._inflight, None
        if job is None:
            return
        job.join()
        if job.error is not None:
            raise job.error

    def _commit_batch(  # noqa: PLR0917 - the batch's parts, as handed over
        self,
        job: _Commit,
        copy: CopyStream | None,
        rows: int,
        lines: array[int],
        held: _Held | None,
        sent: list[bytes],
    ) -> None:
        """Runs in the commit thread."""
        started = time.perf_counter()
        try:
            # A batch that did not stream sends the data it kept now (the same way as a redo).
            self._commit_once(job, job.conn, copy, held, sent if copy is None else None)
        except psycopg2.Error as exc:
            rollback(job.conn)
            if is_transient(exc, job.conn):
                self._redo_after_fault(job, exc, lines, held, sent)
            else:
                self._refused(job, exc, lines, held)
        self.committed(rows, started)

    def _commit_once(
        self,
        job: _Commit,
        conn: psycopg2.extensions.connection,
        copy: CopyStream | None,
        held: _Held | None,
        replay: list[bytes] | None,
    ) -> None:
        """Finish the batch's COPY (or send its kept data again: `replay`), merge when upserting, commit."""
        job.xid = None
        job.lines = job.first_lines
        job.in_stream = True
        if copy is not None:
            copy.close()
        with conn.cursor() as cur:
            if replay:
                with copying():
                    cur.copy_expert(self._stream_sql, ChunkReader(iter(replay)), size=1 << 20)
            job.in_stream = False
            cur.execute("SELECT txid_current()")
            job.xid = cur.fetchone()[0]
            if held is not None:
                if held[0]:
                    job.lines = held[1]  # a COPY error below is in these rows
                    with copying():
                        cur.copy_expert(self._copy_sql, ChunkReader(chunked(held[0])), size=1 << 20)
                    if held[3]:  # left: one held row per key (none of them streamed), merged without de-duplication
                        seq = quote(SEQ_COLUMN)
                        cur.execute(
                            f"DELETE FROM {self._stage} USING unnest(%s::bigint[]) AS s(seq) WHERE {seq} = s.seq",
                            (held[3],),
                        )
                    cur.execute(self._merge_sql(self._stage, self.table_target, unique=True))
            elif self.mode == "upsert":
                cur.execute(self._merge_sql(self._stage, self.table_target))
        conn.commit()

    def _refused(self, job: _Commit, exc: psycopg2.Error, lines: array[int], held: _Held | None) -> None:
        """The server refused the batch (not a transient fault): redo it the staging way or raise one clear error."""
        from_stream = job.in_stream  # the error is in the rows streamed during the read (not held or merged ones)
        if isinstance(exc, psycopg2.errors.UniqueViolation) and held is not None and from_stream:
            self._redo_staged(job.conn, job.lines, held)
        elif isinstance(exc, psycopg2.OperationalError):  # shutdown, cancel, lock or statement timeout
            raise TargetLoadError(self._load_failed(exc, lines, held)) from None
        elif isinstance(exc, psycopg2.DataError) or from_stream:
            raise TargetLoadError(self._describe_copy_error(exc, job.lines)) from None
        else:
            raise TargetLoadError(self._load_failed(exc, lines, held)) from None

    def _redo_after_fault(
        self, job: _Commit, fault: psycopg2.Error, lines: array[int], held: _Held | None, sent: list[bytes]
    ) -> None:
        """The batch's connection was lost (or the server shut down, or a deadlock): redo it on a new connection.

        If the commit itself may have gone through (the connection was lost while committing), the transaction's
        status on the server decides: a committed batch is not sent twice.
        """
        started = RECONNECT_POLICY.clock.monotonic()
        for attempt in range(1, REDO_ATTEMPTS + 1):
            self.logger.warning(
                "Stream %r: %s; reconnecting and redoing the batch (attempt %d)",
                self.stream_name,
                reason(fault),
                attempt + 1,
            )
            close_quietly(job.conn)
            job.conn = self._reconnect(fault, lines, held, started)
            try:
                if job.xid is not None and _transaction_committed(job.conn, job.xid):
                    self.logger.info("Stream %r: the batch had been committed before the fault", self.stream_name)
                    return
                self._commit_once(job, job.conn, None, held, sent)
            except psycopg2.Error as exc:
                rollback(job.conn)
                if not is_transient(exc, job.conn):
                    self._refused(job, exc, lines, held)
                    return
                fault = exc
            else:
                return
        raise TargetLoadError(self._load_failed(fault, lines, held)) from None

    def _load_failed(self, exc: BaseException, lines: array[int] | None = None, held: _Held | None = None) -> str:
        """One line for a batch that failed as a whole: stream, the input lines it held, the server's reason."""
        why = reason(exc)
        spans = [a for a in (lines, held[1] if held is not None else None) if a]
        where = ""
        if spans:
            first, last = min(min(a) for a in spans), max(max(a) for a in spans)
            where = f", input line {first}" if first == last else f", input lines {first}-{last}"
        return f"stream {self.stream_name!r}{where}: loading the batch failed: {why} (nothing was committed)"

    def _redo_staged(self, conn: psycopg2.extensions.connection, lines: array[int], held: _Held) -> None:
        """A key above the watermark was in the table after all (another writer): redo the batch the staging way.

        The rows streamed to the table go to the staging table without sequence (they are the older record of their
        key: a row of the same key that came later was held with its sequence), then the usual merge. From now on
        every row takes the staging way.
        """
        self._watermark_lost = True
        old_rows, old_lines, sent, _superseded = held  # the merge below keeps the newest per key itself
        self.logger.warning(
            "Stream %r: a new key was already in %s.%s (another writer?); redoing the batch through the staging table",
            self.stream_name,
            self.schema_name,
            self.table_name,
        )
        try:
            with copying(), conn.cursor() as cur:
                cur.copy_expert(self._stage_copy_unsequenced, ChunkReader(iter(sent)), size=1 << 20)
                lines = old_lines  # a COPY error from here on is in the held rows
                cur.copy_expert(self._copy_sql, ChunkReader(chunked(old_rows)), size=1 << 20)
                cur.execute(self._merge_sql(self._stage, self.table_target))
            conn.commit()
        except psycopg2.Error as exc:
            rollback(conn)
            if isinstance(exc, psycopg2.DataError):
                raise TargetLoadError(self._describe_copy_error(exc, lines)) from None
            raise TargetLoadError(self._load_failed(exc, lines, held)) from None

    @property
    def table_target(self) -> str:
        """Quoted `"schema"."table"`."""
        return connector.qualified(self.schema_name, self.table_name)

    def _merge_sql(self, source: str, target: str, *, replace: bool = False, unique: bool = False) -> str:
        """INSERT the staged rows, the newest per key (`unique`: the source has one per key already), upserting."""
        ts = quote(self.target.timestamp_column)
        cols = [quote(c) for c in self.copy_column_names]
        col_list = ", ".join(cols)
        keys = [quote(k) for k in self.key_columns]
        if not keys:
            return f"INSERT INTO {target} ({col_list}, {ts}) SELECT {col_list}, now() FROM {source}"
        key_list = ", ".join(keys)
        select = (
            f"SELECT {col_list}, now() FROM {source}"
            if unique
            else f"SELECT DISTINCT ON ({key_list}) {col_list}, now() FROM {source} "
            f"ORDER BY {key_list}, {quote(SEQ_COLUMN)} DESC NULLS LAST"
        )
        sql = f"INSERT INTO {target} ({col_list}, {ts}) {select}"
        if replace:
            return sql
        updates = [f"{c} = EXCLUDED.{c}" for c in cols if c not in keys] + [f"{ts} = EXCLUDED.{ts}"]
        if self._version_field:
            updates.append(f"{quote(DELETED_AT_COLUMN)} = NULL")  # sent again: the row is live again
        return f"{sql} ON CONFLICT ({key_list}) DO UPDATE SET {', '.join(updates)}"

    def finalize_overwrite(self) -> None:
        """Replace the table's rows with the staged ones in one transaction (readers see old or new, never none)."""
        self.wait_committed()
        if self.mode != "overwrite" or not self._overwrite_pending:
            return
        pool = self.target.pool
        conn = pool.acquire()
        try:
            conn = conn or pool.open()
            with conn.cursor() as cur:
                cur.execute(f"DELETE FROM {self.table_target}")
                cur.execute(self._merge_sql(self._stage, self.table_target, replace=True))
                cur.execute(f"DROP TABLE {self._stage}")
            conn.commit()
        except psycopg2.Error as exc:
            rollback(conn)
            msg = (
                f"stream {self.stream_name!r}: replacing the rows of {self.schema_name}.{self.table_name} failed: "
                f"{reason(exc)} (the table keeps its previous rows)"
            )
            raise TargetLoadError(msg) from None
        finally:
            pool.release(conn)
        self._overwrite_pending = False
        self.target.overwrite_started.discard(self.table_name)
        self.logger.info("Replaced the rows of %s.%s (overwrite)", self.schema_name, self.table_name)

    def retire_older_versions(self, version: int, *, hard: bool) -> int:
        """Soft-delete (or delete) the rows of earlier table versions, in one transaction; transient faults redone."""
        ver, deleted = (quote(c) for c in self.version_columns())
        older = f"({ver} < %s OR {ver} IS NULL)"
        if hard:
            sql = f"DELETE FROM {self.table_target} WHERE {older}"
        else:
            sql = f"UPDATE {self.table_target} SET {deleted} = now() WHERE {older} AND {deleted} IS NULL"
        pool = self.target.pool
        fault: psycopg2.Error | None = None
        for attempt in range(REDO_ATTEMPTS):
            if attempt:
                RECONNECT_POLICY.clock.sleep(RECONNECT_POLICY.backoff_delay(attempt))
            conn = pool.acquire()
            try:
                conn = conn or pool.open()
                with conn.cursor() as cur:
                    cur.execute(sql, (version,))
                    count = int(cur.rowcount)
                conn.commit()
            except psycopg2.Error as exc:
                rollback(conn)
                if not is_transient(exc, conn):
                    fault = exc
                    break
                close_quietly(conn)
                conn, fault = None, exc
            else:
                return count
            finally:
                pool.release(conn)
        msg = (
            f"stream {self.stream_name!r}: retiring the rows of table versions before {version} failed: "
            f"{reason(fault)} (nothing was changed)"
        )
        raise TargetLoadError(msg)

    def drop_overwrite_stage(self) -> None:
        """After a failed run (every sink closed): drop an overwrite run's staging table.

        Only if a connection is free: the next run drops and recreates it anyway.
        """
        if getattr(self, "mode", None) != "overwrite" or not getattr(self, "_stage", None):
            return
        pool = self.target.pool
        taken, conn = pool.try_acquire()
        if not taken:
            return
        try:
            conn = conn or pool.open()
            with conn.cursor() as cur:
                cur.execute(f"DROP TABLE IF EXISTS {self._stage}")
            conn.commit()
        except psycopg2.Error:
            rollback(conn)
        finally:
            pool.release(conn)
        self.target.overwrite_started.discard(self.table_name)

    def close(self) -> None:
        """Abandon anything uncommitted and close the connections (a handed-off batch is waited for first)."""
        if self._copy is not None:
            with contextlib.suppress(Exception):  # the transaction is rolled back below anyway
                self._copy.close()
            self._copy = None
        job, self._inflight = self._inflight, None
        if job is not None:
            job.join()  # it gives its connection back itself
        conn, self.conn = self.conn, None
        if self._streaming:
            self._streaming = False
            self.target.pool.release(conn, streaming=True)
        elif conn is not None:
            close_quietly(conn)
