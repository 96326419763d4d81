"""The three SQL transports behind ``sql_driver``: how each is loaded, connected and how its errors are read.

Every driver is a DB-API 2.0 module; what differs is the connect call, the parameter style, and how an error says
"the connection is gone" (reconnect and resume) or "the credentials were refused" (stop at once). Keeping those
three answers here lets the keyset reader in client.py stay the same for JDBC, ODBC and PostgreSQL.
"""

from __future__ import annotations

import abc
import datetime
import decimal
import importlib
import re
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

__all__ = [
    "DRIVERS",
    "NO_SQL",
    "ColumnKind",
    "DriverSetupError",
    "SqlDriver",
    "driver_for",
    "sqlstate_of",
]

#: ``sql_driver`` value for a tap that reads only the SOAP object streams.
NO_SQL = "none"
_CONNECT_TIMEOUT_S = 30
_APPLICATION_NAME = "tap-xactly"
_AUTH_TEXT = re.compile(
    r"authentication failed|password authentication|no password supplied|login failed|invalid credentials|"
    r"invalid (user|username|password)|unauthori[sz]ed|bad credentials|access denied for user|"
    r'role "[^"]*" does not exist',
    re.IGNORECASE,
)
_LOST_TEXT = re.compile(
    r"connection (reset|closed|refused|lost|timed out|is closed|already closed)|server closed the connection|"
    r"broken pipe|communications link failure|terminating connection|SQLRecoverableException|"
    r"SQLNonTransientConnectionException|SQLTransientConnectionException|could not connect|"
    r"not currently accepting connections|the database system is (starting up|shutting down)",
    re.IGNORECASE,
)
_SQLSTATE = re.compile(r"\b([0-9A-Z]{5})\b")


class DriverSetupError(Exception):
    """The driver cannot be used as configured (unknown, not installed, jar missing): one line naming the setting."""


class ColumnKind:
    """What a column holds, decided once per column from ``cursor.description``."""

    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    DATETIME = "datetime"  # no zone in the source: it is in source_timezone
    DATETIME_TZ = "datetime_tz"  # the source gave the zone
    DATE = "date"
    TIME = "time"
    BINARY = "binary"
    STRING = "string"


def sqlstate_of(exc: BaseException) -> str | None:
    """The five-character SQLSTATE an error carries, when the driver gives one (psycopg2, pyodbc, JDBC text)."""
    code = getattr(exc, "pgcode", None) or getattr(exc, "sqlstate", None)
    if isinstance(code, str) and len(code) == 5:
        return code
    first = exc.args[0] if exc.args else None
    if isinstance(first, str) and _SQLSTATE.fullmatch(first):
        return first  # pyodbc: args = (sqlstate, message)
    return None


