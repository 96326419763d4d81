"""target-postgres: Singer target for PostgreSQL, loading by COPY with the shared warehouse rules."""

from __future__ import annotations

import decimal
import hashlib
import logging
import os
import re
import sys
import time
import typing as t
from collections import Counter, defaultdict

import msgspec
import psycopg2
import psycopg2.errors
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError, MissingKeyPropertiesError, RecordsWithoutSchemaException
from singer_sdk.helpers.capabilities import PluginCapabilities, TargetCapabilities
from singer_sdk.mapper import SameRecordTransform
from singer_sdk.singerlib.encoding.base import GenericSingerReader
from singer_sdk.singerlib.exceptions import InvalidInputLine
from singer_sdk.target_base import Target

from harborline_singer_shared.plugin import HarborlinePluginMixin
from harborline_singer_shared.pseudonymize import PSEUDONYMIZATION_SETTINGS, Pseudonymizer
from harborline_singer_shared.rules import IncompatibleSchemaChangeError, NameAllocator
from harborline_singer_shared.rules.plan import MissingKeyColumnError
from harborline_target_postgres import connector
from harborline_target_postgres.pool import DEFAULT_MAX_CONNECTIONS, ConnectionPool
from harborline_target_postgres.sinks import PostgresSink, TargetLoadError
from harborline_target_postgres.state import StateEmitter

if t.TYPE_CHECKING:
    from singer_sdk.helpers.capabilities import CapabilitiesEnum

_decode = msgspec.json.Decoder(float_hook=decimal.Decimal).decode


class _Envelope(msgspec.Struct):
    """A Singer message's envelope; the record stays raw JSON until its stream's typed decoder reads it."""

    type: str
    stream: str | None = None
    record: msgspec.Raw = msgspec.Raw(b"null")


_decode_envelope = msgspec.json.Decoder(_Envelope).decode

#: Errors that are the input's or the warehouse's fault: reported as one line, exit code 1, no traceback.
CLEAR_ERRORS = (
    TargetLoadError,
    connector.ConnectionCheckError,
    connector.ConnectionSettingsError,
    IncompatibleSchemaChangeError,
    MissingKeyColumnError,
    MissingKeyPropertiesError,
    RecordsWithoutSchemaException,
    InvalidInputLine,
)


#: Characters that must not reach a log line raw: a stream or property name holding them could forge or hide lines.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _escape_control(text: str) -> str:
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


class ControlCharacterFilter(logging.Filter):
    """Escape control characters (repr-style: `\\n`, `\\x1b`) in every log line, its logger name included.

    Names come from the input (stream and property names are any JSON string); the SDK's own lines and the per-stream
    logger names use them raw. Costs nothing per record: it runs per log line.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place when it holds a control character; never drop it."""
        if _CONTROL.search(record.name):
            record.name = _escape_control(record.name)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string is the logging module's to report
            return True
        if _CONTROL.search(message):
            record.msg = _escape_control(message)
            record.args = None
        return True


def install_control_character_filter(logger: logging.Logger) -> None:
    """Attach the filter to every handler `logger`'s records reach (once)."""
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if not any(isinstance(f, ControlCharacterFilter) for f in handler.filters):
                handler.addFilter(ControlCharacterFilter())
        if not current.propagate:
            break
        current = current.parent


_STREAM_IN_LINE = re.compile(rb'"stream"\s*:\s*"((?:[^"\\]|\\.){1,200})"')


#: An error message that begins by naming its stream: `stream 'x': the rest` (or `stream "it's": ...`).
_STREAM_PREFIX = re.compile(r"""(stream (?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")): (.*)""", re.DOTALL)


def _stream_hint(raw: str | bytes) -> str:
    """`stream 'x', ` when a malformed line still shows its stream name (e.g. a truncated RECORD), else ''."""
    data = raw.encode("utf-8", "replace") if isinstance(raw, str) else bytes(raw)
    match = _STREAM_IN_LINE.search(data[:4096])
    if match is None:
        return ""
    try:
        name = msgspec.json.decode(b'"' + match.group(1) + b'"')
    except msgspec.DecodeError:
        return ""
    return f"stream {name!r}, "


