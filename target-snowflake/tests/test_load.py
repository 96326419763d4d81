"""The load primitives against the emulator: exact round trips, newest-wins upserts, constant statements."""

from __future__ import annotations

import datetime
import decimal
import json
from typing import Any

import pytest
from sf_helpers import WORKDIR, copy_rows, rows_of, table_load
from sf_live import both_accounts

from harborline_target_snowflake.connector import TypeOptions
from harborline_target_snowflake.load import CopyRejection, TableLoad, copy_rejection

TRICKY_SCHEMA = {
    "properties": {
        "id": {"type": "integer"},
        "s": {"type": ["string", "null"]},
        "n": {"type": ["number", "null"]},
        "b": {"type": ["boolean", "null"]},
        "j": {"type": ["object", "array", "null"]},
        "ts": {"type": ["string", "null"], "format": "date-time"},
        "d": {"type": ["string", "null"], "format": "date"},
    }
}
TRICKY_STRINGS = [
    "",
    None,
    "\\N",
    "\\",
    "\\\\t",
    "a\tb",
    "line1\nline2\r\nline3\r",
    '"quoted"',
    '""',
    '"',
    "tab\\there",
    "007",
    "1e5",
    "NULL",
    "null",
    " padded ",
    "ünïcödé ✓ 日本語 🚀",
    "\u2028\u2029",
    "a,b;c|d",
    "'single'",
    "\\N\t\\N",
    "ends with backslash\\",
]


def test_tricky_values_round_trip_exactly(sf: tuple[Any, str]) -> None:
    conn, schema = sf
    load = table_load(conn, schema, "tricky", TRICKY_SCHEMA, keys=["id"])
    rows = []
    for i, s in enumerate(TRICKY_STRINGS):
        rows.append([i, s, None, None, None, None, None, i])
    rows += [
        [100, "n", decimal.Decimal("123456789012345678901234567.123456789"), True, {"a": [1, "x\ty"]}, None, None, 100],
        [101, "n", decimal.Decimal("-0.000000001"), False, [None, {"k": "\\N"}], None, None, 101],
        [102, "n", 0, None, {"quote": '"', "nl": "\n"}, "2024-02-29T23:59:59.123456+00:00", "2024-02-29", 102],
        [103, "n", decimal.Decimal("1E+20"), None, {}, "2024-01-01T05:30:00+05:30", "0001-01-01", 103],
    ]
    result = load.load(conn, [copy_rows(rows[:10]), copy_rows(rows[10:])], rows=len(rows))
    assert result.rows == len(rows)
    got = rows_of(conn, schema, "tricky", ["id", "s", "n", "b", "j", "ts", "d"], "id")
    by_id = {r[0]: r for r in got}
    assert [by_id[i][1] for i in range(len(TRICKY_STRINGS))] == TRICKY_STRINGS
    assert by_id[100][2] == decimal.Decimal("123456789012345678901234567.123456789")
    assert by_id[101][2] == decimal.Decimal("-0.000000001")
    assert by_id[103][2] == decimal.Decimal(100000000000000000000)
    assert [by_id[i][3] for i in (100, 101, 102)] == [True, False, None]
    assert json.loads(by_id[100][4]) == {"a": [1, "x\ty"]}
    assert json.loads(by_id[101][4]) == [None, {"k": "\\N"}]
    assert json.loads(by_id[102][4]) == {"quote": '"', "nl": "\n"}
    assert json.loads(by_id[103][4]) == {}
    # The emulator keeps the instant, not the offset (Snowflake keeps both): compare instants.
    assert by_id[102][5] == datetime.datetime(2024, 2, 29, 23, 59, 59, 123456, tzinfo=datetime.UTC)
    assert by_id[103][5] == datetime.datetime(2024, 1, 1, 0, 0, tzinfo=datetime.UTC)
    assert by_id[102][6] == datetime.date(2024, 2, 29)
    assert by_id[103][6] == datetime.date(1, 1, 1)
    assert by_id[0][4] is None
    # The emulator returns a NULL TIMESTAMP_TZ as 1970-01-01 when fetched: ask the database instead.
    cur = conn.cursor()
    cur.execute(f'SELECT COUNT(*) FROM "{schema.upper()}"."TRICKY" WHERE "TS" IS NULL AND "D" IS NULL')
    assert cur.fetchone()[0] == len(TRICKY_STRINGS) + 2


KEYED = {"properties": {"id": {"type": "integer"}, "v": {"type": ["string", "null"]}}}