@dataclass(frozen=True)
class SqlDriver(abc.ABC):
    """A DB-API transport; subclasses name their module, extra and connect call."""

    name: ClassVar[str] = ""
    module_name: ClassVar[str] = ""
    extra: ClassVar[str | None] = None
    #: The settings a refused login names.
    credential_settings: ClassVar[str] = "`username`/`password`"
    #: The setting that says where to connect (named when the server cannot be reached).
    location_setting: ClassVar[str] = "`sql_dsn`"

    def load(self) -> ModuleType:
        """Import the driver module, or say in one line which extra installs it."""
        try:
            return importlib.import_module(self.module_name)
        except ImportError:
            hint = f"pip install 'harborline-tap-xactly[{self.extra}]'" if self.extra else "reinstall the tap"
            raise DriverSetupError(
                f"Setting 'sql_driver' is '{self.name}', but its Python module '{self.module_name}' is not "
                f"installed: {hint} (or set 'sql_driver' to another transport)."
            ) from None

    def setup_errors(self, config: dict[str, Any]) -> list[str]:  # noqa: ARG002 - used by subclasses
        """What keeps this driver from working with the config, one line each (checked at start-up)."""
        try:
            self.load()
        except DriverSetupError as exc:
            return [str(exc)]
        return []

    @abc.abstractmethod
    def connect(self, module: ModuleType, config: dict[str, Any]) -> Any:
        """Open one connection, in autocommit mode so a failed query never poisons the next one."""

    def is_auth_error(self, exc: BaseException) -> bool:
        """Whether a failed connect is a refused login (never retried)."""
        state = sqlstate_of(exc)
        return (state is not None and state.startswith("28")) or bool(_AUTH_TEXT.search(str(exc)))

    def is_lost_connection(self, module: ModuleType, exc: BaseException, connection: Any) -> bool:  # noqa: ARG002
        """Whether an error means the connection is gone (reconnect and resume), not a bad query."""
        state = sqlstate_of(exc)
        if state is not None:
            return state.startswith("08") or state in {"57P01", "57P02", "57P03"}
        lost_types = tuple(
            t for t in (getattr(module, "OperationalError", None), getattr(module, "InterfaceError", None)) if t
        )
        return isinstance(exc, lost_types) or bool(_LOST_TEXT.search(str(exc)))

    def column_kind(self, module: ModuleType, column: tuple[Any, ...]) -> str:
        """The kind of a ``cursor.description`` entry, from the DB-API type objects (or Python types, pyodbc)."""
        type_code = column[1]
        if isinstance(type_code, type):
            return _python_type_kind(type_code, column)
        for attr, kind in (
            ("DATE", ColumnKind.DATE),
            ("TIME", ColumnKind.TIME),
            ("DATETIME", ColumnKind.DATETIME),
            ("TIMESTAMP", ColumnKind.DATETIME),
            ("DECIMAL", ColumnKind.NUMBER),
            ("FLOAT", ColumnKind.NUMBER),
            ("NUMBER", ColumnKind.NUMBER),
            ("BINARY", ColumnKind.BINARY),
            ("STRING", ColumnKind.STRING),
            ("TEXT", ColumnKind.STRING),
        ):
            type_object = getattr(module, attr, None)
            if type_object is not None and _equals(type_code, type_object):
                return _integer_if_whole(kind, column)
        return ColumnKind.STRING


def _equals(type_code: Any, type_object: Any) -> bool:
    try:
        return bool(type_code == type_object)
    except Exception:  # noqa: BLE001 - a driver's odd type object just does not match
        return False


def _integer_if_whole(kind: str, column: tuple[Any, ...]) -> str:
    """NUMBER(p, 0) up to 18 digits is an integer; wider or with a scale stays an exact number."""
    if kind != ColumnKind.NUMBER:
        return kind
    precision = column[4] if len(column) > 4 else None
    scale = column[5] if len(column) > 5 else None
    if scale == 0 and isinstance(precision, int) and 0 < precision <= 18:
        return ColumnKind.INTEGER
    return kind


def _python_type_kind(type_code: type, column: tuple[Any, ...]) -> str:
    """Pyodbc describes a column by the Python type its values have."""
    if issubclass(type_code, bool):
        return ColumnKind.BOOLEAN
    if issubclass(type_code, int):
        return ColumnKind.INTEGER
    if issubclass(type_code, (float, decimal.Decimal)):
        return _integer_if_whole(ColumnKind.NUMBER, column)
    if issubclass(type_code, datetime.datetime):
        return ColumnKind.DATETIME
    if issubclass(type_code, datetime.date):
        return ColumnKind.DATE
    if issubclass(type_code, datetime.time):
        return ColumnKind.TIME
    if issubclass(type_code, (bytes, bytearray, memoryview)):
        return ColumnKind.BINARY
    return ColumnKind.STRING