def _at_line(line: int, message: str) -> str:
    """`stream 'x', input line N: ...`: the one order every error line uses (`input line N: ...` without a stream)."""
    match = _STREAM_PREFIX.match(message)
    if match is not None:
        return f"{match.group(1)}, input line {line}: {match.group(2)}"
    return f"input line {line}: {message}"


class LineReader(GenericSingerReader[t.Any]):
    """Singer reader that parses with msgspec (exact decimals) and knows the input line of every message."""

    def __init__(self) -> None:
        super().__init__()
        self.line_number = 0
        #: Called before the first line is read (the target checks its connection there).
        self.on_start: t.Callable[[], None] | None = None
        self.on_failure: t.Callable[[], None] | None = None
        #: (stream, raw record) -> True when handled; False sends the line through the generic dict path.
        self.on_raw_record: t.Callable[[str | None, msgspec.Raw], bool] | None = None
        #: The stream whose records came last, as (line, lines) -> first line it did not take (or None): the tight
        #: loop that takes a run of that stream's RECORD lines, one msgspec call and one row each.
        self.hot: t.Callable[[bytes, t.Iterator[bytes]], bytes | None] | None = None
        #: Records taken by `hot` (for the end-of-run summary).
        self.hot_records = 0

    @property
    def default_input(self) -> t.IO[t.Any]:
        """Standard input as bytes (decoding is msgspec's job), read in 1 MiB blocks: fewer refills per line."""
        try:
            return open(sys.stdin.fileno(), "rb", buffering=1 << 20, closefd=False)
        except (AttributeError, OSError, ValueError):  # a replaced sys.stdin without a file descriptor
            return sys.stdin.buffer

    def deserialize_json(self, line: t.Any) -> dict[str, t.Any]:
        """Parse one line; a malformed one is named by its number."""
        try:
            value = _decode(line)
        except msgspec.DecodeError as exc:
            msg = f"input line {self.line_number}: malformed JSON ({exc}); the open batch was not committed"
            raise InvalidInputLine(msg) from None
        if not isinstance(value, dict):
            msg = f"input line {self.line_number}: a Singer message must be a JSON object"
            raise InvalidInputLine(msg)
        return value

    def _started(self) -> None:
        if self.on_start is not None:
            self.on_start()

    def process_lines(
        self,
        file_input: t.IO[t.Any] | None,
        callbacks: dict[str, t.Callable[[dict[str, t.Any]], None]],
    ) -> t.Counter[str]:
        """The SDK's loop, made lean for RECORD messages, with the input line number in every error."""
        stats: dict[str, int] = defaultdict(int)
        on_record = callbacks["RECORD"]
        on_raw = self.on_raw_record
        records = 0
        self.hot_records = 0
        self._started()
        lines = iter(file_input or self.default_input)
        try:
            for raw in lines:
                self.line_number += 1
                if self.hot is not None:
                    raw = self.hot(raw, lines)  # noqa: PLW2901 - the line it handed back, if any
                    if raw is None:
                        continue
                if on_raw is not None:
                    # Fast path: decode only the envelope; a typed stream decodes its record straight into a struct.
                    try:
                        envelope: _Envelope | None = _decode_envelope(raw)
                    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
                        envelope = None  # the generic path below says precisely what is wrong
                    if envelope is not None and envelope.type == "RECORD" and on_raw(envelope.stream, envelope.record):
                        records += 1
                        continue
                try:
                    message = _decode(raw)
                except (msgspec.DecodeError, UnicodeDecodeError) as exc:
                    if not raw.strip():
                        continue
                    msg = (
                        f"{_stream_hint(raw)}input line {self.line_number}: malformed JSON ({exc}); "
                        "the open batch was not committed"
                    )
                    raise InvalidInputLine(msg) from None
                if message.__class__ is not dict:
                    msg = f"input line {self.line_number}: a Singer message must be a JSON object"
                    raise InvalidInputLine(msg)
                kind = message.get("type")
                if kind == "RECORD":
                    on_record(message)
                    records += 1
                    continue
                callback = callbacks.get(kind) if isinstance(kind, str) else None
                if callback is None:
                    msg = f"input line {self.line_number}: unknown or missing message type {kind!r}"
                    raise InvalidInputLine(msg)
                callback(message)
                stats[str(kind)] += 1
        except BaseException as exc:
            if (
                isinstance(exc, CLEAR_ERRORS)
                and exc.args
                and isinstance(exc.args[0], str)
                and "input line" not in exc.args[0]
            ):
                exc.args = (_at_line(self.line_number, exc.args[0]), *exc.args[1:])
            if self.on_failure is not None:
                self.on_failure()
            raise
        stats["RECORD"] += records + self.hot_records
        return Counter(**stats)


