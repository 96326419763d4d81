"""Snowflake connections, identifiers, types, introspection and DDL.

Decisions about names and types come from the shared rule engine (`harborline_singer_shared.rules`); this module only
speaks Snowflake. The engine's names are lower-case `[a-z0-9_]`; Snowflake folds unquoted names to upper case, so a
name is stored upper-cased and always double-quoted (reserved words and odd characters stay safe, and the session
runs with QUOTED_IDENTIFIERS_IGNORE_CASE=FALSE so quoting means what it says). The batch load path is in `load.py`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

import snowflake.connector
from snowflake.connector import errors as sf_errors

from harborline_singer_shared.rules import (
    ColumnPlan,
    ColumnType,
    DialectRules,
    ExistingColumn,
    Kind,
    TablePlan,
    decode_source,
    encode_source,
    is_null_only,
)
from harborline_target_snowflake.auth import SnowflakeSettingsError, auth_setting, credential_kwargs, redact

#: Snowflake's identifier limit is 255 characters; the engine's names are ASCII, so bytes and characters agree.
MAX_IDENTIFIER_CHARS = 255
#: Largest VARCHAR (16 MB): what VARCHAR without a length means.
MAX_VARCHAR = 16_777_216
TIMESTAMP_TYPES = ("TIMESTAMP_TZ", "TIMESTAMP_NTZ")
#: Seconds to wait for a login, and for one request (the connector retries 429/5xx within it).
LOGIN_TIMEOUT = 60
NETWORK_TIMEOUT = 300

_ENGINE_NAME = re.compile(r"[a-z0-9_]+")
_STORED_NAME = re.compile(r"[A-Z0-9_]+")
#: Our helper tables (`side_name`): never a stream's table.
_HELPER_TABLE = re.compile(r"HL_(?:STAGE|REBUILD|OVERWRITE|LOAD)_[0-9A-F]{16}")


def _normalize_type(column_type: ColumnType) -> ColumnType:
    """Every VARCHAR we create is the 16 MB maximum, so a schema's maxLength plays no part in widening."""
    return ColumnType(column_type.kind)


RULES = DialectRules(max_identifier_bytes=MAX_IDENTIFIER_CHARS, normalize_type=_normalize_type)


# -- identifiers -------------------------------------------------------------------------------------------------


def stored_name(name: str) -> str:
    """The Snowflake name for an engine name (upper-cased); a name the engine did not make is kept as it is."""
    return name.upper() if _ENGINE_NAME.fullmatch(name) else name


def engine_name(stored: str) -> str | None:
    """Inverse of `stored_name` for names read back; None for an all-lower-case name made by someone else.

    Such a column (`"mycol"`) cannot be told apart from the engine's `mycol` (stored as `"MYCOL"`), so it is left
    out of what the engine sees: it stays untouched, and a source property `mycol` gets its own `"MYCOL"`.
    """
    if _STORED_NAME.fullmatch(stored):
        return stored.lower()
    if _ENGINE_NAME.fullmatch(stored):
        return None
    return stored


def quote(identifier: str) -> str:
    """`"NAME"`: always quoted, upper-cased when it is an engine name."""
    if "\x00" in identifier:
        msg = "identifiers cannot contain NUL"
        raise ValueError(msg)
    return '"' + stored_name(identifier).replace('"', '""') + '"'


def qualified(schema: str, table: str) -> str:
    """`"SCHEMA"."TABLE"` (the connection's database)."""
    return f"{quote(schema)}.{quote(table)}"


