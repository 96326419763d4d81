"""One batch into Snowflake: CSV rows to a gzip file, PUT, COPY into staging, ONE MERGE, COMMIT.

In full: file -> PUT -> COPY into a temporary staging table -> ONE MERGE (keyed) or INSERT ... SELECT -> COMMIT.

The shared loader builds the rows directly in the one CSV form Snowflake and the emulator read identically
(`SNOWFLAKE_ROWS`, the shared `QUOTED_CSV`): tab-separated, every text value enclosed in `"` (embedded `"` doubled;
tabs, newlines and backslashes raw inside the quotes), NULL an empty unenclosed field, the empty string `""`,
numbers and booleans unenclosed. Escaped unenclosed fields are avoided: the emulator cannot un-escape them, and the
two disagree on escapes. The batch file is only compressed here, never re-encoded.

Statements per batch do not depend on the column count: PUT, TRUNCATE (staging), COPY, BEGIN, MERGE or INSERT,
COMMIT. Only the target table is written inside the transaction; the staging table is a temporary table of this
session, created with the DDL before any data transaction (DDL commits an open transaction in Snowflake).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
import time
import uuid
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harborline_singer_shared.rules import ColumnPlan, Kind
from harborline_singer_shared.warehouse.rows import QUOTED_CSV, with_integer_limit
from harborline_target_snowflake.connector import (
    TypeOptions,
    qualified,
    quote,
    side_name,
    stage_type,
    stored_name,
)

#: The staging table's sequence column: input order, so the newest record of a key wins the de-duplication.
SEQ_COLUMN = "__hl_seq"
LOAD_METHODS = ("append-only", "upsert", "overwrite")

#: How the staged file is read. NULL_IF=() so that no string value is ever read as NULL: NULL is only the empty
#: unenclosed field. ESCAPE_UNENCLOSED_FIELD=NONE: nothing is un-escaped (an unenclosed field is empty, a number, a
#: boolean or plain ASCII text without a backslash or quote; `SNOWFLAKE_ROWS` encloses any other text).
FILE_FORMAT = (
    "TYPE=CSV FIELD_DELIMITER='\\t' FIELD_OPTIONALLY_ENCLOSED_BY='\"' ESCAPE_UNENCLOSED_FIELD=NONE "
    "EMPTY_FIELD_AS_NULL=TRUE NULL_IF=() COMPRESSION=GZIP"
)
STAGE_NAME = re.compile(r'[A-Za-z0-9_$."]+')
#: Where COPY stopped, in the error Snowflake raises with ON_ERROR=ABORT_STATEMENT: `Row 2, column "T"["COL":3]`
#: (`Row 1 starts at line 2, ...`, or `"T"[3]` without a name). Rows count the staged file's records from 1; the
#: `line` of the same message counts lines, which differ once a value holds a newline.
_COPY_ROW = re.compile(
    r'^\s*Row (\d+)(?: starts at line \d+)?, column "(?:[^"]|"")*"\[(?:"((?:[^"]|"")*)":)?(\d+)\]', re.MULTILINE
)
#: NUMBER(38,0), Snowflake's integer type, holds 38 digits: a longer integer is refused while the row is built.
MAX_INTEGER_DIGITS = 38
#: How the shared loader builds this target's rows: the CSV `FILE_FORMAT` reads, integers checked.
SNOWFLAKE_ROWS = with_integer_limit(QUOTED_CSV, MAX_INTEGER_DIGITS)
#: Compression level of the batch files: 1 keeps compressing (off the main thread) ahead of building rows.
GZIP_LEVEL = 1
#: Bytes of rows compressed per call: few calls (zlib releases the GIL for each), little extra memory.
COMPRESS_BYTES = 1024 * 1024


class BatchLoadError(RuntimeError):
    """A batch did not load as sent (e.g. COPY loaded fewer rows): rolled back, nothing of it is visible."""


@dataclass(frozen=True)
class CopyRejection:
    """Where Snowflake's COPY refused a staged value: the row of the batch file and the column, both from 1."""

    row: int
    column: str | None  # as stored (upper case); None when Snowflake gave only the position
    position: int


def copy_rejection(exc: BaseException) -> CopyRejection | None:
    """The row and column a COPY error names (None for any other error, e.g. a timeout or a privilege)."""
    text = getattr(exc, "raw_msg", None) or getattr(exc, "msg", None)
    match = _COPY_ROW.search(text) if isinstance(text, str) else None
    if match is None:
        return None
    column = match.group(2).replace('""', '"') if match.group(2) is not None else None
    return CopyRejection(int(match.group(1)), column, int(match.group(3)))


