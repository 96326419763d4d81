"""jdbc and odbc with a fake DB-API module (the vendor's drivers are not public): connect arguments, paramstyle,
error mapping. Live tests against a real tenant run when TAP_XACTLY_LIVE_* credentials are set."""

from __future__ import annotations

import datetime
import os
import sys
import types
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from conftest import KEY, run_tap

from harborline_tap_xactly.client import ConnectionLostError, LoginRefusedError, QueryFailedError
from harborline_tap_xactly.drivers import (
    DEFAULT_JDBC_DRIVER_CLASS,
    ColumnKind,
    driver_for,
    jdbc_exact_decimal,
    jdbc_exact_timestamp,
)
from harborline_tap_xactly.streams import PERSONAL_DATA_FIELDS
from harborline_tap_xactly.tables import TABLES
from harborline_tap_xactly.tap import TapXactly

STAMP = datetime.datetime(2024, 2, 1, 9, 30)  # noqa: DTZ001 - the source writes no zone


class _TypeObject:
    """A DB-API type object: equal to each of its type codes."""

    def __init__(self, *codes: str) -> None:
        self.codes = codes

    def __eq__(self, other: object) -> bool:
        return other in self.codes

    __hash__ = None  # type: ignore[assignment]


def fake_module(name: str, paramstyle: str) -> types.ModuleType:
    """A DB-API module whose connections serve scripted XC_CREDIT pages and record every call."""
    module = types.ModuleType(name)
    module.paramstyle = paramstyle  # type: ignore[attr-defined]

    class Error(Exception):
        pass

    class DatabaseError(Error):
        pass

    class OperationalError(DatabaseError):
        pass

    class InterfaceError(Error):
        pass

    class ProgrammingError(DatabaseError):
        pass

    module.Error, module.DatabaseError = Error, DatabaseError  # type: ignore[attr-defined]
    module.OperationalError, module.InterfaceError = OperationalError, InterfaceError  # type: ignore[attr-defined]
    module.ProgrammingError = ProgrammingError  # type: ignore[attr-defined]
    module.NUMBER = _TypeObject("NUMBER")  # type: ignore[attr-defined]
    module.STRING = _TypeObject("VARCHAR")  # type: ignore[attr-defined]
    module.DATETIME = _TypeObject("TIMESTAMP")  # type: ignore[attr-defined]
    module.connects = []  # type: ignore[attr-defined]
    module.executed = []  # type: ignore[attr-defined]
    #: Answers of XC_CREDIT page queries, in order: a list of rows, or an exception to raise.
    module.pages = []  # type: ignore[attr-defined]
    module.connect_errors = []  # type: ignore[attr-defined]

    class Cursor:
        description: Any = None

        def execute(self, sql: str, params: Any = None) -> None:
            module.executed.append((sql, params))  # type: ignore[attr-defined]
            self._rows: list[tuple[Any, ...]] = []
            table = sql.split(" FROM ", 1)[1].split(" ", 1)[0].strip('"')
            if sql.endswith("WHERE 1 = 0"):
                xc_table = next(t for t in TABLES if t.table == table)
                columns: list[tuple[Any, ...]] = [(k, "NUMBER", None, None, 38, 0, True) for k in xc_table.key]
                columns += [("MODIFIED_DATE", "TIMESTAMP", None, None, None, None, True), ("NAME", "VARCHAR")]
                columns += [
                    (name, "VARCHAR") for name in PERSONAL_DATA_FIELDS.get(xc_table.stream, []) if name != "NAME"
                ]
                self.description = columns
                return
            self.description = [("CREDIT_ID",), ("MODIFIED_DATE",), ("NAME",)]
            if table == "XC_CREDIT" and module.pages:  # type: ignore[attr-defined]
                answer = module.pages.pop(0)  # type: ignore[attr-defined]
                if isinstance(answer, Exception):
                    raise answer
                self._rows = answer

        def fetchall(self) -> list[tuple[Any, ...]]:
            return self._rows

        def close(self) -> None:
            pass

    class Connection:
        def __init__(self) -> None:
            self.closed = False
            self._converters = {93: "jaydebeapi's own", 3: "jaydebeapi's own", 12: "jaydebeapi's own"}

        def cursor(self) -> Cursor:
            return Cursor()

        def close(self) -> None:
            self.closed = True

    def connect(*args: Any, **kwargs: Any) -> Connection:
        module.connects.append((args, kwargs))  # type: ignore[attr-defined]
        if module.connect_errors:  # type: ignore[attr-defined]
            raise module.connect_errors.pop(0)  # type: ignore[attr-defined]
        return Connection()

    module.connect = connect  # type: ignore[attr-defined]
    module._jdbc_name_to_const = {"TIMESTAMP": 93, "DECIMAL": 3, "NUMERIC": 2, "VARCHAR": 12}  # type: ignore[attr-defined]
    return module