def literal(value: str) -> str:
    """A SQL string literal: Snowflake reads backslash escapes in literals, so backslashes are doubled too."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def side_name(table: str, purpose: str) -> str:
    """A short, fixed name for a helper table of `table` (`purpose` e.g. `stage`, `rebuild`, `overwrite`).

    Upper-case and unquoted-safe on purpose: a table stage is addressed as `@%NAME`, which the emulator resolves
    only unquoted.
    """
    digest = hashlib.sha256(stored_name(table).encode("utf-8")).hexdigest()[:16].upper()
    return f"HL_{purpose.upper()}_{digest}"


# -- types -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TypeOptions:
    """The type settings: `timestamp_type` (TIMESTAMP_TZ, or TIMESTAMP_NTZ holding UTC) and `number_scale`."""

    timestamp_type: str = "TIMESTAMP_TZ"
    number_scale: int = 9

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> TypeOptions:
        """Validated settings: one line naming the setting when a value cannot work."""
        ts = str(config.get("timestamp_type") or "TIMESTAMP_TZ").upper()
        if ts not in TIMESTAMP_TYPES:
            msg = f"`timestamp_type` must be TIMESTAMP_TZ or TIMESTAMP_NTZ, not {ts!r}"
            raise SnowflakeSettingsError(msg)
        scale = config.get("number_scale", 9)
        if isinstance(scale, bool) or not isinstance(scale, int) or not 0 <= scale <= 37:
            msg = f"`number_scale` must be an integer from 0 to 37, not {scale!r}"
            raise SnowflakeSettingsError(msg)
        return cls(ts, scale)


def scale_for(col: ColumnPlan, options: TypeOptions) -> int:
    """Decimal places of a number column: from a power-of-ten `multipleOf` (0.01 -> 2), else `number_scale`."""
    if col.type.kind is Kind.INTEGER:
        return 0
    step = col.source.schema.get("multipleOf") if col.source is not None else None
    if isinstance(step, (int, float)) and not isinstance(step, bool) and step > 0:
        exponent = Decimal(str(step)).normalize().as_tuple()
        if exponent.digits == (1,) and isinstance(exponent.exponent, int) and -37 <= exponent.exponent <= 0:
            return -exponent.exponent
    return options.number_scale


def sql_type(col: ColumnPlan, options: TypeOptions) -> str:
    """The Snowflake column type: NUMBER(38,s) for numbers (never FLOAT), VARIANT for JSON.

    A column declared only null is a VARCHAR whose comment records the kind (see `rules.encode_source`), so a later
    SCHEMA may still give it any type.
    """
    kind = col.type.kind
    if kind is Kind.INTEGER:
        return "NUMBER(38,0)"
    if kind is Kind.NUMBER:
        return f"NUMBER(38,{scale_for(col, options)})"
    if kind is Kind.TIMESTAMP:
        return options.timestamp_type
    return {
        Kind.BOOLEAN: "BOOLEAN",
        Kind.DATE: "DATE",
        Kind.TIME: "TIME",
        Kind.STRING: "VARCHAR",
        Kind.JSON: "VARIANT",
        Kind.NULL: "VARCHAR",
    }[kind]


def stage_type(col: ColumnPlan, options: TypeOptions) -> str:
    """The staging column type (what the COPY parses the text into).

    VARIANT arrives as JSON text (PARSE_JSON in the MERGE), and timestamps always with their offset
    (TIMESTAMP_TZ), converted to UTC in the MERGE for a TIMESTAMP_NTZ table.
    """
    if col.type.kind is Kind.JSON:
        return "VARCHAR"
    if col.type.kind is Kind.TIMESTAMP:
        return "TIMESTAMP_TZ"
    return sql_type(col, options)


# -- reading a table back -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PhysicalColumn:
    """A column as Snowflake describes it (the engine sees only its logical type)."""

    name: str  # as stored
    data_type: str  # information_schema: NUMBER, TEXT, BOOLEAN, DATE, TIME, TIMESTAMP_TZ, VARIANT, ...
    length: int | None = None
    precision: int | None = None
    scale: int | None = None
    comment: str | None = None
    sql_override: str | None = None  # a column this plan adds (not read back yet)

    @property
    def kind(self) -> Kind:
        """The logical kind; unknown types read as strings (never widened in place, never refused).

        A VARCHAR whose comment marks it as only ever null is `Kind.NULL`.
        """
        t = self.data_type
        if t == "TEXT" and is_null_only(self.comment):
            return Kind.NULL
        if t in {"NUMBER", "DECIMAL", "NUMERIC", "FIXED"}:
            return Kind.INTEGER if not self.scale else Kind.NUMBER
        if t in {"FLOAT", "DOUBLE", "REAL"}:
            return Kind.NUMBER
        if t.startswith("TIMESTAMP"):
            return Kind.TIMESTAMP
        if t in {"VARIANT", "OBJECT", "ARRAY"}:
            return Kind.JSON
        return {"BOOLEAN": Kind.BOOLEAN, "DATE": Kind.DATE, "TIME": Kind.TIME}.get(t, Kind.STRING)

    @property
    def sql(self) -> str:
        """The column's type as DDL (to copy it to a side table)."""
        if self.sql_override:
            return self.sql_override
        if self.data_type in {"NUMBER", "DECIMAL", "NUMERIC", "FIXED"}:
            return f"NUMBER({self.precision or 38},{self.scale or 0})"
        if self.data_type == "TEXT":
            return "VARCHAR" if not self.length or self.length >= MAX_VARCHAR else f"VARCHAR({self.length})"
        return self.data_type


