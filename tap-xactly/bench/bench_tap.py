"""Throughput and memory of tap-xactly on one large XC_CREDIT-shaped table, against a plain psycopg2 loop.

    python bench/bench_tap.py [--rows 1000000] [--page-size 10000] [--runs 1]

Starts a throwaway PostgreSQL (the shared ``PostgresServer``), creates every XC table (XC_CREDIT with 60 columns:
ids, exact amounts, text, dates; the others empty) and fills XC_CREDIT with ``--rows`` rows, seven rows per
MODIFIED_DATE (ties straddle every page boundary). Then runs, each in its own process with stdout to /dev/null:

* the tap CLI (``tap-xactly --config ...``, ``sql_driver: postgresql``, ``page_size`` 10,000), and
* a plain loop (this file with --plain-loop): one psycopg2 connection running the same keyset queries (built by the
  tap's own ``page_query``) and printing each row as one ``json.dumps`` line: the limit of "query and print" here.

It reports wall time, rows/s and peak RSS (os.wait4 rusage of the child). Goal (issue 15): at least half the plain
loop's rows/s, and memory flat (one page at most in memory).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import tempfile
import time
from pathlib import Path

from harborline_singer_shared.testing.bench import run_measured
from harborline_singer_shared.testing.postgres import PostgresServer
from harborline_tap_xactly.keyset import Keyset, page_query
from harborline_tap_xactly.streams import SQL_PERSONAL_DATA_FIELDS
from harborline_tap_xactly.tables import TABLES

DATABASE = "xc_bench"
PSEUDONYMIZATION_KEY = "bench-pseudonymization-key-0123456789"


def credit_columns() -> list[tuple[str, str]]:
    """60 columns shaped like XC_CREDIT: key, audit columns, ids, amounts, text and dates."""
    columns = [
        ("CREDIT_ID", "numeric(38,0) NOT NULL"),
        ("MODIFIED_DATE", "timestamp NOT NULL"),
        ("CREATED_DATE", "timestamp"),
        ("NAME", "varchar(255)"),
        ("IS_ACTIVE", "varchar(1)"),
    ]
    columns += [(f"ID_{n:02d}", "numeric(38,0)") for n in range(15)]
    columns += [(f"AMOUNT_{n:02d}", "numeric(38,10)") for n in range(15)]
    columns += [(f"TEXT_{n:02d}", "varchar(100)") for n in range(15)]
    columns += [(f"DATE_{n:02d}", "date") for n in range(10)]
    assert len(columns) == 60
    return columns


def fill(server: PostgresServer, rows: int) -> None:
    """Every XC table, XC_CREDIT with ``rows`` rows generated in the server."""
    statements = []
    for table in TABLES:
        if table.table == "XC_CREDIT":
            continue
        cols = [f'"{k}" numeric(38,0)' for k in table.key] + ['"MODIFIED_DATE" timestamp']
        cols += [f'"{name}" text' for name in SQL_PERSONAL_DATA_FIELDS.get(table.stream, [])]  # the default privacy
        statements.append(f'CREATE TABLE "{table.table}" ({", ".join(cols)})')
    columns = credit_columns()
    statements.append(f'CREATE TABLE "XC_CREDIT" ({", ".join(f"{chr(34)}{n}{chr(34)} {t}" for n, t in columns)})')
    values = []
    for name, kind in columns:
        if name == "CREDIT_ID":
            values.append("g")
        elif name == "MODIFIED_DATE":
            values.append("timestamp '2024-01-01' + (g / 7) * interval '1 second'")
        elif name == "CREATED_DATE":
            values.append("timestamp '2023-01-01' + g * interval '1 second'")
        elif name == "IS_ACTIVE":
            values.append("'Y'")
        elif kind.startswith("numeric(38,10)"):
            values.append("(g * 1.0123456789)::numeric(38,10)")
        elif kind.startswith("numeric"):
            values.append("g % 1000")
        elif kind == "date":
            values.append("date '2024-01-01' + (g % 365)")
        else:
            values.append("'text value ' || g")
    statements.append(f'INSERT INTO "XC_CREDIT" SELECT {", ".join(values)} FROM generate_series(1, {rows}) AS g')
    statements.append('ANALYZE "XC_CREDIT"')
    server.execute(statements, dbname=DATABASE)


def plain_loop(dsn: str, page_size: int) -> None:
    """The same keyset queries with one psycopg2 connection; one JSON line per row."""
    import psycopg2  # noqa: PLC0415

    connection = psycopg2.connect(dsn)
    connection.autocommit = True
    cursor = connection.cursor()
    cursor.execute('SELECT * FROM "XC_CREDIT" WHERE 1 = 0')
    names = [c[0] for c in cursor.description]
    date_index, key_index = names.index("MODIFIED_DATE"), names.index("CREDIT_ID")
    after = None
    out = sys.stdout
    count = 0
    while True:
        query = page_query(
            table="XC_CREDIT",
            columns=names,
            replication_key="MODIFIED_DATE",
            key=["CREDIT_ID"],
            page_size=page_size,
            paramstyle="pyformat",
            after=after,
        )
        cursor.execute(query.sql, query.params or None)
        rows = cursor.fetchall()
        for row in rows:
            out.write(json.dumps(dict(zip(names, row, strict=True)), default=str) + "\n")
        count += len(rows)
        if rows:
            after = Keyset(rows[-1][date_index], (rows[-1][key_index],))
        if len(rows) < page_size:
            break
    out.flush()
    print(f"PLAIN_RECORDS {count}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--page-size", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=1, help="best of N for each side")
    parser.add_argument("--plain-loop", metavar="DSN", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain_loop:
        plain_loop(args.plain_loop, args.page_size)
        return

    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        tmpdir = Path(tmp)
        server = stack.enter_context(PostgresServer())
        server.create_database(DATABASE)
        started = time.perf_counter()
        fill(server, args.rows)
        print(f"filled XC_CREDIT with {args.rows} rows in {time.perf_counter() - started:.1f} s", flush=True)
        dsn = server.dsn(DATABASE)
        config = tmpdir / "config.json"
        config.write_text(
            json.dumps(
                {
                    "sql_driver": "postgresql",
                    "sql_dsn": dsn,
                    "page_size": args.page_size,
                    "pseudonymization_key": PSEUDONYMIZATION_KEY,
                }
            ),
            encoding="utf-8",
        )
        tap_cmd = [str(Path(sys.executable).with_name("tap-xactly")), "--config", str(config)]
        if not Path(tap_cmd[0]).exists():
            tap_cmd = ["tap-xactly", "--config", str(config)]
        plain_cmd = [sys.executable, __file__, "--plain-loop", dsn, "--page-size", str(args.page_size)]
        tap_best = plain_best = None
        for _ in range(args.runs):
            seconds, rss, err = run_measured(tap_cmd, stderr_path=tmpdir / "tap.err")
            counts = re.findall(r'"metric":"record_count","value":(\d+),"tags":\{"stream":"xc_credit"', err)
            records = sum(int(c) for c in counts)
            if tap_best is None or seconds < tap_best[0]:
                tap_best = (seconds, rss, records)
            seconds, rss, err = run_measured(plain_cmd, stderr_path=tmpdir / "plain.err")
            match = re.search(r"PLAIN_RECORDS (\d+)", err)
            records = int(match.group(1)) if match else 0
            if plain_best is None or seconds < plain_best[0]:
                plain_best = (seconds, rss, records)

    if tap_best is None or plain_best is None:
        raise SystemExit("no runs")
    print(f"XC_CREDIT, 60 columns, {args.rows} rows, page_size {args.page_size}")
    print(f"| {'reader':<20} | {'rows':>9} | {'seconds':>8} | {'rows/s':>10} | {'peak RSS MiB':>12} |")
    print(f"|{'-' * 22}|{'-' * 11}|{'-' * 10}|{'-' * 12}|{'-' * 14}|")
    for name, (seconds, rss, records) in (("tap-xactly", tap_best), ("plain psycopg2 loop", plain_best)):
        print(f"| {name:<20} | {records:>9} | {seconds:>8.2f} | {records / seconds:>10.0f} | {rss:>12.1f} |")
    ratio = (tap_best[2] / tap_best[0]) / (plain_best[2] / plain_best[0])
    print(f"tap / plain loop rows/s: {ratio:.2f} (goal: at least 0.5)")
    if tap_best[2] != plain_best[2]:
        print(f"WARNING: row counts differ ({tap_best[2]} vs {plain_best[2]})")


if __name__ == "__main__":
    main()