@pytest.fixture
def odbc(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = fake_module("pyodbc", "qmark")
    monkeypatch.setitem(sys.modules, "pyodbc", module)
    return module


@pytest.fixture
def jdbc(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[types.ModuleType, Path]:
    module = fake_module("jaydebeapi", "qmark")
    monkeypatch.setitem(sys.modules, "jaydebeapi", module)
    jar = tmp_path / "xjdbc-1.0-jar-with-dependencies.jar"
    jar.write_bytes(b"PK")
    return module, jar


ODBC_CONFIG = {
    "sql_driver": "odbc",
    "sql_dsn": "DSN=xactly",
    "username": "odbc-user",
    "password": "odbc-Pass-9912",
    "pseudonymization_key": KEY,
    "page_size": 2,
}


def test_odbc_connects_with_credentials_as_arguments_and_binds_qmark_parameters(odbc: types.ModuleType) -> None:
    odbc.pages = [  # type: ignore[attr-defined]
        [(Decimal(1), STAMP, "a"), (Decimal(2), STAMP, "b")],
        [(Decimal(3), STAMP, "c")],
    ]
    result = run_tap(ODBC_CONFIG, streams={"xc_credit"})
    assert [r["CREDIT_ID"] for r in result.records("xc_credit")] == [1, 2, 3]
    assert odbc.connects == [  # type: ignore[attr-defined]
        (("DSN=xactly",), {"autocommit": True, "timeout": 30, "UID": "odbc-user", "PWD": "odbc-Pass-9912"})
    ]
    pages = [(sql, params) for sql, params in odbc.executed if "LIMIT" in sql]  # type: ignore[attr-defined]
    assert pages[0][1] is None  # nothing to bind on the first page without start_date
    sql, params = pages[1]
    assert '("MODIFIED_DATE" > ? OR ("MODIFIED_DATE" = ? AND ("CREDIT_ID" > ?)))' in sql
    assert params == (STAMP, STAMP, Decimal(2))


def test_odbc_lost_connection_by_sqlstate_08_reconnects_and_resumes(odbc: types.ModuleType) -> None:
    odbc.pages = [  # type: ignore[attr-defined]
        [(Decimal(1), STAMP, "a"), (Decimal(2), STAMP, "b")],
        odbc.Error("08S01", "[08S01] Communication link failure"),  # type: ignore[attr-defined]
        [(Decimal(3), STAMP, "c")],
    ]
    result = run_tap(ODBC_CONFIG, streams={"xc_credit"})
    assert [r["CREDIT_ID"] for r in result.records("xc_credit")] == [1, 2, 3]
    assert len(odbc.connects) == 2  # type: ignore[attr-defined]
    resumed = [params for sql, params in odbc.executed if "LIMIT" in sql][-1]  # type: ignore[attr-defined]
    assert resumed == (STAMP, STAMP, Decimal(2))


def test_odbc_sql_error_fails_at_once_naming_stream_and_table(odbc: types.ModuleType) -> None:
    odbc.pages = [odbc.ProgrammingError("42S22", "[42S22] Invalid column name")]  # type: ignore[attr-defined]
    result = run_tap(ODBC_CONFIG, streams={"xc_credit"}, expect_error=True)
    assert isinstance(result.error, QueryFailedError)
    assert str(result.error).startswith("stream 'xc_credit' (table XC_CREDIT): the query failed: ProgrammingError: ")
    assert len(odbc.connects) == 1  # type: ignore[attr-defined]


def test_odbc_refused_login_names_username_and_password(odbc: types.ModuleType) -> None:
    odbc.connect_errors = [odbc.Error("28000", "[28000] Login failed for user")]  # type: ignore[attr-defined]
    with pytest.raises(LoginRefusedError, match=r"Xactly refused the login: check `username`/`password` \("):
        TapXactly(config=ODBC_CONFIG)
    assert len(odbc.connects) == 1  # type: ignore[attr-defined]


def _jdbc_config(jar: Path) -> dict[str, Any]:
    return {
        "sql_driver": "jdbc",
        "jdbc_jar_path": str(jar),
        "username": "jdbc-user",
        "password": "jdbc-Pass-7781",
        "client_id": "client-4471",
        "consumer": "consumer-8832",
        "pseudonymization_key": KEY,
        "page_size": 2,
    }


def test_jdbc_connects_with_class_url_credentials_and_jar_and_binds_date_times_as_text(
    jdbc: tuple[types.ModuleType, Path],
) -> None:
    module, jar = jdbc
    module.pages = [[(Decimal(1), "2024-02-01 09:30:00", "a"), (Decimal(2), "2024-02-01 09:30:00", "b")], []]  # type: ignore[attr-defined]
    result = run_tap({**_jdbc_config(jar), "start_date": "2024-01-01"}, streams={"xc_credit"})
    assert [r["MODIFIED_DATE"] for r in result.records("xc_credit")] == ["2024-02-01T09:30:00+00:00"] * 2
    ((args, kwargs),) = module.connects  # type: ignore[attr-defined]
    assert args == (
        DEFAULT_JDBC_DRIVER_CLASS,
        "jdbc:xactly://api.xactlycorp.com:443/api?sslVerifyServer=true&clientId=client-4471&consumer=consumer-8832",
        ["jdbc-user", "jdbc-Pass-7781"],
        str(jar),
    )
    assert kwargs == {}
    first, second = [params for sql, params in module.executed if "LIMIT" in sql]  # type: ignore[attr-defined]
    assert first == ("2024-01-01 00:00:00",)
    assert second == ("2024-02-01 09:30:00", "2024-02-01 09:30:00", Decimal(2), "2024-01-01 00:00:00")


class _JavaValue:
    def __init__(self, text: str) -> None:
        self.text = text

    def toPlainString(self) -> str:  # noqa: N802 - java.math.BigDecimal
        return self.text

    def toString(self) -> str:  # noqa: N802 - java.sql.Timestamp
        return self.text


class _ResultSet:
    def __init__(self, value: _JavaValue | None) -> None:
        self.value = value

    def getBigDecimal(self, column: int) -> _JavaValue | None:  # noqa: N802 - java.sql.ResultSet
        return self.value

    def getTimestamp(self, column: int) -> _JavaValue | None:  # noqa: N802 - java.sql.ResultSet
        return self.value


def test_jdbc_numbers_and_timestamps_are_read_exactly(jdbc: tuple[types.ModuleType, Path]) -> None:
    module, jar = jdbc
    TapXactly(config=_jdbc_config(jar))
    ((_, _),) = module.connects  # type: ignore[attr-defined]
    assert jdbc_exact_decimal(_ResultSet(_JavaValue("12345678901234567890.0123456789")), 1) == Decimal(
        "12345678901234567890.0123456789"
    )
    assert jdbc_exact_decimal(_ResultSet(None), 1) is None
    # jaydebeapi's own converter would write 5 ms as .500000
    assert jdbc_exact_timestamp(_ResultSet(_JavaValue("2024-02-01 09:30:00.005")), 1) == "2024-02-01 09:30:00.005"
    connection = module.connect()  # type: ignore[attr-defined]
    from harborline_tap_xactly.drivers import _exact_jdbc_converters  # noqa: PLC0415

    _exact_jdbc_converters(module, connection)
    assert connection._converters == {
        93: jdbc_exact_timestamp,
        3: jdbc_exact_decimal,
        2: jdbc_exact_decimal,
        12: "jaydebeapi's own",
    }


def test_jdbc_refused_login_names_client_id_and_consumer_too(jdbc: tuple[types.ModuleType, Path]) -> None:
    module, jar = jdbc
    module.connect_errors = [module.DatabaseError("java.sql.SQLException: Invalid credentials")]  # type: ignore[attr-defined]
    with pytest.raises(LoginRefusedError, match=r"check `username`/`password` \(and `client_id`/`consumer`\)"):
        TapXactly(config=_jdbc_config(jar))


def test_jdbc_without_a_java_runtime_says_so(jdbc: tuple[types.ModuleType, Path]) -> None:
    module, jar = jdbc

    class JVMNotFoundException(Exception):  # noqa: N818 - the name JPype gives it when it finds no Java
        pass

    module.connect_errors = [JVMNotFoundException("No JVM shared library file (libjvm.so) found")]  # type: ignore[attr-defined]
    with pytest.raises(
        ConnectionLostError, match=r"^sql_driver 'jdbc' needs a Java runtime: install one or set JAVA_HOME"
    ):
        TapXactly(config=_jdbc_config(jar))


def test_jdbc_without_its_module_or_jar_is_one_line_each(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "jaydebeapi", None)  # not installed
    assert driver_for("jdbc").setup_errors({"jdbc_jar_path": str(tmp_path / "nope.jar")})[1] == (
        f"Setting 'jdbc_jar_path' names {str(tmp_path / 'nope.jar')!r}, which is not a file (the Xactly JDBC jar)."
    )
    errors = driver_for("jdbc").setup_errors({})
    assert errors == [
        (
            "Setting 'sql_driver' is 'jdbc', but its Python module 'jaydebeapi' is not installed: "
            "pip install 'harborline-tap-xactly[jdbc]' (or set 'sql_driver' to another transport)."
        ),
        (
            "Setting 'jdbc_jar_path' is required with sql_driver 'jdbc': the path of Xactly's "
            "xjdbc-<version>-jar-with-dependencies.jar."
        ),
    ]


def test_column_kinds_from_type_objects_and_python_types() -> None:
    module = fake_module("m", "qmark")
    driver = driver_for("odbc")
    assert driver.column_kind(module, ("A", "NUMBER", None, None, 18, 0, True)) == ColumnKind.INTEGER
    assert driver.column_kind(module, ("A", "NUMBER", None, None, 38, 0, True)) == ColumnKind.NUMBER  # beyond int64
    assert driver.column_kind(module, ("A", "NUMBER", None, None, 38, 10, True)) == ColumnKind.NUMBER
    assert driver.column_kind(module, ("A", "TIMESTAMP")) == ColumnKind.DATETIME
    assert driver.column_kind(module, ("A", Decimal, None, None, 10, 0, True)) == ColumnKind.INTEGER
    assert driver.column_kind(module, ("A", datetime.date)) == ColumnKind.DATE
    assert driver.column_kind(module, ("A", bool)) == ColumnKind.BOOLEAN


_LIVE = {
    name: os.environ.get(f"TAP_XACTLY_LIVE_{name.upper()}")
    for name in ("jdbc_jar_path", "username", "password", "client_id", "consumer")
}


@pytest.mark.live
@pytest.mark.skipif(not all(_LIVE.values()), reason="TAP_XACTLY_LIVE_* credentials are not set")
def test_live_jdbc_reads_xc_period() -> None:  # pragma: no cover - needs a tenant
    result = run_tap({"sql_driver": "jdbc", **_LIVE, "pseudonymization_key": KEY}, streams={"xc_period"})
    assert result.records("xc_period")
