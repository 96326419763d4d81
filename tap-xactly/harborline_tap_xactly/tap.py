"""The tap-xactly entry point: settings, start-up checks, and the streams a config enables."""

from __future__ import annotations

import contextlib
import datetime
from typing import TYPE_CHECKING, Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from singer_sdk import Tap
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.helpers.capabilities import PluginCapabilities, TapCapabilities

from harborline_singer_shared.dates import parse_datetime
from harborline_singer_shared.output import BufferedMsgSpecWriter
from harborline_singer_shared.plugin import HarborlinePluginMixin
from harborline_singer_shared.pseudonymize import pseudonymization_settings
from harborline_singer_shared.retry import SYSTEM_CLOCK, Clock
from harborline_tap_xactly.client import DEFAULT_MAX_RECONNECTS, DEFAULT_PAGE_SIZE, SqlSource
from harborline_tap_xactly.drivers import (
    DEFAULT_JDBC_DRIVER_CLASS,
    DEFAULT_JDBC_URL,
    NO_SQL,
    DriverSetupError,
    driver_for,
)
from harborline_tap_xactly.soap import DEFAULT_SOAP_OBJECTS, SoapSession, soap_streams, stream_name_of
from harborline_tap_xactly.streams import (
    PERSONAL_DATA_FIELDS,
    SOAP_PERSONAL_DATA_FIELDS,
    SQL_PERSONAL_DATA_FIELDS,
    table_streams,
)
from harborline_tap_xactly.tables import TABLES

if TYPE_CHECKING:
    from singer_sdk.helpers.capabilities import CapabilitiesEnum
    from singer_sdk.streams import Stream

_STREAMS = frozenset(t.stream for t in TABLES)