def test_upsert_newest_record_per_key_wins_within_and_across_batches(sf: tuple[Any, str]) -> None:
    conn, schema = sf
    load = table_load(conn, schema, "up", KEYED, keys=["id"])
    load.load(conn, [copy_rows([[1, "a1", 1], [2, "b1", 2], [1, "a2", 3], [1, "a3", 4]])], rows=4)
    load.load(conn, [copy_rows([[2, "b2", 5], [3, None, 6], [2, "b3", 7]])], rows=3)
    assert rows_of(conn, schema, "up", ["id", "v"], "id") == [(1, "a3"), (2, "b3"), (3, None)]


def test_append_only_keeps_every_record(sf: tuple[Any, str]) -> None:
    conn, schema = sf
    load = table_load(conn, schema, "app", KEYED, keys=["id"], mode="append-only")
    load.load(conn, [copy_rows([[1, "a"], [1, "b"]])], rows=2)
    load.load(conn, [copy_rows([[1, "c"]])], rows=1)
    assert sorted(r[1] for r in rows_of(conn, schema, "app", ["id", "v"], "id")) == ["a", "b", "c"]


def test_big_integers_and_decimals_keep_every_digit(sf: tuple[Any, str]) -> None:
    conn, schema = sf
    json_schema = {"properties": {"id": {"type": "integer"}, "m": {"type": "number", "multipleOf": 0.01}}}
    load = table_load(conn, schema, "big", json_schema, keys=["id"])
    # NUMBER(38,0) goes through a 64-bit integer in the emulator: the test stops at its limits (Snowflake: 38 digits).
    ids = [2**63 - 1, -(2**63), 0]
    load.load(
        conn,
        [copy_rows([[i, decimal.Decimal("999999999999999999999999999999999999.99"), n] for n, i in enumerate(ids)])],
    )
    got = rows_of(conn, schema, "big", ["id", "m"], "id")
    assert [r[0] for r in got] == sorted(ids)
    assert {r[1] for r in got} == {decimal.Decimal("999999999999999999999999999999999999.99")}


def test_timestamp_ntz_holds_utc(sf: tuple[Any, str]) -> None:
    conn, schema = sf
    json_schema = {"properties": {"id": {"type": "integer"}, "at": {"type": "string", "format": "date-time"}}}
    options = TypeOptions(timestamp_type="TIMESTAMP_NTZ")
    load = table_load(conn, schema, "ntz", json_schema, keys=["id"], options=options)
    load.load(conn, [copy_rows([[1, "2024-01-01T05:30:00+05:30", 1], [2, "2024-06-30T23:00:00-02:00", 2]])])
    got = rows_of(conn, schema, "ntz", ["id", "at"], "id")
    assert [r[1].tzinfo for r in got] == [None, None]  # TIMESTAMP_NTZ: wall-clock UTC, no offset
    assert [r[1].replace(tzinfo=datetime.UTC) for r in got] == [
        datetime.datetime(2024, 1, 1, 0, 0, tzinfo=datetime.UTC),
        datetime.datetime(2024, 7, 1, 1, 0, tzinfo=datetime.UTC),
    ]


def _wide_schema(n: int) -> dict[str, Any]:
    return {"properties": {"id": {"type": "integer"}, **{f"c{i}": {"type": ["string", "null"]} for i in range(n - 1)}}}


@both_accounts
@pytest.mark.parametrize("mode", ["upsert", "append-only"])
def test_statements_per_batch_do_not_depend_on_the_column_count(sf: tuple[Any, str], mode: str) -> None:
    conn, schema = sf
    counts = {}
    for n in (10, 200):
        load = table_load(conn, schema, f"w{n}_{mode.replace('-', '_')}", _wide_schema(n), keys=["id"], mode=mode)
        extra = [] if mode == "append-only" else [1]
        result = load.load(conn, [copy_rows([[1, *(["x"] * (n - 1)), *extra]])], rows=1)
        counts[n] = [s.split()[0] for s in result.statements]
    assert counts[10] == counts[200]
    assert counts[10] == ["PUT", "TRUNCATE", "COPY", "BEGIN", "MERGE" if mode == "upsert" else "INSERT", "COMMIT"]


def test_a_bad_value_rolls_the_whole_batch_back(sf: tuple[Any, str]) -> None:
    conn, schema = sf
    json_schema = {"properties": {"id": {"type": "integer"}, "n": {"type": ["number", "null"]}}}
    load = table_load(conn, schema, "bad", json_schema, keys=["id"])
    load.load(conn, [copy_rows([[1, 1, 1]])])
    from snowflake.connector import errors  # noqa: PLC0415

    from harborline_target_snowflake import connector  # noqa: PLC0415

    with pytest.raises(errors.ProgrammingError) as info:
        load.load(conn, [copy_rows([[1, 2, 1], [2, "not-a-number", 2]])])
    assert not connector.is_transient(info.value)
    assert rows_of(conn, schema, "bad", ["id", "n"], "id") == [(1, 1)]