def read_physical_columns(cur: Any, schema: str, table: str) -> list[PhysicalColumn] | None:
    """The table's columns in order, or None when the table does not exist."""
    return read_tables(cur, schema, [table]).get(stored_name(table))


def read_tables(cur: Any, schema: str, tables: Sequence[str]) -> dict[str, list[PhysicalColumn]]:
    """Stored table name -> its columns in order, for those of `tables` that exist: one query for them all.

    A sink's setup asks for its table and the rebuild table a killed run may have left: every statement is a
    round trip to Snowflake (tens to hundreds of milliseconds), so setup asks once.
    """
    names = [stored_name(t) for t in tables]
    cur.execute(
        "SELECT table_name, column_name, data_type, character_maximum_length, numeric_precision, numeric_scale, "
        "comment FROM information_schema.columns WHERE table_schema = %s AND table_name IN ("
        + ", ".join(["%s"] * len(names))
        + ") ORDER BY table_name, ordinal_position",
        (stored_name(schema), *names),
    )
    out: dict[str, list[PhysicalColumn]] = {}
    for r in cur.fetchall():
        out.setdefault(r[0], []).append(PhysicalColumn(r[1], str(r[2]).upper(), r[3], r[4], r[5], r[6]))
    return out


def existing_columns(physical: Sequence[PhysicalColumn] | None) -> list[ExistingColumn] | None:
    """The columns as the engine names them, with their recorded sources; None: no such table."""
    if physical is None:
        return None
    out = []
    for col in physical:
        name = engine_name(col.name)
        if name is not None:
            out.append(ExistingColumn(name, ColumnType(col.kind), decode_source(col.comment)))
    return out


def read_columns(cur: Any, schema: str, table: str) -> list[ExistingColumn] | None:
    """The table's columns as the engine names them, with their recorded sources; None: no such table."""
    return existing_columns(read_physical_columns(cur, schema, table))


def read_primary_key(cur: Any, schema: str, table: str) -> list[str]:
    """Primary key columns (engine names), in key order; Snowflake records keys without enforcing them."""
    cur.execute(f"SHOW PRIMARY KEYS IN TABLE {qualified(schema, table)}")
    names = [d[0].lower() for d in cur.description]
    rows = [dict(zip(names, r, strict=False)) for r in cur.fetchall()]
    rows.sort(key=lambda r: int(r.get("key_sequence") or 0))
    return [n for n in (engine_name(str(r["column_name"])) for r in rows) if n is not None]


def read_table_owners(cur: Any, schema: str) -> dict[str, str]:
    """Table (engine name) -> stream it holds, from table comments, for collision-free table naming."""
    cur.execute(
        "SELECT table_name, comment FROM information_schema.tables WHERE table_schema = %s",
        (stored_name(schema),),
    )
    owners = {}
    for stored, comment in cur.fetchall():
        name = engine_name(stored)
        if name is None or _HELPER_TABLE.fullmatch(stored):
            continue
        source = decode_source(comment)
        owners[name] = source[0] if source and len(source) == 1 else name
    return owners


# -- DDL ---------------------------------------------------------------------------------------------------------


@dataclass
class DdlPlan:
    """What to run for one `TablePlan`: statements, and whether the table must be rebuilt (see `apply_ddl`)."""

    statements: list[str] = field(default_factory=list)
    rebuild: list[str] = field(default_factory=list)  # columns whose type needs a rebuild
    create_rebuild: list[str] = field(default_factory=list)  # the rebuild table's DDL (incl. comments)
    copy_rebuild: str = ""  # INSERT ... SELECT with casts into it
    target: str = ""
    rebuild_table: str = ""


