"""Reading XC tables over a DB-API connection: one shared connection, reconnects, and the keyset-paged stream.

:class:`SqlSource` owns the tap's one connection. Every query goes through :meth:`SqlSource.run`, which tells a lost
connection (reconnect with the shared retry policy's backoff, at most ``max_reconnects`` times in a row) from any
other error (stop at once, one line naming the stream and table) and a refused login (stop at once, naming the
credential settings). :class:`XactlyTableStream` reads one table page by page after its last keyset position; a
page interrupted by a lost connection is simply asked for again after the last row emitted, so nothing is lost or
repeated.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import logging
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar
from zoneinfo import ZoneInfo

from singer_sdk.exceptions import FatalAPIError
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.streams import Stream

from harborline_singer_shared.output import AllSelectedFastPathMixin
from harborline_singer_shared.pseudonymize import PseudonymizedStreamMixin
from harborline_singer_shared.retry import SYSTEM_CLOCK, Clock, RetryPolicy
from harborline_tap_xactly.drivers import ColumnKind, DriverSetupError, SqlDriver
from harborline_tap_xactly.keyset import Keyset, page_query, quote
from harborline_tap_xactly.tables import MODIFIED_DATE, XCTable

if TYPE_CHECKING:
    from types import ModuleType

    from singer_sdk.helpers.types import Context, Record
    from singer_sdk.tap_base import Tap

__all__ = [
    "ConnectionLostError",
    "LoginRefusedError",
    "QueryFailedError",
    "SqlSource",
    "XactlyTableStream",
]

T = TypeVar("T")
DEFAULT_PAGE_SIZE = 1000
DEFAULT_MAX_RECONNECTS = 5
#: The state key holding the last (MODIFIED_DATE, key...) emitted, as the source gave them.
KEYSET_STATE = "keyset"
_REASON_LIMIT = 300
_STATEMENTS_KEPT = 1000


class LoginRefusedError(FatalAPIError):
    """The source refused the credentials; retrying cannot help."""


class ConnectionLostError(FatalAPIError):
    """The source could not be reached, or the connection kept dropping, more than ``max_reconnects`` times."""


class QueryFailedError(FatalAPIError):
    """A query failed for a reason other than a lost connection (SQL error, missing column, permission)."""


def reason(exc: BaseException) -> str:
    """A driver's error as one short line: its class and first line (drivers repeat context on later lines)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    text = text if len(text) <= _REASON_LIMIT else text[: _REASON_LIMIT - 3] + "..."
    return f"{type(exc).__name__}: {text}"