def test_overwrite_replaces_rows_in_one_transaction_at_the_end(sf: tuple[Any, str]) -> None:
    conn, schema = sf
    first = table_load(conn, schema, "ow", KEYED, keys=["id"])
    first.load(conn, [copy_rows([[1, "old", 1], [2, "old", 2]])])
    # A failed earlier run left its side table behind, with rows of its own: they must not come back.
    cur = conn.cursor()
    cur.execute(f"CREATE TABLE {first.side} LIKE {first.target}")
    cur.execute(f'INSERT INTO {first.side} ("ID", "V", "__LOADED_AT") VALUES (99, \'stale\', CURRENT_TIMESTAMP())')
    load = table_load(conn, schema, "ow", KEYED, keys=["id"], mode="overwrite")
    load.load(conn, [copy_rows([[3, "new", 1], [3, "newer", 2]])])
    load.load(conn, [copy_rows([[4, "new", 3]])])
    # Until the end, readers see the previous rows.
    assert rows_of(conn, schema, "ow", ["id", "v"], "id") == [(1, "old"), (2, "old")]
    load.finalize_overwrite(conn)
    assert rows_of(conn, schema, "ow", ["id", "v"], "id") == [(3, "newer"), (4, "new")]


def test_overwrite_failing_at_the_swap_leaves_the_previous_rows(sf: tuple[Any, str]) -> None:
    conn, schema = sf
    first = table_load(conn, schema, "owf", KEYED, keys=["id"])
    first.load(conn, [copy_rows([[1, "old", 1]])])
    load = table_load(conn, schema, "owf", KEYED, keys=["id"], mode="overwrite")
    load.load(conn, [copy_rows([[3, "new", 1]])])
    conn.cursor().execute(f"DROP TABLE {load.side}")  # the side table vanished: the INSERT fails after the DELETE
    from snowflake.connector import errors  # noqa: PLC0415

    with pytest.raises(errors.ProgrammingError):
        load.finalize_overwrite(conn)
    assert rows_of(conn, schema, "owf", ["id", "v"], "id") == [(1, "old")]


def test_a_named_stage_takes_the_files(sf: tuple[Any, str]) -> None:
    conn, schema = sf
    conn.cursor().execute('CREATE STAGE IF NOT EXISTS "HL_TEST_STAGE"')
    load = table_load(conn, schema, "named", KEYED, keys=["id"])
    load.stage = '"HL_TEST_STAGE"'
    result = load.load(conn, [copy_rows([[1, "a", 1]])], rows=1)
    assert result.statements[0].split()[2].startswith('@"HL_TEST_STAGE"/harborline/')
    assert rows_of(conn, schema, "named", ["id", "v"], "id") == [(1, "a")]


class _FailingConnection:
    """A connection whose cursor raises `error` once, when the statement starting with `at` is sent."""

    def __init__(self, conn: Any, at: str, error: BaseException) -> None:
        self.conn, self.at, self.error = conn, at, error

    def cursor(self) -> Any:
        outer, cur = self, self.conn.cursor()
        real = cur.execute

        def execute(sql: str, *args: Any, **kwargs: Any) -> Any:
            if outer.error is not None and sql.startswith(outer.at):
                error, outer.error = outer.error, None
                raise error
            return real(sql, *args, **kwargs)

        cur.execute = execute
        return cur


@pytest.mark.parametrize("at", ["MERGE", "COMMIT", "COPY"])
def test_a_transient_fault_mid_batch_is_rolled_back_and_the_redo_is_exact(sf: tuple[Any, str], at: str) -> None:
    from snowflake.connector import errors  # noqa: PLC0415

    from harborline_target_snowflake import connector  # noqa: PLC0415

    conn, schema = sf
    load = table_load(conn, schema, "redo", KEYED, keys=["id"])
    load.load(conn, [copy_rows([[1, "a", 1], [2, "b", 2]])])
    batch = [copy_rows([[2, "b2", 3], [3, "c", 4], [3, "c2", 5]])]
    fault = errors.OperationalError(msg="connection reset by peer", errno=250003)
    with pytest.raises(errors.OperationalError) as info:
        load.load(_FailingConnection(conn, at, fault), batch, rows=3)
    assert connector.is_transient(info.value)
    assert rows_of(conn, schema, "redo", ["id", "v"], "id") == [(1, "a"), (2, "b")]  # nothing of the batch
    load.load(conn, batch, rows=3)  # the shared retry policy redoes the batch from the kept chunks
    assert rows_of(conn, schema, "redo", ["id", "v"], "id") == [(1, "a"), (2, "b2"), (3, "c2")]