def _column_ddl(col: ColumnPlan, options: TypeOptions, timestamp_column: str) -> str:
    """A column's definition, its comment inline (one statement for the table, whatever its width)."""
    ddl = f"{quote(col.name)} {sql_type(col, options)}"
    if col.is_key:
        ddl += " NOT NULL"
    if col.source is None and col.name == timestamp_column:
        ddl += " NOT NULL"
    if col.comment:
        ddl += f" COMMENT {literal(col.comment)}"
    return ddl


def _in_place(old: PhysicalColumn, new_sql: str) -> bool:
    """Whether Snowflake's ALTER COLUMN ... SET DATA TYPE can make this change.

    It allows a longer VARCHAR and more NUMBER precision at the same scale; everything else (another type,
    another scale) needs a rebuild.
    """
    if old.data_type == "TEXT":
        return new_sql.startswith("VARCHAR")
    m = re.fullmatch(r"NUMBER\((\d+),(\d+)\)", new_sql)
    if old.data_type == "NUMBER" and m:
        return int(m.group(2)) == (old.scale or 0) and int(m.group(1)) >= (old.precision or 38)
    return False


def _cast(expr: str, old: PhysicalColumn, new_sql: str) -> str:
    if new_sql == "VARCHAR" and old.data_type == "NUMBER" and old.scale:
        # NUMBER(38,9) reads `1.500000000` as text: the value as sent (`1.5`), without the scale's padding zeros.
        return f"RTRIM(RTRIM(CAST({expr} AS VARCHAR), '0'), '.')"
    if new_sql == "VARCHAR" and old.data_type == "TIMESTAMP_NTZ":
        return f"TO_VARCHAR({expr}, 'YYYY-MM-DD\"T\"HH24:MI:SS.FF9')"
    if new_sql == "VARCHAR" and old.data_type.startswith("TIMESTAMP"):
        return f"TO_VARCHAR({expr}, 'YYYY-MM-DD\"T\"HH24:MI:SS.FF9TZH:TZM')"
    return f"CAST({expr} AS {new_sql})"


def plan_ddl(  # noqa: PLR0917 - the plan and where it goes
    plan: TablePlan,
    schema: str,
    table: str,
    stream: str,
    timestamp_column: str,
    options: TypeOptions,
    physical: Sequence[PhysicalColumn] | None = None,
    *,
    primary_key: bool = True,
) -> DdlPlan:
    """DDL that brings the table to the plan.

    Run it with `apply_ddl`, before any data transaction (a DDL statement commits an open transaction in
    Snowflake).

    In place where Snowflake allows (ADD COLUMN; VARCHAR longer; NUMBER precision up at the same scale); any other
    widening (integer -> number, a larger scale, anything -> string, date -> timestamp) rebuilds the table.
    """
    target = qualified(schema, table)
    out = DdlPlan(target=target)
    if plan.create:
        cols = [_column_ddl(c, options, timestamp_column) for c in plan.columns]
        if plan.key_columns and primary_key:
            cols.append("PRIMARY KEY (" + ", ".join(quote(k) for k in plan.key_columns) + ")")
        out.statements.append(
            f"CREATE TABLE IF NOT EXISTS {target} (\n  " + ",\n  ".join(cols) + "\n)"
            f" COMMENT = {literal(encode_source([stream]))}"
        )
        return out
    by_name = {p.name: p for p in physical or []}
    out.statements.extend(f"ALTER TABLE {target} ADD COLUMN {_column_ddl(col, options, '')}" for col in plan.add)
    # A column declared only null so far that now gets a type: its comment no longer says null-only.
    typed = {c.name: c.comment for c, old_type in plan.widen if old_type.kind is Kind.NULL and c.comment is not None}
    changed: dict[str, str] = {}
    for col in plan.columns:
        old = by_name.get(stored_name(col.name))
        if old is None or col in plan.add:
            continue
        new_sql = sql_type(col, options)
        if _needs_change(old, col, new_sql):
            changed[old.name] = new_sql
    for name, new_sql in changed.items():
        if by_name[name].kind is Kind.NULL and new_sql == "VARCHAR":
            continue  # already a VARCHAR: only its comment changes
        if _in_place(by_name[name], new_sql):
            out.statements.append(f"ALTER TABLE {target} ALTER COLUMN {quote(name)} SET DATA TYPE {new_sql}")
        else:
            out.rebuild.append(name)
    # (A rebuilt column gets its new comment in the rebuild table: the original stays as it was until the swap.)
    out.statements.extend(
        f"COMMENT ON COLUMN {target}.{quote(name)} IS {literal(comment)}"
        for name, comment in typed.items()
        if stored_name(name) not in out.rebuild
    )
    if out.rebuild:
        added = [
            PhysicalColumn(stored_name(c.name), "", comment=c.comment, sql_override=sql_type(c, options))
            for c in plan.add
        ]
        comments = {stored_name(name): comment for name, comment in typed.items()}
        physical = [replace(p, comment=comments.get(p.name, p.comment)) for p in physical or []]
        _plan_rebuild(
            out,
            plan,
            schema=schema,
            table=table,
            stream=stream,
            physical=[*(physical or []), *added],
            changed=changed,
            primary_key=primary_key,
        )
    return out


