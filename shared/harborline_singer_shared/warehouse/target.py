"""`WarehouseTarget`: the Singer message handling every warehouse target shares.

It reads the input with the shared `LineReader`, routes each RECORD to its sink through a function built once per
stream (and SCHEMA), holds STATE until the batches before it are committed (`StateEmitter`), refuses BATCH, and
turns every input or warehouse problem into one line naming stream and input line. A dialect's target subclasses
it, adds its connection settings to `WAREHOUSE_SETTINGS`, and supplies `check_connection`, `close_connections` and
`table_name_for`.
"""

from __future__ import annotations

import abc
import os
import time
import typing as t

import msgspec
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError, RecordsWithoutSchemaException
from singer_sdk.helpers.capabilities import PluginCapabilities, TargetCapabilities
from singer_sdk.mapper import SameRecordTransform
from singer_sdk.singerlib.exceptions import InvalidInputLine
from singer_sdk.target_base import Target

from harborline_singer_shared.plugin import HarborlinePluginMixin
from harborline_singer_shared.pseudonymize import Pseudonymizer
from harborline_singer_shared.rules import NameAllocator
from harborline_singer_shared.warehouse.errors import TargetLoadError
from harborline_singer_shared.warehouse.logs import install_control_character_filter
from harborline_singer_shared.warehouse.reader import CLEAR_ERRORS, LineReader
from harborline_singer_shared.warehouse.sink import WarehouseSink
from harborline_singer_shared.warehouse.state import StateEmitter

if t.TYPE_CHECKING:
    from singer_sdk.helpers.capabilities import CapabilitiesEnum

#: The settings every warehouse target has (MeltanoLabs' names where the concept exists); a dialect's target puts
#: its connection settings before them and `PSEUDONYMIZATION_SETTINGS` after.
WAREHOUSE_SETTINGS: tuple[th.Property[t.Any], ...] = (
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
        "hard_delete",
        th.BooleanType,
        default=False,
        description="On ACTIVATE_VERSION, delete the rows of earlier table versions. Default: keep them, with "
        "`_sdc_deleted_at` set to the time they were retired (soft delete).",
    ),
    th.Property(
        "timestamp_column",
        th.StringType,
        default="__loaded_at",
        description="Name of the column every row gets with the time its batch was committed.",
    ),
    th.Property("batch_size_rows", th.IntegerType, default=100_000, description="Rows per batch (per stream) at most."),
    th.Property(
        "batch_size_bytes",
        th.IntegerType,
        default=64 * 1024 * 1024,
        description="Bytes of row data per batch (per stream) at most; bounds memory and transaction size. A "
        "single larger record still loads, as a batch of its own.",
    ),
    th.Property(
        "validate_records",
        th.BooleanType,
        default=True,
        description="Check each value against its property's JSON type (and key/required properties) while "
        "building the row; a mismatch stops the run naming stream, input line and property. When false, "
        "values go to the warehouse as they are and it rejects what it cannot parse.",
    ),
    th.Property(
        "flattening_max_depth",
        th.IntegerType,
        description="Flatten nested objects into `parent__child` columns up to this depth (default: all "
        "levels); deeper objects are stored as JSON.",
    ),
    th.Property(
        "add_record_metadata",
        th.BooleanType,
        default=False,
        description="Add the Singer `_sdc_*` metadata columns (off: every row already has the timestamp column).",
    ),
)