def test_a_later_schema_in_an_overwrite_run_evolves_the_side_table_too(sf: tuple[Any, str]) -> None:
    from sf_helpers import plan_for  # noqa: PLC0415

    from harborline_target_snowflake import connector  # noqa: PLC0415

    conn, schema = sf
    load = table_load(conn, schema, "owe", KEYED, keys=["id"], mode="overwrite")
    load.load(conn, [copy_rows([[1, "a", 1]])])
    v2 = {"properties": {**KEYED["properties"], "extra": {"type": ["integer", "null"]}}}
    cur = conn.cursor()
    plan, ddl = plan_for(cur, schema, "owe", v2, ["id"])
    connector.apply_ddl(cur, ddl)
    side = connector.read_physical_columns(cur, schema, load.side_table)
    side_ddl = connector.plan_ddl(plan, schema, load.side_table, "owe", "__loaded_at", TypeOptions(), side)
    connector.apply_ddl(cur, side_ddl)
    later = TableLoad(
        schema, "owe", plan.source_columns, plan.key_columns, "__loaded_at", TypeOptions(), "overwrite", workdir=WORKDIR
    )
    later.prepare(cur, start=False)  # keeps the side table and its first batch
    later.load(conn, [copy_rows([[2, "b", 7, 1]])])
    later.finalize_overwrite(conn)
    assert rows_of(conn, schema, "owe", ["id", "v", "extra"], "id") == [(1, "a", None), (2, "b", 7)]


_HINT = "  If you would like to continue loading when an error is encountered, use other values such as 'SKIP_FILE' ..."


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        # The forms Snowflake raises with ON_ERROR=ABORT_STATEMENT (from public logs of real accounts).
        (
            [
                "Numeric value '7-' is not recognized",
                "  File 'a/b.csv', line 2, character 17",
                '  Row 1, column "ORDERS"["QUANTITY":4]',
            ],
            CopyRejection(1, "QUANTITY", 4),
        ),
        (
            [
                "Field delimiter ',' found while expecting record delimiter '\\n'",
                "  File 'x.csv.gz', line 3, character 1",
                '  Row 2 starts at line 2, column "T"["WE""IRD":12]',
            ],
            CopyRejection(2, 'WE"IRD', 12),
        ),
        (
            [
                "Number of columns in file (6) does not match that of the corresponding table (3)",
                "  File 'address.csv.gz', line 3, character 1",
                '  Row 7 starts at line 2, column "STG"[6]',
            ],
            CopyRejection(7, None, 6),
        ),
        (["Statement reached its statement or warehouse timeout of 60 second(s) and was canceled."], None),
    ],
)
def test_copy_rejection_reads_row_and_column_from_snowflakes_message(
    lines: list[str], expected: CopyRejection | None
) -> None:
    from snowflake.connector import errors  # noqa: PLC0415

    message = "\n".join([*lines, _HINT])
    assert copy_rejection(errors.ProgrammingError(msg=message, errno=100038, sqlstate="22018")) == expected


@pytest.mark.parametrize(
    ("value", "errno"),
    [("1e", 100038), ("1" * 30, 100039)],  # not a number; 30 integer digits do not fit NUMBER(38,9)
    ids=["not-a-number", "out-of-range"],
)
def test_a_refused_value_names_its_row_and_column(sf: tuple[Any, str], value: str, errno: int) -> None:
    """The emulator answers as Snowflake does (fakesnow_errors): the row counts records, not lines."""
    from snowflake.connector import errors  # noqa: PLC0415

    conn, schema = sf
    json_schema = {"properties": {"id": {"type": "integer"}, "s": {"type": "string"}, "n": {"type": "number"}}}
    load = table_load(conn, schema, "rej", json_schema, keys=["id"])
    with pytest.raises(errors.ProgrammingError) as info:
        load.load(conn, [copy_rows([[1, "a\nb\nc", 1, 1], [2, "x", 2, 2], [3, "y", value, 3]])])
    assert info.value.errno == errno
    rejection = copy_rejection(info.value)
    assert rejection == CopyRejection(3, "N", 3)
    column = load.column_at(rejection)
    assert column is not None
    assert column.name == "n"