@dataclass(frozen=True)
class PostgresDriver(SqlDriver):
    """XC tables copied into PostgreSQL (psycopg2, a base dependency); ``sql_dsn`` is a libpq DSN or URI."""

    name: ClassVar[str] = "postgresql"
    module_name: ClassVar[str] = "psycopg2"

    #: PostgreSQL type OIDs the DB-API type objects do not tell apart.
    _OID_KINDS: ClassVar[dict[int, str]] = {
        16: ColumnKind.BOOLEAN,
        20: ColumnKind.INTEGER,
        21: ColumnKind.INTEGER,
        23: ColumnKind.INTEGER,
        700: ColumnKind.NUMBER,
        701: ColumnKind.NUMBER,
        1700: ColumnKind.NUMBER,
        1082: ColumnKind.DATE,
        1083: ColumnKind.TIME,
        1114: ColumnKind.DATETIME,
        1184: ColumnKind.DATETIME_TZ,
        17: ColumnKind.BINARY,
    }

    def connect(self, module: ModuleType, config: dict[str, Any]) -> Any:
        """``psycopg2.connect(sql_dsn, user=..., password=...)``: the credentials never enter a string."""
        kwargs: dict[str, Any] = {"application_name": _APPLICATION_NAME, "connect_timeout": _CONNECT_TIMEOUT_S}
        if config.get("username"):
            kwargs["user"] = config["username"]
        if config.get("password"):
            kwargs["password"] = config["password"]
        connection = module.connect(config.get("sql_dsn") or "", **kwargs)
        connection.autocommit = True
        return connection

    def is_auth_error(self, exc: BaseException) -> bool:
        """psycopg2 gives no SQLSTATE for a refused login: its text says so."""
        return bool(_AUTH_TEXT.search(str(exc)))

    def is_lost_connection(self, module: ModuleType, exc: BaseException, connection: Any) -> bool:
        """Gone when psycopg2 marks the connection closed (terminated backend, restart, network)."""
        if isinstance(exc, (module.OperationalError, module.InterfaceError)):
            closed = getattr(connection, "closed", 1) if connection is not None else 1
            return bool(closed) or super().is_lost_connection(module, exc, connection)
        return False

    def column_kind(self, module: ModuleType, column: tuple[Any, ...]) -> str:
        """By OID first (numeric(p,0) is an integer up to 18 digits), else the generic DB-API answer."""
        kind = self._OID_KINDS.get(column[1])
        if kind is not None:
            return _integer_if_whole(kind, column) if column[1] == 1700 else kind
        return super().column_kind(module, column)


@dataclass(frozen=True)
class OdbcDriver(SqlDriver):
    """The vendor's ODBC driver through pyodbc; ``sql_dsn`` is the ODBC connection string."""

    name: ClassVar[str] = "odbc"
    module_name: ClassVar[str] = "pyodbc"
    extra: ClassVar[str | None] = "odbc"

    def connect(self, module: ModuleType, config: dict[str, Any]) -> Any:
        """``pyodbc.connect(sql_dsn, UID=..., PWD=...)``: pyodbc adds the keywords to the string it hands over."""
        kwargs: dict[str, Any] = {"autocommit": True, "timeout": _CONNECT_TIMEOUT_S}
        if config.get("username"):
            kwargs["UID"] = config["username"]
        if config.get("password"):
            kwargs["PWD"] = config["password"]
        return module.connect(config.get("sql_dsn") or "", **kwargs)