class TargetPostgres(HarborlinePluginMixin, Target):
    """Load Singer streams into PostgreSQL: COPY-speed, upserts, schema evolution, STATE only after commit."""

    name = "target-postgres"
    #: The distribution, so `--about` and `--version` report its version (the SDK looks up `name` otherwise).
    package_name = "harborline-target-postgres"
    clear_errors = (*HarborlinePluginMixin.clear_errors, *CLEAR_ERRORS)
    default_sink_class = PostgresSink
    message_reader_class = LineReader
    capabilities: t.ClassVar[list[CapabilitiesEnum]] = [
        PluginCapabilities.ABOUT,
        PluginCapabilities.STREAM_MAPS,
        PluginCapabilities.STRUCTURED_LOGGING,
        TargetCapabilities.VALIDATE_RECORDS,
    ]

    config_jsonschema = th.PropertiesList(
        th.Property(
            "host",
            th.StringType,
            description="PostgreSQL host name or address, or a Unix-socket directory (a path starting with /). "
            "Required unless sqlalchemy_url is set: without it the target stops at start-up, naming the setting "
            "(it never falls back to a local socket on its own).",
        ),
        th.Property("port", th.IntegerType, default=5432, description="PostgreSQL port."),
        th.Property("user", th.StringType, description="Database user."),
        th.Property("password", th.StringType, secret=True, description="Database password."),
        th.Property("database", th.StringType, description="Database name."),
        th.Property(
            "sqlalchemy_url",
            th.StringType,
            secret=True,
            description="A `postgresql://user:password@host:port/db` URL; when set it wins over host/port/user/"
            "password/database. Its query parameters (`sslmode`, `sslrootcert`, `connect_timeout`, "
            "`application_name`, ...) go to libpq as they are; the password may hold `/ # ? @` unencoded.",
        ),
        th.Property(
            "default_target_schema",
            th.StringType,
            description="Schema the tables go into. When unset: the MELTANO_EXTRACTOR_NAMESPACE environment "
            "variable (Meltano sets it to the tap's namespace), else a configuration error.",
        ),
        th.Property(
            "load_method",
            th.StringType,
            default="upsert",
            allowed_values=["upsert", "append-only", "overwrite"],
            description="`upsert` (default): streams with key_properties are merged on the key, the newest record "
            "wins; streams without keys are appended. `append-only`: every record is a new row. `overwrite`: the "
            "table's rows are replaced, atomically, by the run's rows when the run ends (never dropped first).",
        ),
        th.Property(
            "timestamp_column",
            th.StringType,
            default="__loaded_at",
            description="Name of the column every row gets with the time its batch was committed.",
        ),
        th.Property(
            "batch_size_rows", th.IntegerType, default=100_000, description="Rows per batch (per stream) at most."
        ),
        th.Property(
            "batch_size_bytes",
            th.IntegerType,
            default=64 * 1024 * 1024,
            description="Bytes of COPY data per batch (per stream) at most; bounds memory and transaction size. A "
            "single larger record still loads, as a batch of its own.",
        ),
        th.Property(
            "validate_records",
            th.BooleanType,
            default=True,
            description="Check each value against its property's JSON type (and key/required properties) while "
            "building the row; a mismatch stops the run naming stream, input line and property. When false, "
            "values go to PostgreSQL as they are and it rejects what it cannot parse.",
        ),
        th.Property(
            "flattening_max_depth",
            th.IntegerType,
            description="Flatten nested objects into `parent__child` columns up to this depth (default: all "
            "levels); deeper objects are stored as jsonb.",
        ),
        th.Property(
            "ssl_enable", th.BooleanType, default=False, description="Use TLS (ssl_mode defaults to verify-full)."
        ),
        th.Property(
            "ssl_mode",
            th.StringType,
            allowed_values=["disable", "allow", "prefer", "require", "verify-ca", "verify-full"],
            description="libpq sslmode.",
        ),
        th.Property(
            "ssl_certificate_authority",
            th.StringType,
            description="CA certificate: a file path, or the PEM text itself.",
        ),
        th.Property(
            "ssl_client_certificate", th.StringType, description="Client certificate: a file path, or the PEM text."
        ),
        th.Property(
            "ssl_client_private_key",
            th.StringType,
            secret=True,
            description="Client private key: a file path, or the PEM text.",
        ),
        th.Property(
            "max_connections",
            th.IntegerType,
            default=DEFAULT_MAX_CONNECTIONS,
            description="The most connections the target opens to PostgreSQL at once, whatever the number of "
            "streams (at least 1). Streams share them: a batch being committed holds one, and up to "
            "max_connections - 1 open batches stream their COPY while the input is read; the others send their "
            "data when their batch is handed off.",
        ),
        th.Property(
            "add_record_metadata",
            th.BooleanType,
            default=False,
            description="Add the Singer `_sdc_*` metadata columns (off: every row already has the timestamp column).",
        ),
        *PSEUDONYMIZATION_SETTINGS,
    ).to_dict()

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        install_control_character_filter(self.logger)
        try:
            self.pseudonymizer = Pseudonymizer.from_config(self.config)
        except ConfigValidationError as exc:
            # The SDK's CLI prints only `errors`: without them the reason would hide behind "Config validation failed".
            raise ConfigValidationError(str(exc), errors=exc.errors or [str(exc)]) from None
        schema = self.config.get("default_target_schema") or os.environ.get("MELTANO_EXTRACTOR_NAMESPACE")
        if not schema:
            msg = "default_target_schema is not set (nor MELTANO_EXTRACTOR_NAMESPACE): say which schema to load into"
            raise ConfigValidationError(msg, errors=[msg])
        self.schema_name: str = schema
        size = self.config.get("max_connections")
        size = DEFAULT_MAX_CONNECTIONS if size is None else int(size)
        if size < 1:
            msg = f"max_connections must be at least 1 (it is {size})"
            raise ConfigValidationError(msg, errors=[msg])
        try:
            #: Every connection of the run comes from here (bounded by max_connections; PEM files written once).
            self.pool = ConnectionPool(self.config, size)
        except connector.ConnectionSettingsError as exc:
            raise ConfigValidationError(str(exc), errors=[str(exc)]) from None
        self.timestamp_column: str = self.config.get("timestamp_column") or "__loaded_at"
        self.batch_size_bytes: int = int(self.config.get("batch_size_bytes") or 64 * 1024 * 1024)
        self.validate_records: bool = bool(self.config.get("validate_records", True))
        depth = self.config.get("flattening_max_depth")
        self.flattening_max_depth: int | None = int(depth) if depth is not None else None
        self.load_method: str = self.config.get("load_method") or "upsert"
        self.overwrite_started: set[str] = set()
        self._table_names: NameAllocator | None = None
        self._fast: dict[str, t.Callable[[dict[str, t.Any], dict[str, t.Any]], bool]] = {}
        self._records_since_age_check = 0
        #: Writes STATE once the commits it waits for are done (from the commit thread that finishes last).
        self.state_emitter = StateEmitter(super()._write_state_message)
        self._sdc_received_at: str | None = None
        # On any failure while reading, abandon every open batch (rolled back, connections closed) before the error
        # propagates: an in-process caller would otherwise keep transactions, possibly mid-COPY, holding locks.
        self.message_reader.on_failure = self.abandon_sinks  # type: ignore[attr-defined]
        # The connection is checked before the first line is read: wrong settings fail at once, in one line.
        self.message_reader.on_start = self.pool.check  # type: ignore[attr-defined]
        self.message_reader.on_raw_record = self._process_raw_record  # type: ignore[attr-defined]
        self._typed: dict[str, PostgresSink] = {}
        self._last_typed_stream: str | None = None

    # -- names and modes -----------------------------------------------------------------------------------------

    def table_name_for(self, cur: t.Any, stream_name: str) -> str:
        """Table for a stream: normalised, collision-free against the tables the schema already has."""
        if self._table_names is None:
            owners = connector.read_table_owners(cur, self.schema_name)
            self._table_names = NameAllocator(connector.MAX_IDENTIFIER_BYTES, existing=owners)
        # Streams from Meltano may be `schema-table`; the table name is the whole stream name, normalised.
        return self._table_names.assign([stream_name])[stream_name]

    def overwrite_stage_name(self, table: str) -> str:
        """Name of the staging table an overwrite run fills (hashed: never collides with a stream's table)."""
        return "_hl_overwrite_" + hashlib.sha256(table.encode()).hexdigest()[:16]

    def load_method_for(self, sink: PostgresSink) -> str:
        """Upsert needs a key; without one a stream is appended."""
        method = self.load_method
        if method == "upsert" and not sink.key_columns:
            return "append-only"
        return str(method)

    # -- message handling ----------------------------------------------------------------------------------------

    def _process_schema_message(self, message_dict: dict[str, t.Any]) -> None:
        """A changed SCHEMA for a stream we are loading: commit what came before, then evolve the table."""
        self._assert_line_requires(message_dict, requires={"stream", "schema"})
        name = message_dict["stream"]
        if not isinstance(message_dict["schema"], dict) or "properties" not in message_dict["schema"]:
            msg = f"stream {name!r}: SCHEMA message without 'properties' (the schema must describe a record object)"
            raise InvalidInputLine(msg)
        maps = self.mapper.stream_maps.get(name)
        if maps and (
            maps[0].raw_schema != message_dict["schema"]
            or maps[0].raw_key_properties != message_dict.get("key_properties")
        ):
            self.drain_all()
            for stream_map in maps:
                old = self._sinks_active.pop(stream_map.stream_alias, None)
                if isinstance(old, PostgresSink):
                    old.wait_committed()  # a failed batch must stop the run, not vanish
                    old.close()
        self._fast.pop(name, None)
        self._typed.pop(name, None)
        self.message_reader.hot = None  # type: ignore[attr-defined]  # rebuilt for the new sink by its next record
        super()._process_schema_message(message_dict)
        self._route(name)  # build the record path now, so the stream's first record takes the fast one

    def _route(self, stream: str) -> t.Callable[[dict[str, t.Any], dict[str, t.Any]], bool]:
        """Build, once per stream (and SCHEMA), the function a record of that stream goes through."""
        maps = self.mapper.stream_maps.get(stream)
        if not maps:
            msg = (
                f"stream {stream!r}: RECORD before its SCHEMA message. "
                "Check that the tap emits SCHEMA first (Singer spec)."
            )
            raise RecordsWithoutSchemaException(msg)
        reader = self.message_reader
        direct = len(maps) == 1 and isinstance(maps[0], SameRecordTransform) and maps[0].stream_alias == stream
        sink = self._sinks_active.get(stream)
        if direct and isinstance(sink, PostgresSink) and not sink.with_metadata:
            append = sink.append
            if sink.typed:
                self._typed[stream] = sink

            def route_direct(record: dict[str, t.Any], _message: dict[str, t.Any]) -> bool:
                return append(record, reader.line_number)  # type: ignore[attr-defined]

            self._fast[stream] = route_direct
            return route_direct

        def route_mapped(record: dict[str, t.Any], message: dict[str, t.Any]) -> bool:
            full = False
            for stream_map in maps:
                transformed = stream_map.transform(dict(record))
                if transformed is None:
                    continue
                mapped = self._sinks_active[stream_map.stream_alias]
                assert isinstance(mapped, PostgresSink)  # noqa: S101
                if mapped.with_metadata:
                    self._add_metadata(mapped, transformed, message)
                full = mapped.append(transformed, reader.line_number) or full  # type: ignore[attr-defined]
            return full

        self._fast[stream] = route_mapped
        return route_mapped

    def _process_raw_record(self, stream: str | None, raw: msgspec.Raw) -> bool:
        """A RECORD of a stream whose records decode straight into typed structs; its next lines take the tight loop."""
        sink = self._typed.get(stream)  # type: ignore[arg-type]
        if sink is None:
            return False
        reader = self.message_reader
        if sink.append_raw(raw, reader.line_number):  # type: ignore[attr-defined]
            self.drain_all()
        self._records_since_age_check += 1
        if self._records_since_age_check >= 1_000:
            self._records_since_age_check = 0
            self._reap_commits()
            self._handle_max_record_age()
        # Two records of one stream in a row: a run is likely, so its next lines take the tight loop. Streams that
        # alternate line by line stay on this path (the loop would hand back every line: a wasted decode each).
        reader.hot = self._hot_loop(sink) if stream == self._last_typed_stream else None  # type: ignore[attr-defined]
        self._last_typed_stream = stream
        return True

    def _hot_loop(self, sink: PostgresSink) -> t.Callable[[bytes, t.Iterator[bytes]], bytes | None]:
        """The reader's `hot` callback for one sink: its tight loop, then per-chunk bookkeeping (not per record)."""
        reader = self.message_reader

        def hot(raw: bytes, lines: t.Iterator[bytes]) -> bytes | None:
            leftover, reader.line_number, taken, full = sink.consume(raw, lines, reader.line_number)  # type: ignore[attr-defined]
            if taken:
                reader.hot_records += taken  # type: ignore[attr-defined]
                if full:
                    self.drain_all()
                self._reap_commits()
                self._handle_max_record_age()
            return leftover

        return hot

    def _process_record_message(self, message_dict: dict[str, t.Any]) -> None:
        """The hot path: one dict lookup and one generated row function per record."""
        stream = message_dict.get("stream")
        record = message_dict.get("record")
        route = self._fast.get(stream)  # type: ignore[arg-type]
        if route is None:
            if not isinstance(stream, str):
                msg = "RECORD message without a stream name"
                raise InvalidInputLine(msg)
            route = self._route(stream)
        if record.__class__ is not dict:
            msg = f"stream {stream!r}: RECORD message without a record object"
            raise InvalidInputLine(msg)
        if route(record, message_dict):
            self.drain_all()
        self._records_since_age_check += 1
        if self._records_since_age_check >= 1_000:
            self._records_since_age_check = 0
            self._reap_commits()
            self._handle_max_record_age()

    def _add_metadata(self, sink: PostgresSink, record: dict[str, t.Any], message: dict[str, t.Any]) -> None:
        if self._sdc_received_at is None:
            self._sdc_received_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        record["_sdc_extracted_at"] = message.get("time_extracted")
        record["_sdc_received_at"] = self._sdc_received_at
        record["_sdc_batched_at"] = self._sdc_received_at
        record["_sdc_sequence"] = time.time_ns() // 1000
        record["_sdc_table_version"] = message.get("version")
        record["_sdc_sync_started_at"] = sink.sync_started_at
        record.setdefault("_sdc_deleted_at", None)

    def _reap_commits(self) -> None:
        """Stop the run as soon as a background commit has failed (its STATE and every later one are never written)."""
        failure = self.state_emitter.failure
        if failure is not None:
            raise failure

    def _process_state_message(self, message_dict: dict[str, t.Any]) -> None:
        """Remember STATE; when no open batch holds records from before it, it goes out once their commits are done."""
        super()._process_state_message(message_dict)
        self._reap_commits()
        if self._latest_state and not any(
            s.current_size for s in self._sinks_active.values() if isinstance(s, PostgresSink)
        ):
            self._write_state_message(self._latest_state)

    def _write_state_message(self, state: dict[str, t.Any]) -> None:
        """Called (by the SDK's drain_all too) when every record before `state` is in a handed-off batch.

        STATE goes out only when those batches are committed (see `StateEmitter`), and only once per change.
        """
        self._reap_commits()
        if any(s.holds_state for s in self._sinks_active.values() if isinstance(s, PostgresSink)):
            return  # written by drain_all after the overwrite swap at the end of the run
        self.state_emitter.offer(state)

    def add_sink(  # type: ignore[misc]  # SDK-final; overridden only to drop its redundant error line
        self, stream_name: str, schema: dict[str, t.Any], key_properties: t.Sequence[str] | None = None
    ) -> PostgresSink:
        """The SDK's add_sink without its extra "Error initializing target sink" line: the error says it all.

        A sink whose setup fails (e.g. a refused type change) is rolled back and closed at once.
        """
        sink = PostgresSink(target=self, stream_name=stream_name, schema=schema, key_properties=key_properties)
        try:
            sink.setup()
        except BaseException:
            sink.close()
            raise
        self._sinks_active[stream_name] = sink
        return sink

    def abandon_sinks(self) -> None:
        """Roll back and close every sink; nothing uncommitted is kept (an overwrite run's staging is dropped)."""
        sinks = [s for s in [*self._sinks_to_clear, *self._sinks_active.values()] if isinstance(s, PostgresSink)]
        for sink in sinks:
            sink.abandon()
        for sink in sinks:
            sink.drop_overwrite_stage()
        self.pool.close()

    def process_endofpipe(self) -> None:
        """Commit everything, swap overwrite tables in, then emit the final STATE."""
        try:
            super().process_endofpipe()
        finally:
            self.pool.close()
        self._sdc_received_at = None

    def ensure_schema(self, conn: t.Any) -> None:
        """Create the target schema unless it exists, committed on its own.

        A run creating it at the same moment is no error (CREATE SCHEMA IF NOT EXISTS alone still fails on that race).
        """
        for _ in range(3):
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.schema_name,))
                    if cur.fetchone() is None:
                        cur.execute(f"CREATE SCHEMA IF NOT EXISTS {connector.quote(self.schema_name)}")
                conn.commit()
            except (psycopg2.errors.UniqueViolation, psycopg2.errors.DuplicateSchema):
                conn.rollback()  # created by another run meanwhile: it exists now (the next round sees it)
            else:
                return

    def _process_batch_message(self, message_dict: dict[str, t.Any]) -> None:
        """BATCH is refused with one clear error: nothing of its manifest is opened, and the run stops.

        The SDK's handling would not load its records (it hands them to `process_batch`, which commits the open batch
        instead), and a manifest may name any file the target can read.
        """
        stream = message_dict.get("stream")
        where = f"stream {stream!r}, " if isinstance(stream, str) else ""
        msg = (
            f"{where}input line {self.message_reader.line_number}: BATCH messages are not supported "  # type: ignore[attr-defined]
            "(their files were not read, nothing of them was loaded): have the tap send RECORD messages"
        )
        raise TargetLoadError(msg)

    def _process_activate_version_message(self, message_dict: dict[str, t.Any]) -> None:
        """ACTIVATE_VERSION is not supported: say so once per stream rather than fail."""
        self.logger.warning("Ignoring ACTIVATE_VERSION for stream %r (not supported)", message_dict.get("stream"))


if __name__ == "__main__":
    TargetPostgres.cli()