def write_batch_file(chunks: Iterable[bytes], path: Path) -> int:
    """Write the batch's rows (whole rows per chunk, as the shared loader built them) to a gzip file.

    Returns the bytes before compression. Runs in the commit thread: chunks are joined into pieces of about
    `COMPRESS_BYTES`, so zlib (which releases the GIL while it works) runs in few long calls beside the main thread,
    instead of taking the GIL back after each small chunk.
    """
    size = 0
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # 16+: gzip header and trailer
    with path.open("wb") as fh:
        piece: list[bytes] = []
        held = 0
        for chunk in chunks:
            piece.append(chunk)
            held += len(chunk)
            if held >= COMPRESS_BYTES:
                fh.write(compressor.compress(b"".join(piece)))
                size += held
                piece, held = [], 0
        if piece:
            fh.write(compressor.compress(b"".join(piece)))
            size += held
        fh.write(compressor.flush())
    return size


@dataclass
class LoadResult:
    """What one batch did: rows COPY'd into staging and the statements run (their count is constant).

    `already_committed`: a redo found the batch committed by the attempt whose COMMIT lost its answer.
    """

    rows: int
    statements: list[str] = field(default_factory=list)
    already_committed: bool = False


@dataclass
class BatchAttempt:
    """One batch across its redos: its load time, and whether a COMMIT of it was sent.

    A COMMIT whose answer is lost (the connection dropped, a timeout) may have gone through. A MERGE sent again is
    harmless; an append INSERT is not. So an append batch's rows carry one load time, taken when the batch is first
    sent and the same in every redo (`stamp`: Unix epoch milliseconds, held exactly by a column of millisecond
    precision or finer; the target creates it with 9), and a redo after a sent COMMIT first counts the rows with it.
    """

    stamp: int = field(default_factory=lambda: time.time_ns() // 1_000_000)
    commit_sent: bool = False


@dataclass
class TableLoad:
    """Everything a sink needs to load batches of one stream into one table.

    `columns` are the plan's source columns in row order; rows carry one more field, the sequence number, when
    `seq` is on (required for keyed upserts and overwrites: it decides which duplicate is newest).
    `stage`: a named internal stage (`stage` setting), else the staging table's own stage (never `@~`).
    """

    schema: str
    table: str
    columns: Sequence[ColumnPlan]
    key_columns: Sequence[str]
    timestamp_column: str
    options: TypeOptions
    mode: str = "upsert"
    seq: bool = True
    stage: str | None = None
    workdir: Path | None = None
    #: A versioned table's deleted-at column (ACTIVATE_VERSION): a row sent again is live again (set to NULL).
    deleted_at_column: str | None = None
    _own_workdir: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        if self.mode not in LOAD_METHODS:
            msg = f"`load_method` must be one of {', '.join(LOAD_METHODS)}, not {self.mode!r}"
            raise ValueError(msg)
        if self.stage is not None and not STAGE_NAME.fullmatch(self.stage):
            msg = f"`stage` must name an internal stage (letters, digits, _ $ . and quotes), not {self.stage!r}"
            raise ValueError(msg)
        if self.keyed and not self.seq:
            msg = "keyed upserts and overwrites need the sequence field (seq=True) to keep the newest record"
            raise ValueError(msg)
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="target-snowflake-"))
            self._own_workdir = True

    # -- names -----------------------------------------------------------------------------------------------

    @property
    def keyed(self) -> bool:
        """Rows are merged by key (append-only never merges)."""
        return bool(self.key_columns) and self.mode != "append-only"

    @property
    def target(self) -> str:
        """`"SCHEMA"."TABLE"`."""
        return qualified(self.schema, self.table)

    @property
    def staging(self) -> str:
        """The temporary staging table's name.

        Unqualified: created in the current schema (the emulator refuses qualified temporary names).
        Upper-case: its stage `@%NAME` must resolve unquoted.
        """
        return side_name(self.table, "stage")

    @property
    def side_table(self) -> str:
        """The overwrite run's side table (a real table: it must outlive sessions until the final swap).

        A later SCHEMA in the same run evolves it like the target: `plan_ddl(plan, schema, load.side_table, ...)`.
        """
        return side_name(self.table, "overwrite")

    @property
    def side(self) -> str:
        """`"SCHEMA"."HL_OVERWRITE_..."`."""
        return qualified(self.schema, self.side_table)

    def column_at(self, rejection: CopyRejection) -> ColumnPlan | None:
        """The column a COPY rejection names (by name, else by position; None for the sequence column)."""
        names = [stored_name(c.name) for c in self.columns]
        if rejection.column is not None:
            return self.columns[names.index(rejection.column)] if rejection.column in names else None
        return self.columns[rejection.position - 1] if 1 <= rejection.position <= len(self.columns) else None

    def _location(self, batch: str) -> str:
        if self.stage:
            return f"@{self.stage}/harborline/{side_name(self.table, 'load')}/{batch}/"
        return f"@%{self.staging}/{batch}/"

    # -- DDL (before any data transaction) ----------------------------------------------------------------------

    def prepare_sql(self, *, start: bool = True) -> list[str]:
        """Create the staging table; for overwrite at the start of a run, a fresh side table.

        Run once per connection and SCHEMA, after the target's DDL. The side table is made `LIKE` the target, so
        one left by a failed run is replaced, and the same DDL plans apply to both.
        """
        cols = [f"{quote(c.name)} {stage_type(c, self.options)}" for c in self.columns]
        if self.seq:
            cols.append(f"{quote(SEQ_COLUMN)} NUMBER(38,0)")
        stmts = [f"CREATE OR REPLACE TEMPORARY TABLE {self.staging} ({', '.join(cols)})"]
        if self.mode == "overwrite" and start:
            stmts.append(f"CREATE OR REPLACE TABLE {self.side} LIKE {self.target}")
        return stmts

    def prepare(self, cur: Any, *, start: bool = True) -> None:
        """Run `prepare_sql`."""
        for stmt in self.prepare_sql(start=start):
            cur.execute(stmt)

    def drop_side_sql(self) -> str:
        """After a failed overwrite run: the side table is not needed (the next run replaces it anyway)."""
        return f"DROP TABLE IF EXISTS {self.side}"

    # -- the data statements ---------------------------------------------------------------------------------

    def _source_expr(self, col: ColumnPlan) -> str:
        name = quote(col.name)
        if col.type.kind is Kind.JSON:
            return f"PARSE_JSON({name}) AS {name}"
        if col.type.kind is Kind.TIMESTAMP and self.options.timestamp_type == "TIMESTAMP_NTZ":
            return f"CONVERT_TIMEZONE('UTC', {name})::TIMESTAMP_NTZ AS {name}"
        return name

    def now_sql(self) -> str:
        """The current time as the table's timestamp type holds it (NTZ: UTC wall clock)."""
        if self.options.timestamp_type == "TIMESTAMP_NTZ":
            return "CONVERT_TIMEZONE('UTC', CURRENT_TIMESTAMP())::TIMESTAMP_NTZ"
        return "CURRENT_TIMESTAMP()"

    def stamp_sql(self, stamp: int) -> str:
        """A batch's load time (epoch milliseconds) in the table's timestamp type (NTZ: UTC wall clock).

        From a number, not text: text would be read with the account's TIMESTAMP_INPUT_FORMAT.
        """
        return f"TO_{self.options.timestamp_type}({int(stamp)}, 3)"

    def copy_sql(self, location: str) -> str:
        """COPY the staged file into the staging table; PURGE removes the file once loaded.

        ON_ERROR=ABORT_STATEMENT (the default, said explicitly: a named stage may carry another): a value Snowflake
        refuses fails the COPY with the row and column (`copy_rejection`), nothing loaded.
        """
        cols = [quote(c.name) for c in self.columns] + ([quote(SEQ_COLUMN)] if self.seq else [])
        return (
            f"COPY INTO {self.staging} ({', '.join(cols)}) FROM {location} "
            f"FILE_FORMAT=({FILE_FORMAT}) ON_ERROR=ABORT_STATEMENT PURGE=TRUE FORCE=TRUE"
        )

    @property
    def written(self) -> str:
        """The table a batch is written to: the target, or the overwrite run's side table."""
        return self.side if self.mode == "overwrite" else self.target

    def write_sql(self, into: str | None = None, stamp: int | None = None) -> str:
        """The ONE statement that writes the batch: MERGE (keyed; newest record per key) or INSERT ... SELECT.

        `stamp`: the append batch's load time (see `BatchAttempt`); else Snowflake's current time.
        """
        into = into or self.written
        cols = [quote(c.name) for c in self.columns]
        ts = quote(self.timestamp_column)
        source = ", ".join(self._source_expr(c) for c in self.columns)
        if not self.keyed:
            now = self.now_sql() if stamp is None else self.stamp_sql(stamp)
            return f"INSERT INTO {into} ({', '.join(cols)}, {ts}) SELECT {source}, {now} FROM {self.staging}"
        keys = [quote(k) for k in self.key_columns]
        newest = (
            f"SELECT {source} FROM {self.staging} "
            f"QUALIFY ROW_NUMBER() OVER (PARTITION BY {', '.join(keys)} ORDER BY {quote(SEQ_COLUMN)} DESC) = 1"
        )
        on = " AND ".join(f"t.{k} = s.{k}" for k in keys)
        updates = [f"t.{c} = s.{c}" for c in cols if c not in keys] + [f"t.{ts} = {self.now_sql()}"]
        if self.deleted_at_column:
            updates.append(f"t.{quote(self.deleted_at_column)} = NULL")
        values = ", ".join(f"s.{c}" for c in cols)
        return (
            f"MERGE INTO {into} t USING ({newest}) s ON {on} "
            f"WHEN MATCHED THEN UPDATE SET {', '.join(updates)} "
            f"WHEN NOT MATCHED THEN INSERT ({', '.join(cols)}, {ts}) VALUES ({values}, {self.now_sql()})"
        )

    def load(
        self, conn: Any, chunks: Iterable[bytes], rows: int | None = None, attempt: BatchAttempt | None = None
    ) -> LoadResult:
        """Load one batch as one transaction.

        On any error the transaction is rolled back and the error raised as it is (classify it with
        `connector.is_transient`: a transient one can be redone with the same chunks and the same `attempt`).

        Args:
            conn: an autocommit connection on which `prepare` ran (the staging table is session-local).
            chunks: rows in `SNOWFLAKE_ROWS` form (whole rows per chunk).
            rows: how many rows the chunks hold; when given, COPY must load exactly that many.
            attempt: the batch across its redos. With it, an append batch's rows carry its load time, and a redo
                after a COMMIT whose answer was lost first counts the rows with that time (never appends twice).
        """
        batch = uuid.uuid4().hex
        assert self.workdir is not None  # noqa: S101 - set in __post_init__
        path = self.workdir / f"batch_{batch}.csv.gz"
        result = LoadResult(rows=0)
        cur = conn.cursor()
        stamped = None if self.keyed else attempt  # a MERGE sent twice is harmless: only appends are stamped

        def run(sql: str) -> Any:
            result.statements.append(sql)
            return cur.execute(sql)

        try:
            if stamped is not None and stamped.commit_sent and rows:
                ts = quote(self.timestamp_column)
                run(f"SELECT COUNT(*) FROM {self.written} WHERE {ts} = {self.stamp_sql(stamped.stamp)}")
                if int(cur.fetchone()[0]) == rows:  # a transaction is whole: all of the batch's rows, or none
                    result.rows, result.already_committed = rows, True
                    return result
            write_batch_file(chunks, path)
            location = self._location(batch)
            run(f"PUT '{path.as_uri()}' {location} AUTO_COMPRESS=FALSE SOURCE_COMPRESSION=GZIP OVERWRITE=TRUE")
            run(f"TRUNCATE TABLE {self.staging}")
            run(self.copy_sql(location))
            names = [d[0].lower() for d in cur.description or []]
            loaded = sum(int(dict(zip(names, r, strict=False)).get("rows_loaded") or 0) for r in cur.fetchall())
            result.rows = loaded
            if rows is not None and loaded != rows:
                msg = f"COPY loaded {loaded} of the batch's {rows} rows into the staging table"
                raise BatchLoadError(msg)
            run("BEGIN")
            run(self.write_sql(stamp=stamped.stamp if stamped is not None else None))
            if attempt is not None:
                attempt.commit_sent = True
            run("COMMIT")
        except BaseException:
            with contextlib.suppress(Exception):  # the connection may be gone; the error that matters is re-raised
                cur.execute("ROLLBACK")
            raise
        finally:
            path.unlink(missing_ok=True)
            cur.close()
        return result

    def finalize_overwrite(self, conn: Any) -> list[str]:
        """Replace the table's rows with the side table's in ONE transaction, then drop the side table.

        Readers see the old rows or the new ones, never none; a failure leaves the previous rows untouched.
        Rows are replaced (DELETE + INSERT), not the table swapped, so grants and comments on it stay.
        """
        cols = ", ".join([*(quote(c.name) for c in self.columns), quote(self.timestamp_column)])
        stmts = [
            "BEGIN",
            f"DELETE FROM {self.target}",
            f"INSERT INTO {self.target} ({cols}) SELECT {cols} FROM {self.side}",
            "COMMIT",
        ]
        cur = conn.cursor()
        try:
            for stmt in stmts:
                cur.execute(stmt)
        except BaseException:
            with contextlib.suppress(Exception):  # the connection may be gone; the error that matters is re-raised
                cur.execute("ROLLBACK")
            raise
        # The rows are replaced: a side table that cannot be dropped now is replaced by the next run anyway.
        with contextlib.suppress(Exception):
            cur.execute(f"DROP TABLE IF EXISTS {self.side}")
        cur.close()
        return [*stmts, f"DROP TABLE IF EXISTS {self.side}"]

    def close(self) -> None:
        """Remove the local working directory (staged files are purged by COPY)."""
        if self._own_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