def _needs_change(old: PhysicalColumn, col: ColumnPlan, new_sql: str) -> bool:
    """Whether the existing column must change to hold the planned type (never narrows: the engine refused that)."""
    kind = old.kind
    if kind is Kind.NULL:
        return col.type.kind is not Kind.NULL
    if kind is Kind.JSON or (kind is col.type.kind and kind in {Kind.DATE, Kind.TIME, Kind.BOOLEAN, Kind.TIMESTAMP}):
        return False
    if kind is Kind.STRING:
        return col.type.kind is Kind.STRING and 0 < (old.length or MAX_VARCHAR) < MAX_VARCHAR
    if kind in {Kind.INTEGER, Kind.NUMBER} and col.type.kind in {Kind.INTEGER, Kind.NUMBER}:
        m = re.fullmatch(r"NUMBER\((\d+),(\d+)\)", new_sql)
        if m is None:
            return False
        return int(m.group(2)) > (old.scale or 0) or int(m.group(1)) > (old.precision or 38)
    return kind is not col.type.kind


def _plan_rebuild(
    out: DdlPlan,
    plan: TablePlan,
    *,
    schema: str,
    table: str,
    stream: str,
    physical: Sequence[PhysicalColumn],
    changed: Mapping[str, str],
    primary_key: bool,
) -> None:
    rebuild = qualified(schema, side_name(table, "rebuild"))
    out.rebuild_table = rebuild
    keys = [stored_name(k) for k in plan.key_columns] if primary_key else []
    cols, select = [], []
    for p in physical:
        new_sql = changed.get(p.name, p.sql)
        ddl = f"{quote(p.name)} {new_sql}"
        if p.name in keys:
            ddl += " NOT NULL"
        if p.comment:
            ddl += f" COMMENT {literal(p.comment)}"
        cols.append(ddl)
        select.append(_cast(quote(p.name), p, new_sql) if p.name in changed else quote(p.name))
    if keys:
        cols.append("PRIMARY KEY (" + ", ".join(quote(k) for k in keys) + ")")
    out.create_rebuild = [
        f"CREATE OR REPLACE TABLE {rebuild} (\n  " + ",\n  ".join(cols) + "\n)"
        f" COMMENT = {literal(encode_source([stream]))}",
    ]
    names = ", ".join(quote(p.name) for p in physical)
    out.copy_rebuild = f"INSERT INTO {rebuild} ({names}) SELECT {', '.join(select)} FROM {out.target}"


class RebuildCountMismatchError(RuntimeError):
    """The rebuilt table does not hold as many rows as the original: it is dropped, the original stays."""