class TapXactly(HarborlinePluginMixin, Tap):
    """Singer tap for Xactly Connect: the XC tables over SQL and the Incent objects over SOAP."""

    name = "tap-xactly"
    #: The distribution, so `--about` and `--version` report its version (the SDK looks up `name` otherwise).
    package_name = "harborline-tap-xactly"
    #: Pseudonymized unless the config says otherwise (`pseudonymize: {}` opts out): private by default.
    personal_data_fields = PERSONAL_DATA_FIELDS
    message_writer_class = BufferedMsgSpecWriter
    capabilities: ClassVar[list[CapabilitiesEnum]] = [
        TapCapabilities.CATALOG,
        TapCapabilities.STATE,
        TapCapabilities.DISCOVER,
        PluginCapabilities.ABOUT,
        PluginCapabilities.STREAM_MAPS,
        PluginCapabilities.FLATTENING,
        PluginCapabilities.BATCH,
        PluginCapabilities.STRUCTURED_LOGGING,
    ]

    config_jsonschema: ClassVar[dict[str, Any]] = th.PropertiesList(
        th.Property(
            "sql_driver",
            th.StringType,
            default="jdbc",
            description=(
                "How the XC tables are read: jdbc (Xactly's JDBC driver, extra [jdbc], a jar and Java), odbc "
                "(Xactly's ODBC driver, extra [odbc]), postgresql (XC tables copied into PostgreSQL), or none "
                "(SOAP object streams only)."
            ),
        ),
        th.Property(
            "sql_dsn",
            th.StringType,
            secret=True,
            title="SQL DSN",
            description=(
                "odbc: the ODBC connection string; postgresql: a libpq DSN or URI. Secret, since it may hold a "
                "password."
            ),
        ),
        th.Property(
            "username",
            th.StringType,
            secret=True,
            description="Login given to the driver (or the SOAP login) as an argument, never written into a URL.",
        ),
        th.Property("password", th.StringType, secret=True, description="Password given to the driver as an argument."),
        th.Property(
            "client_id",
            th.StringType,
            secret=True,
            title="Client id",
            description="jdbc: the API Gateway clientId Xactly issued (added to the JDBC URL, never logged).",
        ),
        th.Property(
            "consumer",
            th.StringType,
            secret=True,
            description="jdbc: the API Gateway consumer Xactly issued (added to the JDBC URL, never logged).",
        ),
        th.Property(
            "jdbc_url",
            th.StringType,
            default=DEFAULT_JDBC_URL,
            title="JDBC URL",
            description="jdbc: the driver URL, without clientId/consumer (those come from their settings).",
        ),
        th.Property(
            "jdbc_jar_path",
            th.StringType,
            title="JDBC jar path",
            description="jdbc: path of Xactly's xjdbc-<version>-jar-with-dependencies.jar.",
        ),
        th.Property(
            "jdbc_driver_class",
            th.StringType,
            default=DEFAULT_JDBC_DRIVER_CLASS,
            title="JDBC driver class",
            description="jdbc: the driver's Java class.",
        ),
        th.Property(
            "start_date",
            th.DateTimeType,
            description="Read only rows modified at or after this moment (first run; later runs resume from STATE).",
        ),
        th.Property(
            "page_size",
            th.IntegerType(minimum=1),
            default=DEFAULT_PAGE_SIZE,
            description="Rows per query (the vendor's own cap per query is not documented).",
        ),
        th.Property(
            "source_timezone",
            th.StringType,
            default="UTC",
            description=(
                "IANA zone in which the source writes MODIFIED_DATE and the other date-times without a zone "
                "(not documented by the vendor); output date-times are converted to UTC."
            ),
        ),
        th.Property(
            "quote_identifiers",
            th.BooleanType,
            default=True,
            description="Double-quote table and column names in SQL, keeping their UPPERCASE.",
        ),
        th.Property(
            "key_overrides",
            th.ObjectType(additional_properties=th.ArrayType(th.StringType)),
            description='Key columns per stream, replacing the built-in ones: {"xc_planrules": ["PLAN_ID", "RULE_ID"]}',
        ),
        th.Property(
            "max_reconnects",
            th.IntegerType(minimum=0),
            default=DEFAULT_MAX_RECONNECTS,
            description=(
                "Reconnects in a row after a dropped connection (with backoff) before the sync fails; each resumes "
                "after the last row emitted."
            ),
        ),
        th.Property(
            "wsdl_url",
            th.StringType,
            title="WSDL URL",
            description="The tenant's Connect SOAP WSDL (Xactly.wsdl) by URL: turns on the SOAP object streams.",
        ),
        th.Property(
            "wsdl_path",
            th.StringType,
            title="WSDL path",
            description="The same WSDL from a file, instead of wsdl_url.",
        ),
        th.Property(
            "soap_objects",
            th.ArrayType(th.StringType),
            default=list(DEFAULT_SOAP_OBJECTS),
            title="SOAP objects",
            description="The Incent objects read over SOAP (stream soap_<name>, e.g. PersonWSO -> soap_person).",
        ),
        *pseudonymization_settings(PERSONAL_DATA_FIELDS),
    ).to_dict()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._sql_source: SqlSource | None = None
        self._soap_session: SoapSession | None = None
        #: Time source of reconnect backoff (tests replace it).
        self.clock: Clock = SYSTEM_CLOCK
        super().__init__(*args, **kwargs)

    # -- settings -----------------------------------------------------------------------------------------------

    @property
    def sql_enabled(self) -> bool:
        """Whether the XC table streams are on."""
        return str(self.config.get("sql_driver") or "jdbc") != NO_SQL

    @property
    def soap_enabled(self) -> bool:
        """Whether the SOAP object streams are on."""
        return bool(self.config.get("wsdl_url") or self.config.get("wsdl_path"))

    @property
    def start_datetime(self) -> datetime.datetime | None:
        """``start_date`` as an aware UTC date-time."""
        return parse_datetime(self.config.get("start_date"))

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """Check what JSON Schema cannot, naming the setting; then validate."""
        # The SDK keeps (and fills defaults into) the caller's own dict; this tap's defaults depend on the rest of
        # the config, so they must not leak into a dict the caller reuses for another tap.
        self._config = dict(self._config)
        self._default_privacy_for_enabled_streams()
        errors = self._setting_errors()
        if errors:
            if raise_errors:
                raise ConfigValidationError(errors[0], errors=errors)
            for error in errors:
                self.logger.warning("%s", error)
        return errors + super()._validate_config(raise_errors=raise_errors)

    def _default_privacy_for_enabled_streams(self) -> None:
        """The personal-data default names only streams this config has (SQL, SOAP or both).

        The shared start-up check refuses a `pseudonymize` naming a stream the tap does not have; the SOAP streams
        exist only with a WSDL (and only the objects in `soap_objects`), the XC streams only with a SQL driver.
        """
        config = self._config
        if "pseudonymize" in config:
            return
        default: dict[str, list[str]] = {}
        if str(config.get("sql_driver") or "jdbc") != NO_SQL:
            default |= SQL_PERSONAL_DATA_FIELDS
        if config.get("wsdl_url") or config.get("wsdl_path"):
            objects = config.get("soap_objects") or DEFAULT_SOAP_OBJECTS
            chosen = {stream_name_of(str(name)) for name in objects}
            default |= {stream: fields for stream, fields in SOAP_PERSONAL_DATA_FIELDS.items() if stream in chosen}
        self.personal_data_fields = default
        config["pseudonymize"] = default

    def _setting_errors(self) -> list[str]:
        config = self._config
        errors: list[str] = []
        for name in ("page_size", "max_reconnects"):
            value = config.get(name)
            if isinstance(value, str):
                with contextlib.suppress(ValueError):
                    config[name] = value = int(value)
        driver_name = str(config.get("sql_driver") or "jdbc")
        if driver_name != NO_SQL:
            try:
                driver = driver_for(driver_name)
            except DriverSetupError as exc:
                errors.append(str(exc))
            else:
                errors += driver.setup_errors(config)
                if driver.name in {"postgresql", "odbc"} and not config.get("sql_dsn"):
                    errors.append(f"Setting 'sql_dsn' is required with sql_driver '{driver.name}'.")
        elif not (config.get("wsdl_url") or config.get("wsdl_path")):
            errors.append(
                "Setting 'sql_driver' is 'none' and neither 'wsdl_url' nor 'wsdl_path' is set: "
                "there is nothing to read."
            )
        zone = str(config.get("source_timezone") or "UTC")
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            errors.append(f"Setting 'source_timezone' is {zone!r}, which is not an IANA time zone such as UTC.")
        overrides = config.get("key_overrides")
        if overrides is not None:
            if not isinstance(overrides, dict):
                errors.append('Setting \'key_overrides\' must be an object like {"xc_planrules": ["PLAN_ID"]}.')
            else:
                for stream, key in overrides.items():
                    if stream not in _STREAMS:
                        errors.append(f"Setting 'key_overrides' names stream {stream!r}, which this tap does not have.")
                    elif not isinstance(key, list) or not key or not all(isinstance(k, str) and k for k in key):
                        errors.append(f"Setting 'key_overrides' for stream {stream!r} must be a non-empty list.")
        return errors

    # -- sources ------------------------------------------------------------------------------------------------

    def sql_source(self) -> SqlSource:
        """The tap's one SQL connection (opened on first use)."""
        if self._sql_source is None:
            config = dict(self.config)
            self._sql_source = SqlSource(
                driver_for(str(config.get("sql_driver") or "jdbc")),
                config,
                self.logger,
                clock=self.clock,
                max_reconnects=int(config.get("max_reconnects", DEFAULT_MAX_RECONNECTS)),
            )
        return self._sql_source

    def soap_session(self) -> SoapSession:
        """The tap's SOAP client (WSDL loaded and logged in on first use)."""
        if self._soap_session is None:
            self._soap_session = SoapSession(dict(self.config), self.logger)
        return self._soap_session

    def discover_streams(self) -> list[Stream]:
        """The XC table streams (with a SQL driver) and the SOAP object streams (with a WSDL)."""
        streams: list[Stream] = []
        if self.sql_enabled:
            streams += table_streams(self, self.sql_source, self.config.get("key_overrides"))
        if self.soap_enabled:
            streams += soap_streams(self, self.soap_session)
        return streams


if __name__ == "__main__":
    TapXactly.cli()
