"""XC-shaped tables in a real PostgreSQL, as a Connect export pipeline would copy them.

Column names are UPPERCASE (as the vendor reports them, so every identifier must be quoted), MODIFIED_DATE is a
`timestamp` without zone, ids are NUMBER(38,0), amounts NUMBER with ten decimals. Each table has its key, the
common audit columns, and a few columns of its own; hist tables add OBJECT_ID and VERSION.
"""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

import psycopg2

from harborline_tap_xactly.tables import TABLES, XCTable

#: A value with more digits than a float keeps: must arrive exactly.
EXACT_AMOUNT = Decimal("12345678901234567890.0123456789")
BASE_TIME = datetime.datetime(2024, 3, 1, 8, 0, 0)  # noqa: DTZ001 - MODIFIED_DATE carries no zone
READER = "xc_reader"
READER_PASSWORD = "zz-Reader-Pass-5531"

_EXTRA: dict[str, list[tuple[str, str]]] = {
    "XC_CREDIT": [("AMOUNT", "numeric(38,10)"), ("PARTICIPANT_ID", "numeric(38,0)"), ("INCENTIVE_DATE", "date")],
    "XC_USER": [("EMAIL", "varchar(255)"), ("ENABLED", "boolean")],
    "XC_PARTICIPANT": [
        ("FIRST_NAME", "varchar(100)"),
        ("MIDDLE_NAME", "varchar(100)"),
        ("LAST_NAME", "varchar(100)"),
        ("EMAIL", "varchar(255)"),
        ("HIRE_DATE", "date"),
    ],
    "XC_COMMISSION": [("AMOUNT", "numeric(38,10)")],
}


def columns_of(table: XCTable) -> list[tuple[str, str]]:
    """The columns of a test table: key, hist columns, audit columns, the table's own."""
    columns = [(k, "numeric(38,0) NOT NULL") for k in table.key if k != "VERSION"]
    if table.stream.endswith("_hist"):
        columns += [("OBJECT_ID", "numeric(38,0)"), ("VERSION", "numeric(38,0) NOT NULL")]
    columns += [
        ("NAME", "varchar(255)"),
        ("IS_ACTIVE", "varchar(1)"),
        ("CREATED_DATE", "timestamp"),
        ("MODIFIED_DATE", "timestamp NOT NULL"),
        ("CREATED_BY_ID", "numeric(38,0)"),
    ]
    columns += _EXTRA.get(table.table, [])
    return columns


def create_tables(connect: dict[str, Any], *, grant_reader: bool = True) -> None:
    """Create every XC table (empty); let the reader role select them when it exists."""
    with psycopg2.connect(**connect) as connection, connection.cursor() as cursor:
        for table in TABLES:
            body = ", ".join(f'"{name}" {kind}' for name, kind in columns_of(table))
            cursor.execute(f'CREATE TABLE "{table.table}" ({body})')
        if grant_reader:
            cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (READER,))
            if cursor.fetchone():
                cursor.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {READER}")
    connection.close()


def row(table: XCTable, n: int, modified: datetime.datetime, **values: Any) -> dict[str, Any]:
    """One row of a table: id n (version 1 for hist tables), its columns filled deterministically."""
    record: dict[str, Any] = {}
    for name, kind in columns_of(table):
        if name in table.key or name == "OBJECT_ID":
            record[name] = n
        elif name == "VERSION":
            record[name] = 1
        elif name == "MODIFIED_DATE":
            record[name] = modified
        elif name == "CREATED_DATE":
            record[name] = modified - datetime.timedelta(days=1)
        elif name == "NAME":
            record[name] = f"{table.table.lower()} {n}"
        elif name == "IS_ACTIVE":
            record[name] = "Y"
        elif name == "EMAIL":
            record[name] = f"person{n}@example.com"
        elif name.endswith("_NAME"):
            record[name] = f"{name.split('_')[0].title()}{n}"
        elif kind.startswith("numeric(38,10)"):
            record[name] = Decimal(n) + Decimal("0.5")
        elif kind.startswith("numeric"):
            record[name] = n * 10
        elif kind == "date":
            record[name] = datetime.date(2024, 1, 1) + datetime.timedelta(days=n)
        elif kind == "boolean":
            record[name] = n % 2 == 0
    record.update(values)
    return record


def insert(connect: dict[str, Any], table: str, rows: list[dict[str, Any]]) -> None:
    """Insert rows (dicts of column -> value) into a table."""
    if not rows:
        return
    names = list(rows[0])
    columns = ", ".join(f'"{n}"' for n in names)
    sql = f'INSERT INTO "{table}" ({columns}) VALUES ({", ".join(["%s"] * len(names))})'
    with psycopg2.connect(**connect) as connection, connection.cursor() as cursor:
        cursor.executemany(sql, [tuple(r[n] for n in names) for r in rows])
    connection.close()


def execute(connect: dict[str, Any], sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    """Run one statement (autocommit); the rows it returns, if any."""
    connection = psycopg2.connect(**connect)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall()) if cursor.description else []
    finally:
        connection.close()


def seed(connect: dict[str, Any], rows_per_table: int = 3) -> dict[str, int]:
    """A few rows in every table, a distinct MODIFIED_DATE each; XC_CREDIT row 1 holds EXACT_AMOUNT."""
    counts = {}
    for index, table in enumerate(TABLES):
        rows = [
            row(table, n, BASE_TIME + datetime.timedelta(minutes=index * 10 + n)) for n in range(1, rows_per_table + 1)
        ]
        if table.table == "XC_CREDIT":
            rows[0]["AMOUNT"] = EXACT_AMOUNT
        insert(connect, table.table, rows)
        counts[table.stream] = len(rows)
    return counts