def apply_ddl(cur: Any, ddl: DdlPlan) -> None:
    """Run a `DdlPlan` (autocommit: every statement is its own transaction).

    A rebuild runs after the in-place statements: new table with the same columns, key and comments, INSERT ...
    SELECT with casts, counts compared, `ALTER TABLE ... SWAP WITH` (atomic), the old table dropped. A rebuild
    table left by a killed run is dropped by `discard_rebuild` before the next one (the original always exists:
    the swap is atomic).
    """
    for stmt in ddl.statements:
        cur.execute(stmt)
    if not ddl.rebuild:
        return
    for stmt in ddl.create_rebuild:
        cur.execute(stmt)
    cur.execute(ddl.copy_rebuild)
    cur.execute(f"SELECT (SELECT COUNT(*) FROM {ddl.target}), (SELECT COUNT(*) FROM {ddl.rebuild_table})")
    old_count, new_count = cur.fetchone()
    if old_count != new_count:
        cur.execute(f"DROP TABLE IF EXISTS {ddl.rebuild_table}")
        msg = f"rebuilding {ddl.target} copied {new_count} of {old_count} rows: the table was left unchanged"
        raise RebuildCountMismatchError(msg)
    cur.execute(f"ALTER TABLE {ddl.rebuild_table} SWAP WITH {ddl.target}")
    cur.execute(f"DROP TABLE {ddl.rebuild_table}")


def discard_rebuild(cur: Any, schema: str, table: str) -> None:
    """Drop a rebuild table a killed run left behind (before planning the table again)."""
    cur.execute(f"DROP TABLE IF EXISTS {qualified(schema, side_name(table, 'rebuild'))}")


def ensure_schema(cur: Any, schema: str) -> None:
    """Create the target schema if missing and make it current.

    IF NOT EXISTS: concurrent first runs race harmlessly. Current: temporary staging tables are created there.
    """
    cur.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}")
    cur.execute(f"USE SCHEMA {quote(schema)}")


# -- connections -------------------------------------------------------------------------------------------------


def connect_kwargs(config: Mapping[str, Any], **overrides: Any) -> dict[str, Any]:
    """snowflake.connector.connect() arguments from the settings (`overrides`: e.g. shorter test timeouts).

    Session parameters are set at login, not by ALTER SESSION: TIMEZONE=UTC (timestamps are unambiguous),
    QUOTED_IDENTIFIERS_IGNORE_CASE=FALSE (our quoted names mean what they say), QUERY_TAG from `query_tag`.
    """
    missing = [f"`{name}`" for name in ("account", "user") if not config.get(name)]
    if missing:
        msg = " and ".join(missing) + (" is" if len(missing) == 1 else " are") + " not set"
        raise SnowflakeSettingsError(msg)
    kwargs: dict[str, Any] = {
        "account": str(config["account"]),
        "user": str(config["user"]),
        **credential_kwargs(config),
        "session_parameters": {
            "TIMEZONE": "UTC",
            "QUOTED_IDENTIFIERS_IGNORE_CASE": False,
            **({"QUERY_TAG": str(config["query_tag"])} if config.get("query_tag") else {}),
        },
        "client_session_keep_alive": True,
        "application": "harborline-target-snowflake",
        "autocommit": True,
        "login_timeout": LOGIN_TIMEOUT,
        "network_timeout": NETWORK_TIMEOUT,
        # 0: no network probes at login. The connector otherwise asks the cloud metadata services and AWS STS
        # (signing with whatever AWS credentials the machine has) which platform it runs on, to report it to
        # Snowflake: nothing here needs that, probing identity endpoints unasked is not private by default, and
        # it costs up to 0.2 s and a botocore client per run.
        "platform_detection_timeout_seconds": 0.0,
    }
    for name in ("role", "warehouse", "database", "host", "protocol"):
        if config.get(name):
            kwargs[name] = str(config[name])
    if config.get("port"):
        try:
            kwargs["port"] = int(config["port"])
        except (TypeError, ValueError):
            msg = f"`port` must be a number, not {config['port']!r}"
            raise SnowflakeSettingsError(msg) from None
    kwargs.update(overrides)
    return kwargs


class SnowflakeConnectError(ConnectionError):
    """The login failed: one line naming the settings to check, without any secret."""


#: (error number or text in the message) -> settings to check; the first match wins.
_LOGIN_CHECKS: tuple[tuple[tuple[int, ...], tuple[str, ...], tuple[str, ...]], ...] = (
    ((390100, 390101), ("incorrect username or password",), ("user", "{auth}")),
    ((390144, 394304), ("jwt token is invalid",), ("user", "{auth}")),
    ((), ("database",), ("database",)),
    ((), ("warehouse",), ("warehouse",)),
    ((), ("role",), ("role", "user")),
    ((250001, 250003), ("could not connect", "failed to execute request", "timed out", "timeout"),
     ("account", "host", "port", "protocol")),
)  # fmt: skip