class WarehouseTarget(HarborlinePluginMixin, Target, metaclass=abc.ABCMeta):
    """Load Singer streams into a warehouse: the dialect-neutral message handling (see the module docstring)."""

    clear_errors = (*HarborlinePluginMixin.clear_errors, *CLEAR_ERRORS)
    default_sink_class: type[WarehouseSink]
    message_reader_class = LineReader
    capabilities: t.ClassVar[list[CapabilitiesEnum]] = [
        PluginCapabilities.ABOUT,
        PluginCapabilities.STREAM_MAPS,
        PluginCapabilities.STRUCTURED_LOGGING,
        TargetCapabilities.VALIDATE_RECORDS,
    ]

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
        self.timestamp_column: str = self.config.get("timestamp_column") or "__loaded_at"
        self.batch_size_bytes: int = int(self.config.get("batch_size_bytes") or 64 * 1024 * 1024)
        self.validate_records: bool = bool(self.config.get("validate_records", True))
        depth = self.config.get("flattening_max_depth")
        self.flattening_max_depth: int | None = int(depth) if depth is not None else None
        self.load_method: str = self.config.get("load_method") or "upsert"
        self.hard_delete: bool = bool(self.config.get("hard_delete", False))
        #: Sinks (stream aliases) whose rows carry their table version, and input streams seen with a version.
        self.versioned_streams: set[str] = set()
        self._versioned_inputs: set[str] = set()
        self.overwrite_started: set[str] = set()
        self._table_names: NameAllocator | None = None
        self._fast: dict[str, t.Callable[[dict[str, t.Any], dict[str, t.Any]], bool]] = {}
        self._records_since_age_check = 0
        #: Writes STATE once the commits it waits for are done (from the commit thread that finishes last).
        self.state_emitter = StateEmitter(super()._write_state_message)
        self._sdc_received_at: str | None = None
        reader = self.message_reader
        assert isinstance(reader, LineReader)  # noqa: S101 - message_reader_class
        reader.clear_errors = self.clear_errors
        # On any failure while reading, abandon every open batch (rolled back, connections closed) before the error
        # propagates: an in-process caller would otherwise keep transactions, possibly mid-COPY, holding locks.
        reader.on_failure = self.abandon_sinks
        # The connection is checked before the first line is read: wrong settings fail at once, in one line.
        reader.on_start = self.check_connection
        reader.on_raw_record = self._process_raw_record
        self._typed: dict[str, WarehouseSink] = {}
        self._last_typed_stream: str | None = None

    # -- the dialect's part --------------------------------------------------------------------------------------

    @abc.abstractmethod
    def check_connection(self) -> None:
        """Connect once before the first input line is read; wrong settings raise one clear error."""

    @abc.abstractmethod
    def close_connections(self) -> None:
        """Close every connection of the run (after the last commit, or after a failure)."""

    # -- names and modes -----------------------------------------------------------------------------------------

    def load_method_for(self, sink: WarehouseSink) -> str:
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
                if isinstance(old, WarehouseSink):
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
        if direct and isinstance(sink, WarehouseSink) and not sink.with_metadata:
            append = sink.append
            if sink.typed:
                self._typed[stream] = sink

            def route_direct(record: dict[str, t.Any], message: dict[str, t.Any]) -> bool:
                return append(record, reader.line_number, message.get("version"))  # type: ignore[attr-defined]

            self._fast[stream] = route_direct
            return route_direct

        def route_mapped(record: dict[str, t.Any], message: dict[str, t.Any]) -> bool:
            full = False
            for stream_map in maps:
                transformed = stream_map.transform(dict(record))
                if transformed is None:
                    continue
                mapped = self._sinks_active[stream_map.stream_alias]
                assert isinstance(mapped, WarehouseSink)  # noqa: S101
                if mapped.with_metadata:
                    self._add_metadata(mapped, transformed, message)
                version = message.get("version")
                full = mapped.append(transformed, reader.line_number, version) or full  # type: ignore[attr-defined]
            return full

        self._fast[stream] = route_mapped
        return route_mapped

    def _process_raw_record(self, stream: str | None, raw: msgspec.Raw, version: int | None) -> bool:
        """A RECORD of a stream whose records decode straight into typed structs; its next lines take the tight loop."""
        sink = self._typed.get(stream)  # type: ignore[arg-type]
        if sink is None or (version is not None and stream not in self._versioned_inputs):
            return False
        reader = self.message_reader
        if sink.append_raw(raw, reader.line_number, version):  # type: ignore[attr-defined]
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

    def _hot_loop(self, sink: WarehouseSink) -> t.Callable[[bytes, t.Iterator[bytes]], bytes | None]:
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
        if "version" in message_dict and stream not in self._versioned_inputs:
            self._start_versioning(stream, message_dict["version"], "RECORD")  # type: ignore[arg-type]
            route = self._fast.get(stream) or self._route(stream)  # type: ignore[arg-type]
        if route(record, message_dict):
            self.drain_all()
        self._records_since_age_check += 1
        if self._records_since_age_check >= 1_000:
            self._records_since_age_check = 0
            self._reap_commits()
            self._handle_max_record_age()

    def _add_metadata(self, sink: WarehouseSink, record: dict[str, t.Any], message: dict[str, t.Any]) -> None:
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
            s.current_size for s in self._sinks_active.values() if isinstance(s, WarehouseSink)
        ):
            self._write_state_message(self._latest_state)

    def _write_state_message(self, state: dict[str, t.Any]) -> None:
        """Called (by the SDK's drain_all too) when every record before `state` is in a handed-off batch.

        STATE goes out only when those batches are committed (see `StateEmitter`), and only once per change.
        """
        self._reap_commits()
        if any(s.holds_state for s in self._sinks_active.values() if isinstance(s, WarehouseSink)):
            return  # written by drain_all after the overwrite swap at the end of the run
        self.state_emitter.offer(state)

    def add_sink(  # type: ignore[misc]  # SDK-final; overridden only to drop its redundant error line
        self, stream_name: str, schema: dict[str, t.Any], key_properties: t.Sequence[str] | None = None
    ) -> WarehouseSink:
        """The SDK's add_sink without its extra "Error initializing target sink" line: the error says it all.

        A sink whose setup fails (e.g. a refused type change) is rolled back and closed at once.
        """
        sink_class = self.default_sink_class
        sink = sink_class(target=self, stream_name=stream_name, schema=schema, key_properties=key_properties)
        try:
            sink.setup()
        except BaseException:
            sink.close()
            raise
        self._sinks_active[stream_name] = sink
        return sink

    def abandon_sinks(self) -> None:
        """Roll back and close every sink; nothing uncommitted is kept (an overwrite run's staging is dropped)."""
        sinks = [s for s in [*self._sinks_to_clear, *self._sinks_active.values()] if isinstance(s, WarehouseSink)]
        for sink in sinks:
            sink.abandon()
        for sink in sinks:
            sink.drop_overwrite_stage()
        self.close_connections()

    def process_endofpipe(self) -> None:
        """Commit everything, swap overwrite tables in, then emit the final STATE."""
        try:
            super().process_endofpipe()
        except BaseException:
            # A failed last commit or overwrite replace: the other sinks' work is rolled back and the overwrite side
            # tables dropped, as after a failure while reading (the target tables keep their previous rows).
            self.abandon_sinks()
            raise
        finally:
            self.close_connections()
        self._sdc_received_at = None

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

    def _start_versioning(self, stream: str, version: t.Any, kind: str) -> None:
        """A stream's first table version: its tables get the version columns, and its rows their version from now on.

        The open batches are committed first (their rows have no version), then each sink is set up again, which adds
        `_sdc_table_version` and `_sdc_deleted_at` to its table (kept by later runs).
        """
        if version is not None and type(version) is not int:
            msg = f"stream {stream!r}: {kind} 'version' must be an integer, not {type(version).__name__}"
            raise InvalidInputLine(msg)
        maps = self.mapper.stream_maps.get(stream)
        if not maps:
            return  # the record's route reports the missing SCHEMA
        if version is None:
            return
        self._versioned_inputs.add(stream)
        stale = [m for m in maps if not getattr(self._sinks_active.get(m.stream_alias), "versioned", True)]
        if not stale:
            return
        self.drain_all()
        for stream_map in stale:
            old = self._sinks_active.pop(stream_map.stream_alias)
            assert isinstance(old, WarehouseSink)  # noqa: S101
            old.wait_committed()
            old.close()
            self.versioned_streams.add(stream_map.stream_alias)
            self.add_sink(stream_map.stream_alias, stream_map.transformed_schema, stream_map.transformed_key_properties)
        self._fast.pop(stream, None)
        self._typed.pop(stream, None)
        self.message_reader.hot = None  # type: ignore[attr-defined]
        self._route(stream)

    def _process_activate_version_message(self, message_dict: dict[str, t.Any]) -> None:
        """Make `version` the stream's live table version: rows of earlier versions are retired (soft or hard).

        Rows sent before the message are committed first, so a full-table sync's rows are never retired by its own
        ACTIVATE_VERSION; with `load_method: overwrite` the end-of-run swap replaces the rows anyway.
        """
        self._assert_line_requires(message_dict, requires={"stream", "version"})
        stream, version = message_dict["stream"], message_dict["version"]
        if not isinstance(stream, str) or stream not in self.mapper.stream_maps:
            msg = f"stream {stream!r}: ACTIVATE_VERSION before its SCHEMA message"
            raise RecordsWithoutSchemaException(msg)
        if type(version) is not int:
            msg = f"stream {stream!r}: ACTIVATE_VERSION 'version' must be an integer, not {type(version).__name__}"
            raise InvalidInputLine(msg)
        self._reap_commits()
        self._start_versioning(stream, version, "ACTIVATE_VERSION")
        for stream_map in self.mapper.stream_maps[stream]:
            sink = self._sinks_active.get(stream_map.stream_alias)
            if not isinstance(sink, WarehouseSink):
                continue
            self.drain_one(sink)
            sink.wait_committed()
            if sink.mode == "overwrite":
                self.logger.info("Stream %r: version %d is live once the run's rows replace the table", stream, version)
                continue
            count = sink.retire_older_versions(version, hard=self.hard_delete)
            self.logger.info(
                "Stream %r: version %d is live; %d rows of earlier versions %s",
                sink.stream_name,
                version,
                count,
                "deleted" if self.hard_delete else "marked deleted (_sdc_deleted_at)",
            )