class SqlSource:
    """The tap's one connection to the XC tables, opened on first use and re-opened when it drops."""

    def __init__(
        self,
        driver: SqlDriver,
        config: dict[str, Any],
        logger: logging.Logger,
        *,
        clock: Clock = SYSTEM_CLOCK,
        max_reconnects: int = DEFAULT_MAX_RECONNECTS,
    ) -> None:
        self.driver = driver
        self.module: ModuleType = driver.load()
        self._config = config
        self._logger = logger
        self.clock = clock
        self.max_reconnects = max_reconnects
        self._connection: Any = None
        #: The last statements executed, for tests and debugging (never a bound value).
        self.statements: deque[str] = deque(maxlen=_STATEMENTS_KEPT)

    @property
    def paramstyle(self) -> str:
        """The driver's DB-API parameter style."""
        return str(getattr(self.module, "paramstyle", "qmark"))

    def bind(self, value: Any) -> Any:
        """A value as this driver binds it (JDBC through jaydebeapi takes date-times as text)."""
        if self.driver.name == "jdbc" and isinstance(value, (datetime.datetime, datetime.date)):
            return value.isoformat(sep=" ") if isinstance(value, datetime.datetime) else value.isoformat()
        return value

    def close(self) -> None:
        """Close the connection, ignoring a connection that is already gone."""
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except Exception:
                self._logger.debug("closing the old connection failed", exc_info=True)

    def _connect(self) -> Any:
        try:
            return self.driver.connect(self.module, self._config)
        except DriverSetupError:
            raise
        except Exception as exc:
            if self.driver.is_auth_error(exc):
                raise LoginRefusedError(
                    f"Xactly refused the login: check {self.driver.credential_settings} ({reason(exc)})"
                ) from None
            if "JVM" in type(exc).__name__ or "JVM" in str(exc)[:200]:
                raise ConnectionLostError(
                    f"sql_driver 'jdbc' needs a Java runtime: install one or set JAVA_HOME ({reason(exc)})"
                ) from None
            raise

    def run(self, action: Callable[[Any], T], *, stream: str, table: str) -> T:
        """Run ``action(connection)``; reconnect and run it again when the connection drops.

        ``action`` must be safe to repeat (a read of one page is). At most ``max_reconnects`` reconnects in a row.
        """
        failures = 0
        policy = RetryPolicy(max_attempts=self.max_reconnects + 1, clock=self.clock)
        while True:
            connecting = self._connection is None
            try:
                if connecting:
                    self._connection = self._connect()
                    connecting = False
                return action(self._connection)
            except (FatalAPIError, DriverSetupError):
                raise
            except Exception as exc:  # noqa: BLE001 - DB-API drivers share no base class; the driver classifies it
                lost = self.driver.is_lost_connection(self.module, exc, None if connecting else self._connection)
                if not lost:
                    if connecting:
                        raise ConnectionLostError(
                            f"cannot connect to Xactly: check {self.driver.location_setting} ({reason(exc)})"
                        ) from None
                    raise QueryFailedError(
                        f"stream '{stream}' (table {table}): the query failed: {reason(exc)}"
                    ) from None
                self.close()
                failures += 1
                if failures > self.max_reconnects:
                    what = "connecting failed" if connecting else "the connection dropped"
                    raise ConnectionLostError(
                        f"stream '{stream}' (table {table}): {what} {failures} times in a row, more than "
                        f"max_reconnects ({self.max_reconnects}); check {self.driver.location_setting} "
                        f"({reason(exc)})"
                    ) from None
                wait = policy.backoff_delay(failures)
                self._logger.warning(
                    "stream '%s' (table %s): %s (%s); reconnecting in %.2f s (%d/%d), resuming after the last row "
                    "emitted",
                    stream,
                    table,
                    "connecting failed" if connecting else "the connection dropped",
                    reason(exc),
                    wait,
                    failures,
                    self.max_reconnects,
                )
                self.clock.sleep(wait)

    def query(self, sql: str, params: Any, *, stream: str, table: str) -> tuple[list[tuple[Any, ...]], Any]:
        """All rows of one query and its ``cursor.description`` (a page is at most ``page_size`` rows)."""

        def fetch(connection: Any) -> tuple[list[tuple[Any, ...]], Any]:
            self.statements.append(sql)
            cursor = connection.cursor()
            try:
                if params:
                    cursor.execute(sql, params)
                else:
                    cursor.execute(sql)
                description = cursor.description
                rows = list(cursor.fetchall()) if description is not None else []
            finally:
                try:
                    cursor.close()
                except Exception:
                    self._logger.debug("closing a cursor failed", exc_info=True)
            return rows, description

        return self.run(fetch, stream=stream, table=table)


def _datetime_converter(zone: ZoneInfo | None) -> Callable[[Any], Any]:
    """A naive source date-time (in ``source_timezone``) as ISO 8601 in UTC with an explicit offset."""
    utc = datetime.UTC

    def convert(value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, str):  # jaydebeapi gives TIMESTAMP as text
            value = datetime.datetime.fromisoformat(value.strip())
        if not isinstance(value, datetime.datetime):
            return value.isoformat() if hasattr(value, "isoformat") else str(value)
        if value.tzinfo is not None:
            return value.astimezone(utc).isoformat()
        if zone is None:
            return value.isoformat() + "+00:00"
        return value.replace(tzinfo=zone).astimezone(utc).isoformat()

    return convert


def _integer(value: Any) -> Any:
    if value is None or type(value) is int:
        return value
    if isinstance(value, decimal.Decimal) and value == value.to_integral_value():
        return int(value)
    return value