@dataclass(frozen=True)
class JdbcDriver(SqlDriver):
    """The vendor's JDBC driver (xjdbc jar) through jaydebeapi and a Java runtime."""

    name: ClassVar[str] = "jdbc"
    module_name: ClassVar[str] = "jaydebeapi"
    extra: ClassVar[str | None] = "jdbc"
    credential_settings: ClassVar[str] = "`username`/`password` (and `client_id`/`consumer`)"
    location_setting: ClassVar[str] = "`jdbc_url`"

    def setup_errors(self, config: dict[str, Any]) -> list[str]:
        """The module, and the jar the user supplies."""
        errors = super().setup_errors(config)
        jar = config.get("jdbc_jar_path")
        if not jar:
            errors.append(
                "Setting 'jdbc_jar_path' is required with sql_driver 'jdbc': the path of Xactly's "
                "xjdbc-<version>-jar-with-dependencies.jar."
            )
        elif not Path(str(jar)).expanduser().is_file():
            errors.append(f"Setting 'jdbc_jar_path' names {str(jar)!r}, which is not a file (the Xactly JDBC jar).")
        return errors

    @staticmethod
    def url(config: dict[str, Any]) -> str:
        """``jdbc_url`` plus clientId/consumer, as the vendor documents; the URL is never logged."""
        url = str(config.get("jdbc_url") or DEFAULT_JDBC_URL)
        for name, parameter in (("client_id", "clientId"), ("consumer", "consumer")):
            value = config.get(name)
            if value:
                url += ("&" if "?" in url else "?") + f"{parameter}={value}"
        return url

    def connect(self, module: ModuleType, config: dict[str, Any]) -> Any:
        """``jaydebeapi.connect(class, url, [user, password], jar)``, with exact numbers and timestamps."""
        credentials = [str(config.get("username") or ""), str(config.get("password") or "")]
        jar = str(Path(str(config["jdbc_jar_path"])).expanduser())
        connection = module.connect(
            str(config.get("jdbc_driver_class") or DEFAULT_JDBC_DRIVER_CLASS), self.url(config), credentials, jar
        )
        jconn = getattr(connection, "jconn", None)
        if jconn is not None:
            jconn.setAutoCommit(True)
        _exact_jdbc_converters(module, connection)
        return connection

    def column_kind(self, module: ModuleType, column: tuple[Any, ...]) -> str:
        """In jaydebeapi NUMBER means the integer types; DECIMAL/NUMERIC are exact numbers (integers when whole)."""
        type_code = column[1]
        if type_code is not None and type_code is getattr(module, "NUMBER", None):
            return ColumnKind.INTEGER
        if type_code is not None and type_code is getattr(module, "DECIMAL", None):
            return _integer_if_whole(ColumnKind.NUMBER, column)
        return super().column_kind(module, column)


def jdbc_exact_decimal(result_set: Any, column: int) -> decimal.Decimal | None:
    """A DECIMAL/NUMERIC value as an exact Decimal (jaydebeapi's own converter goes through a Java double)."""
    value = result_set.getBigDecimal(column)
    return None if value is None else decimal.Decimal(str(value.toPlainString()))


def jdbc_exact_timestamp(result_set: Any, column: int) -> str | None:
    """A TIMESTAMP as java.sql.Timestamp writes it, to the nanosecond.

    jaydebeapi's own converter turns 5 ms into 0.5 s (it takes the first six digits of the nanoseconds); a bookmark
    bound from that text would skip or repeat rows. The text is what the keyset binds back, so it must be exact.
    """
    value = result_set.getTimestamp(column)
    return None if value is None else str(value.toString())


def _exact_jdbc_converters(module: ModuleType, connection: Any) -> None:
    """Replace jaydebeapi's DECIMAL, NUMERIC and TIMESTAMP converters on this connection.

    jaydebeapi 1.2 offers no public way to choose converters: its connection keeps them in ``_converters``, keyed by
    the java.sql.Types constants it maps in ``_jdbc_name_to_const`` (both filled by its first connect).
    """
    constants = getattr(module, "_jdbc_name_to_const", None)
    converters = getattr(connection, "_converters", None)
    if not isinstance(constants, dict) or not isinstance(converters, dict):
        return
    exact = dict(converters)
    for name, converter in (
        ("DECIMAL", jdbc_exact_decimal),
        ("NUMERIC", jdbc_exact_decimal),
        ("TIMESTAMP", jdbc_exact_timestamp),
    ):
        if name in constants:
            exact[constants[name]] = converter
    connection._converters = exact  # noqa: SLF001 - see the docstring


DEFAULT_JDBC_URL = "jdbc:xactly://api.xactlycorp.com:443/api?sslVerifyServer=true"
DEFAULT_JDBC_DRIVER_CLASS = "com.xactly.connect.jdbc.Driver"

DRIVERS: dict[str, SqlDriver] = {d.name: d for d in (JdbcDriver(), OdbcDriver(), PostgresDriver())}


def driver_for(name: str) -> SqlDriver:
    """The transport named by ``sql_driver``; one line listing the known ones otherwise."""
    driver = DRIVERS.get(name)
    if driver is None:
        known = ", ".join(f"'{n}'" for n in [*DRIVERS, NO_SQL])
        raise DriverSetupError(f"Setting 'sql_driver' is {name!r}, which is not a known transport: use one of {known}.")
    return driver
