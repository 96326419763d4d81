"""target-postgres: Singer target for PostgreSQL, loading by COPY with the shared warehouse loader and rules."""

from __future__ import annotations

import hashlib
import typing as t

import psycopg2
import psycopg2.errors
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError

from harborline_singer_shared.pseudonymize import PSEUDONYMIZATION_SETTINGS
from harborline_singer_shared.rules import NameAllocator
from harborline_singer_shared.warehouse.target import WAREHOUSE_SETTINGS, WarehouseTarget
from harborline_target_postgres import connector
from harborline_target_postgres.pool import DEFAULT_MAX_CONNECTIONS, ConnectionPool
from harborline_target_postgres.sinks import PostgresSink


class TargetPostgres(WarehouseTarget):
    """Load Singer streams into PostgreSQL: COPY-speed, upserts, schema evolution, STATE only after commit."""

    name = "target-postgres"
    #: The distribution, so `--about` and `--version` report its version (the SDK looks up `name` otherwise).
    package_name = "harborline-target-postgres"
    clear_errors = (*WarehouseTarget.clear_errors, connector.ConnectionCheckError, connector.ConnectionSettingsError)
    default_sink_class = PostgresSink

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
        *WAREHOUSE_SETTINGS,
        *PSEUDONYMIZATION_SETTINGS,
    ).to_dict()

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
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

    def check_connection(self) -> None:
        """One connection before the first input line: wrong settings fail at once, in one line."""
        self.pool.check()

    def close_connections(self) -> None:
        """Close the pool's connections and remove the PEM files it wrote."""
        self.pool.close()

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


if __name__ == "__main__":
    TargetPostgres.cli()
