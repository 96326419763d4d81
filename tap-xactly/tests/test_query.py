"""The page query in every DB-API paramstyle, and the STATE codec of a keyset position."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest

from harborline_tap_xactly.keyset import Keyset, page_query

STAMP = datetime.datetime(2024, 3, 1, 8, 0, 0, 5000)  # noqa: DTZ001 - the source writes no zone


def _query(paramstyle: str) -> tuple[str, object]:
    query = page_query(
        table="XC_QUOTA_HIST",
        columns=["QUOTA_ID", "VERSION", "MODIFIED_DATE"],
        replication_key="MODIFIED_DATE",
        key=["QUOTA_ID", "VERSION"],
        page_size=500,
        paramstyle=paramstyle,
        after=Keyset(STAMP, (Decimal(7), 2)),
        start=STAMP,
    )
    return query.sql, query.params


@pytest.mark.parametrize(
    ("paramstyle", "marks", "params"),
    [
        ("qmark", ["?"] * 6, (STAMP, STAMP, Decimal(7), Decimal(7), 2, STAMP)),
        ("format", ["%s"] * 6, (STAMP, STAMP, Decimal(7), Decimal(7), 2, STAMP)),
        ("numeric", [f":{n}" for n in range(1, 7)], (STAMP, STAMP, Decimal(7), Decimal(7), 2, STAMP)),
        (
            "named",
            [f":p{n}" for n in range(1, 7)],
            {"p1": STAMP, "p2": STAMP, "p3": Decimal(7), "p4": Decimal(7), "p5": 2, "p6": STAMP},
        ),
        (
            "pyformat",
            [f"%(p{n})s" for n in range(1, 7)],
            {"p1": STAMP, "p2": STAMP, "p3": Decimal(7), "p4": Decimal(7), "p5": 2, "p6": STAMP},
        ),
    ],
)
def test_the_row_comparison_is_written_out_in_every_paramstyle(
    paramstyle: str, marks: list[str], params: object
) -> None:
    sql, bound = _query(paramstyle)
    m = marks
    assert sql == (
        'SELECT "QUOTA_ID", "VERSION", "MODIFIED_DATE" FROM "XC_QUOTA_HIST" '
        'WHERE "MODIFIED_DATE" IS NOT NULL AND "QUOTA_ID" IS NOT NULL AND "VERSION" IS NOT NULL '
        f'AND ("MODIFIED_DATE" > {m[0]} OR ("MODIFIED_DATE" = {m[1]} AND ("QUOTA_ID" > {m[2]} OR ("QUOTA_ID" = {m[3]} '
        f'AND ("VERSION" > {m[4]}))))) AND "MODIFIED_DATE" >= {m[5]} '
        'ORDER BY "MODIFIED_DATE", "QUOTA_ID", "VERSION" LIMIT 500'
    )
    assert bound == params
    assert "OFFSET" not in sql


def test_unquoted_identifiers_and_an_unknown_paramstyle() -> None:
    query = page_query(
        table="XC_ROLE",
        columns=["ROLE_ID", "MODIFIED_DATE"],
        replication_key="MODIFIED_DATE",
        key=["ROLE_ID"],
        page_size=10,
        paramstyle="qmark",
        quoted=False,
    )
    assert query.sql == (
        "SELECT ROLE_ID, MODIFIED_DATE FROM XC_ROLE WHERE MODIFIED_DATE IS NOT NULL AND ROLE_ID IS NOT NULL "
        "ORDER BY MODIFIED_DATE, ROLE_ID LIMIT 10"
    )
    assert query.params == ()
    with pytest.raises(ValueError, match="unsupported DB-API paramstyle 'oracle'"):
        page_query(table="X", columns=["A"], replication_key="A", key=["A"], page_size=1, paramstyle="oracle")


def test_a_keyset_round_trips_through_state_with_its_types() -> None:
    position = Keyset(STAMP, (Decimal("7.50"), 3, "text", datetime.date(2024, 1, 2)))
    state = position.to_state()
    assert state == {
        "modified_date": {"datetime": "2024-03-01T08:00:00.005000"},
        "key": [{"decimal": "7.50"}, 3, "text", {"date": "2024-01-02"}],
    }
    assert Keyset.from_state(state) == position
    assert Keyset.from_state({"replication_key_value": "x"}) is None