def _iso(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    return value.isoformat()


def _binary(value: Any) -> Any:
    if value is None:
        return None
    return base64.b64encode(bytes(value)).decode("ascii")


def _text(value: Any) -> Any:
    if value is None or type(value) is str:
        return value
    return str(value)


def json_schema_for(kind: str) -> dict[str, Any]:
    """The JSON schema of a column kind (every column may be null: the source says nothing about that)."""
    if kind in {ColumnKind.DATETIME, ColumnKind.DATETIME_TZ}:
        return {"type": ["string", "null"], "format": "date-time"}
    if kind == ColumnKind.DATE:
        return {"type": ["string", "null"], "format": "date"}
    if kind == ColumnKind.BINARY:
        return {"type": ["string", "null"], "contentEncoding": "base64"}
    if kind in {ColumnKind.INTEGER, ColumnKind.NUMBER, ColumnKind.BOOLEAN}:
        return {"type": [kind, "null"]}
    return {"type": ["string", "null"]}


class XactlyTableStream(AllSelectedFastPathMixin, PseudonymizedStreamMixin, Stream):
    """One XC table, INCREMENTAL on MODIFIED_DATE, read in keyset pages; columns as the connection reports them."""

    replication_key = MODIFIED_DATE
    #: Records are built column by column with converters prepared per column, so the SDK has nothing to conform.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    def __init__(self, tap: Tap, table: XCTable, source: Callable[[], SqlSource]) -> None:
        self.xc_table = table
        self._source = source
        self._described: tuple[list[str], list[str]] | None = None
        self._unavailable: str | None = None
        self._pending: Keyset | None = None
        super().__init__(tap=tap, name=table.stream)
        self.primary_keys = list(table.key)
        self.STATE_MSG_FREQUENCY = self.page_size

    # -- settings -----------------------------------------------------------------------------------------------

    @property
    def page_size(self) -> int:
        """Rows per query (``page_size``)."""
        return int(self.config.get("page_size") or DEFAULT_PAGE_SIZE)

    @property
    def quoted(self) -> bool:
        """Whether identifiers are double-quoted (``quote_identifiers``)."""
        return bool(self.config.get("quote_identifiers", True))

    @property
    def source_zone(self) -> ZoneInfo | None:
        """The zone MODIFIED_DATE is written in (None for UTC: the fast path)."""
        name = str(self.config.get("source_timezone") or "UTC")
        return None if name.upper() in {"UTC", "ETC/UTC", "Z"} else ZoneInfo(name)

    @property
    def emit_activate_version_messages(self) -> bool:
        """Never: an incremental run emits only what changed, so a version switch would delete the rest."""
        return False

    @property
    def is_sorted(self) -> bool:
        """Rows come in (MODIFIED_DATE, key) order, so a STATE mid-table is a real position to resume from."""
        return True

    @property
    def check_sorted(self) -> bool:
        """Off: the keyset is the position; the UTC text the SDK compares can go back across a DST change."""
        return False

    # -- columns ------------------------------------------------------------------------------------------------

    def describe(self) -> tuple[list[str], list[str]]:
        """Column names and kinds from a zero-row query's ``cursor.description`` (cached)."""
        if self._described is None:
            source = self._source()
            sql = f"SELECT * FROM {quote(self.xc_table.table, quoted=self.quoted)} WHERE 1 = 0"
            _, description = source.query(sql, None, stream=self.name, table=self.xc_table.table)
            names = [str(column[0]) for column in description or []]
            kinds = [source.driver.column_kind(source.module, tuple(column)) for column in description or []]
            self._described = (names, kinds)
        return self._described

    @property
    def schema(self) -> dict[str, Any]:
        """Every column the table has (a tenant's extra columns too), typed from the driver's type objects."""
        cached = self.__dict__.get("_xactly_schema")
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        try:
            names, kinds = self.describe()
        except QueryFailedError as exc:
            # Another table may be readable: this stream fails only if it is selected (see get_records).
            self._unavailable = str(exc)
            self.logger.warning("%s; the stream is listed with its key columns only", exc)
            names, kinds = (
                [*self.primary_keys, MODIFIED_DATE],
                [ColumnKind.STRING] * len(self.primary_keys) + [ColumnKind.DATETIME],
            )
            names += [n for n in self._personal_fields() if n not in names]
            kinds += [ColumnKind.STRING] * (len(names) - len(kinds))
        missing = [c for c in [MODIFIED_DATE, *self.primary_keys] if c not in names]
        if missing and self._unavailable is None:
            self._unavailable = (
                f"stream '{self.name}' (table {self.xc_table.table}): the table has no column "
                f"{', '.join(missing)} (its replication key or key; set key_overrides for this stream)"
            )
        schema = {
            "type": "object",
            "properties": {name: json_schema_for(kind) for name, kind in zip(names, kinds, strict=True)},
        }
        self.__dict__["_xactly_schema"] = schema
        return schema

    def _personal_fields(self) -> list[str]:
        fields = getattr(self._tap, "personal_data_fields", None) or {}
        return list(fields.get(self.name, []))

    def _converters(self, names: list[str], kinds: list[str]) -> list[tuple[str, Callable[[Any], Any]]]:
        zone = self.source_zone
        by_kind: dict[str, Callable[[Any], Any]] = {
            ColumnKind.DATETIME: _datetime_converter(zone),
            ColumnKind.DATETIME_TZ: _datetime_converter(None),
            ColumnKind.DATE: _iso,
            ColumnKind.TIME: _iso,
            ColumnKind.INTEGER: _integer,
            ColumnKind.BINARY: _binary,
            ColumnKind.STRING: _text,
        }
        return [(name, by_kind[kind]) for name, kind in zip(names, kinds, strict=True) if kind in by_kind]

    # -- reading ------------------------------------------------------------------------------------------------

    def start_value(self) -> datetime.datetime | None:
        """``start_date`` as the source writes MODIFIED_DATE: naive, in ``source_timezone``."""
        start = self._tap.start_datetime  # type: ignore[attr-defined]
        if start is None:
            return None
        zone = self.source_zone
        local = start.astimezone(zone) if zone is not None else start.astimezone(datetime.UTC)
        return local.replace(tzinfo=None)  # type: ignore[no-any-return]

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """Every row after the stream's last position, page by page, in (MODIFIED_DATE, key) order."""
        self.schema  # noqa: B018 - describes the table (or finds it unavailable) before reading
        if self._unavailable is not None:
            raise QueryFailedError(self._unavailable)
        source = self._source()
        names, kinds = self.describe()
        converters = self._converters(names, kinds)
        date_index = names.index(MODIFIED_DATE)
        key_indexes = [names.index(k) for k in self.primary_keys]
        state = self.get_context_state(context)
        after = Keyset.from_state(state.get(KEYSET_STATE)) if self.replication_method == "INCREMENTAL" else None
        start = self.start_value()
        if after is not None:
            self.logger.info("stream '%s': resuming after %s", self.name, after.to_state())
        table = self.xc_table.table
        pages = rows_read = 0
        while True:
            query = page_query(
                table=table,
                columns=names,
                replication_key=MODIFIED_DATE,
                key=self.primary_keys,
                page_size=self.page_size,
                paramstyle=source.paramstyle,
                after=(
                    Keyset(source.bind(after.modified), tuple(source.bind(v) for v in after.key))
                    if after is not None
                    else None
                ),
                start=source.bind(start) if start is not None else None,
                quoted=self.quoted,
            )
            rows, _ = source.query(query.sql, query.params, stream=self.name, table=table)
            pages += 1
            for row in rows:
                record = dict(zip(names, row, strict=True))
                for name, convert in converters:
                    record[name] = convert(record[name])
                after = Keyset(row[date_index], tuple(row[i] for i in key_indexes))
                self._pending = after
                yield record
            rows_read += len(rows)
            if len(rows) < self.page_size:
                break
        self.logger.info("stream '%s': %d row(s) in %d page(s) from %s", self.name, rows_read, pages, table)

    # A private SDK method (singer-sdk 0.54.9), extended because it is where the SDK records a row in STATE right
    # after writing it: the keyset position must enter STATE at exactly that moment (no public hook is there).
    def _increment_stream_state(self, latest_record: Record, *, context: Context | None = None) -> None:
        super()._increment_stream_state(latest_record, context=context)
        if self._pending is not None and self.replication_method == "INCREMENTAL":
            self.get_context_state(context)[KEYSET_STATE] = self._pending.to_state()

    def post_process(self, row: Record, context: Context | None = None) -> Record | None:
        """Pseudonymize the configured fields; a stream with none configured skips the per-record walk."""
        wanted = self.__dict__.get("_xactly_pseudonymized")
        if wanted is None:
            pseudonymizer = self.pseudonymizer
            wanted = bool(pseudonymizer is not None and pseudonymizer.paths_for(self.name))
            self.__dict__["_xactly_pseudonymized"] = wanted
        return super().post_process(row, context) if wanted else row
