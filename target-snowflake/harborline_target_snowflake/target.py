"""target-snowflake: Singer target for Snowflake on the shared warehouse loader and rules (one MERGE per batch)."""

from __future__ import annotations

import shutil
import tempfile
import threading
import typing as t
from pathlib import Path

from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError
from snowflake.connector import errors as sf_errors

from harborline_singer_shared.pseudonymize import PSEUDONYMIZATION_SETTINGS
from harborline_singer_shared.rules import NameAllocator
from harborline_singer_shared.warehouse.target import WAREHOUSE_SETTINGS, WarehouseTarget
from harborline_target_snowflake import connector
from harborline_target_snowflake.auth import SnowflakeSettingsError
from harborline_target_snowflake.load import STAGE_NAME
from harborline_target_snowflake.pool import DEFAULT_MAX_CONNECTIONS, ConnectionPool
from harborline_target_snowflake.sinks import SnowflakeSink


class ConnectionCheckError(ConnectionError):
    """The start-up connection check failed: one line naming the settings to check."""


class TargetSnowflake(WarehouseTarget):
    """Load Singer streams into Snowflake: staged files, one MERGE per batch, STATE only after commit."""

    name = "target-snowflake"
    #: The distribution, so `--about` and `--version` report its version (the SDK looks up `name` otherwise).
    package_name = "harborline-target-snowflake"
    clear_errors = (
        *WarehouseTarget.clear_errors,
        ConnectionCheckError,
        connector.SnowflakeConnectError,
        SnowflakeSettingsError,
    )
    default_sink_class = SnowflakeSink

    config_jsonschema = th.PropertiesList(
        th.Property(
            "account",
            th.StringType,
            description="Account identifier (`<orgname>-<account_name>`, or the account locator with its region).",
        ),
        th.Property("user", th.StringType, description="Login name of the user the target connects as."),
        th.Property(
            "password",
            th.StringType,
            secret=True,
            description="Password authentication (single-factor; prefer key-pair).",
        ),
        th.Property(
            "private_key",
            th.StringType,
            secret=True,
            description="Key-pair authentication (recommended: Snowflake is retiring single-factor passwords): the "
            "private key as PEM text or base64-encoded DER. Set exactly one of `private_key`, `private_key_path` "
            "and `password`.",
        ),
        th.Property(
            "private_key_path",
            th.StringType,
            description="Key-pair authentication: path of a PEM or DER private key file.",
        ),
        th.Property(
            "private_key_passphrase",
            th.StringType,
            secret=True,
            description="Passphrase of an encrypted private key (`private_key` or `private_key_path`).",
        ),
        th.Property("role", th.StringType, description="Role to use (default: the user's default role)."),
        th.Property(
            "warehouse", th.StringType, description="Virtual warehouse that runs the loads (default: the user's)."
        ),
        th.Property(
            "database",
            th.StringType,
            description="Database to load into. It must exist (the target never creates it); schemas inside it "
            "are created when missing.",
        ),
        th.Property(
            "host",
            th.StringType,
            description="Host to connect to (default `<account>.snowflakecomputing.com`): for proxies and "
            "PrivateLink (`<account>.privatelink.snowflakecomputing.com`). Passed to the connector as it is.",
        ),
        th.Property("port", th.IntegerType, description="Port to connect to (default 443)."),
        th.Property(
            "protocol",
            th.StringType,
            allowed_values=["https", "http"],
            description="Protocol to connect with (default `https`; `http` only for emulators and test proxies).",
        ),
        th.Property(
            "timestamp_type",
            th.StringType,
            default="TIMESTAMP_TZ",
            allowed_values=["TIMESTAMP_TZ", "TIMESTAMP_NTZ"],
            description="Column type of date-time properties and of the timestamp column: `TIMESTAMP_TZ` keeps the "
            "offset sent; `TIMESTAMP_NTZ` holds the instant converted to UTC (offsets honoured, then dropped).",
        ),
        th.Property(
            "number_scale",
            th.IntegerType,
            default=9,
            description="Decimal places of `number` columns, NUMBER(38, number_scale), unless the property has a "
            "power-of-ten `multipleOf` (0.01 gives 2). Values with more decimals are rounded by Snowflake; "
            "numbers are never stored as FLOAT.",
        ),
        th.Property(
            "stage",
            th.StringType,
            description="A named internal stage to PUT the batch files to (`MY_STAGE` or `DB.SCHEMA.MY_STAGE`; "
            "the role needs READ and WRITE on it). Default: the temporary staging table's own stage. Never the "
            "user stage `@~`.",
        ),
        th.Property(
            "query_tag",
            th.StringType,
            description="QUERY_TAG session parameter of every connection (set at login), to find the target's "
            "queries in the query history.",
        ),
        th.Property(
            "max_connections",
            th.IntegerType,
            default=DEFAULT_MAX_CONNECTIONS,
            description="The most connections the target opens to Snowflake at once, whatever the number of "
            "streams (at least 1). A table setup, a committing batch, an ACTIVATE_VERSION retirement and the "
            "overwrite swap each hold one while they run; streams share them.",
        ),
        *WAREHOUSE_SETTINGS,
        *PSEUDONYMIZATION_SETTINGS,
    ).to_dict()

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        size = self.config.get("max_connections")
        size = DEFAULT_MAX_CONNECTIONS if size is None else int(size)
        try:
            if size < 1:
                msg = f"`max_connections` must be at least 1 (it is {size})"
                raise SnowflakeSettingsError(msg)
            if not self.config.get("database"):
                msg = "`database` is not set: name the (existing) database to load into"
                raise SnowflakeSettingsError(msg)
            stage = self.config.get("stage")
            if stage is not None and (not STAGE_NAME.fullmatch(str(stage)) or str(stage).startswith("~")):
                msg = f"`stage` must name an internal stage (letters, digits, _ $ . and quotes), not {stage!r}"
                raise SnowflakeSettingsError(msg)
            #: Column types of date-times and numbers (validated here: a wrong value is one line at start-up).
            self.type_options = connector.TypeOptions.from_config(self.config)
            #: Every connection of the run comes from here (bounded by max_connections; the key decoded once).
            self.pool = ConnectionPool(self.config, size)
        except SnowflakeSettingsError as exc:
            raise ConfigValidationError(str(exc), errors=[str(exc)]) from None
        self.stage: str | None = str(stage) if stage else None
        self._schema_ready = False
        self._schema_lock = threading.Lock()
        self._workdir: Path | None = None

    @property
    def workdir(self) -> Path:
        """Local folder for the batch files before their PUT (each is deleted after its load; the folder at the end)."""
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="target-snowflake-"))
        return self._workdir

    def check_connection(self) -> None:
        """One connection before the first input line: wrong settings fail at once, in one line.

        A login that works can still land in no database (Snowflake logs in and leaves it unset when the database
        does not exist or the role may not use it): that is refused here too, naming the setting.
        """
        try:
            pooled = self.pool.acquire()
        except connector.SnowflakeConnectError as exc:
            raise ConnectionCheckError(str(exc)) from None
        broken = False
        try:
            cur = pooled.conn.cursor()
            cur.execute("SELECT CURRENT_DATABASE()")
            row = cur.fetchone()
            if not row or not row[0]:
                msg = (
                    f"database {self.config.get('database')!r} does not exist or the role may not use it: "
                    "check `database` and `role` (and the role's USAGE grant on the database)"
                )
                raise ConnectionCheckError(msg)
        except sf_errors.Error as exc:
            broken = True
            msg = f"the connection check failed: {connector.describe_error(exc)}; check `role` and `database`"
            raise ConnectionCheckError(msg) from None
        finally:
            self.pool.release(pooled, broken=broken)

    def close_connections(self) -> None:
        """Close the pool's connections and remove the local batch folder."""
        self.pool.close()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def ensure_schema(self, cur: t.Any) -> None:
        """Create the target schema when missing (once per run) and make it current on this connection."""
        with self._schema_lock:
            if not self._schema_ready:
                connector.ensure_schema(cur, self.schema_name)
                self._schema_ready = True
                return
        cur.execute(f"USE SCHEMA {connector.quote(self.schema_name)}")

    def table_name_for(self, cur: t.Any, stream_name: str) -> str:
        """Table for a stream: normalised, collision-free against the tables the schema already has."""
        if self._table_names is None:
            owners = connector.read_table_owners(cur, self.schema_name)
            self._table_names = NameAllocator(connector.MAX_IDENTIFIER_CHARS, existing=owners)
        # Streams from Meltano may be `schema-table`; the table name is the whole stream name, normalised.
        return self._table_names.assign([stream_name])[stream_name]


if __name__ == "__main__":
    TargetSnowflake.cli()