def describe_connect_error(exc: BaseException, config: Mapping[str, Any]) -> str:
    """One line: where to, with which user and auth setting, what Snowflake said, which settings to check."""
    try:
        auth = auth_setting(config)
    except SnowflakeSettingsError:
        auth = "password"
    errno = getattr(exc, "errno", None)
    reason = " ".join(str(getattr(exc, "msg", None) or exc).split()) or type(exc).__name__
    lower = reason.lower()
    check: tuple[str, ...] = ("account", "user", auth, "host", "port")
    for numbers, needles, names in _LOGIN_CHECKS:
        if errno in numbers or any(n in lower for n in needles):
            check = tuple(n.format(auth=auth) for n in names)
            break
    where = f"account {config.get('account')!r}, user {config.get('user')!r}, auth `{auth}`"
    if config.get("host"):
        where += f", host {config.get('host')!r}"
    text = f"cannot connect to Snowflake ({where}): {reason}; check " + " and ".join(f"`{c}`" for c in check)
    return redact(text, config)


def connect(config: Mapping[str, Any], **overrides: Any) -> Any:
    """A new autocommit connection.

    Settings and login errors become one line (SnowflakeSettingsError or SnowflakeConnectError).
    """
    kwargs = connect_kwargs(config, **overrides)
    try:
        return snowflake.connector.connect(**kwargs)
    except sf_errors.Error as exc:
        raise SnowflakeConnectError(describe_connect_error(exc, config)) from None


# -- errors ------------------------------------------------------------------------------------------------------

#: Error numbers Snowflake documents as transient: lock wait timeout (000625), statement timeouts (000630), and
#: the session token expiring mid-run (390112/390114: log in again and redo).
TRANSIENT_ERRNOS = frozenset({625, 630, 390112, 390114})
#: HTTP faults the connector already retried within `network_timeout` before giving up.
_HTTP_TRANSIENT = (
    sf_errors.InternalServerError,
    sf_errors.ServiceUnavailableError,
    sf_errors.GatewayTimeoutError,
    sf_errors.BadGatewayError,
    sf_errors.TooManyRequests,
    sf_errors.OtherHTTPRetryableError,
    sf_errors.RequestTimeoutError,
    sf_errors.RequestExceedMaxRetryError,
)


def is_transient(exc: BaseException) -> bool:
    """A fault of the connection or the service, not of the batch: rolled back and redone, it may succeed.

    Transient: the errnos above, a connection-exception SQLSTATE (08...), the connector's OperationalError (network
    lost, retries exhausted) and the HTTP errors it retries. Everything else (SQL errors, bad values, privileges)
    is permanent: rollback, then one error line.
    """
    if not isinstance(exc, sf_errors.Error):
        return isinstance(exc, (ConnectionError, TimeoutError))
    if getattr(exc, "errno", None) in TRANSIENT_ERRNOS:
        return True
    if str(getattr(exc, "sqlstate", None) or "").startswith("08"):
        return True
    if isinstance(exc, sf_errors.ProgrammingError):
        return False
    return isinstance(exc, (sf_errors.OperationalError, *_HTTP_TRANSIENT))


def describe_error(exc: BaseException) -> str:
    """First line of a Snowflake error with its number (`002003: SQL compilation error: ...`).

    Quoted values in the message are masked: they may be record data.
    """
    errno = getattr(exc, "errno", None)
    # `raw_msg`: the message before the connector prefixed it (its prefix holds the query id only at INFO level).
    raw = getattr(exc, "raw_msg", None) or getattr(exc, "msg", None) or exc
    text = re.sub(r"^\d{6}(?: \(\w+\))?: ", "", str(raw).strip())
    first = " ".join(text.splitlines()[:2]) if text.lower().startswith("sql compilation error") else text
    first = re.sub(r"'[^']*'", "'…'", first.splitlines()[0] if first else type(exc).__name__)
    sfqid = getattr(exc, "sfqid", None)
    if isinstance(sfqid, str) and sfqid:
        first += f" (query id {sfqid})"  # to find it in the query history; not a secret
    return f"{errno:06d}: {first}" if isinstance(errno, int) and errno > 0 else first
