"""Fiscal quarters: the current quarter from today's date, across year ends, for several start months and namings."""

from __future__ import annotations

from datetime import date

import pytest

from harborline_tap_clari.periods import FiscalCalendar, Quarter, parse_period


@pytest.mark.parametrize(
    ("start_month", "named_by", "day", "expected"),
    [
        # The example: start month 2, named by the year the fiscal year ends in.
        (2, "end", date(2025, 1, 15), "2025_Q4"),
        (2, "end", date(2025, 2, 1), "2026_Q1"),
        (2, "end", date(2025, 1, 31), "2025_Q4"),
        (2, "start", date(2025, 1, 15), "2024_Q4"),
        (2, "start", date(2025, 2, 1), "2025_Q1"),
        # Calendar fiscal years: both namings agree.
        (1, "end", date(2024, 12, 31), "2024_Q4"),
        (1, "end", date(2025, 1, 1), "2025_Q1"),
        (1, "start", date(2025, 1, 1), "2025_Q1"),
        (1, "start", date(2025, 7, 1), "2025_Q3"),
        # February-to-January ... and other common starts, each across the calendar and the fiscal year end.
        (4, "end", date(2025, 3, 31), "2025_Q4"),
        (4, "end", date(2025, 4, 1), "2026_Q1"),
        (4, "end", date(2024, 12, 31), "2025_Q3"),
        (4, "end", date(2025, 1, 1), "2025_Q4"),
        (4, "start", date(2025, 3, 31), "2024_Q4"),
        (4, "start", date(2025, 4, 1), "2025_Q1"),
        (7, "end", date(2025, 6, 30), "2025_Q4"),
        (7, "end", date(2025, 7, 1), "2026_Q1"),
        (7, "end", date(2025, 12, 31), "2026_Q2"),
        (7, "end", date(2026, 1, 1), "2026_Q3"),
        (7, "start", date(2026, 1, 1), "2025_Q3"),
        (11, "end", date(2025, 10, 31), "2025_Q4"),
        (11, "end", date(2025, 11, 1), "2026_Q1"),
        (11, "end", date(2025, 12, 31), "2026_Q1"),
        (11, "end", date(2026, 1, 1), "2026_Q1"),
        (11, "end", date(2026, 2, 1), "2026_Q2"),
        (11, "start", date(2026, 1, 1), "2025_Q1"),
        (12, "end", date(2025, 11, 30), "2025_Q4"),
        (12, "end", date(2025, 12, 1), "2026_Q1"),
        (12, "start", date(2025, 12, 1), "2025_Q1"),
        (12, "start", date(2026, 2, 28), "2025_Q1"),
        (12, "start", date(2026, 3, 1), "2025_Q2"),
    ],
)
def test_quarter_of_a_day(start_month: int, named_by: str, day: date, expected: str) -> None:
    assert FiscalCalendar(start_month, named_by).quarter_of(day).period_id == expected


@pytest.mark.parametrize("start_month", range(1, 13))
@pytest.mark.parametrize("named_by", ["end", "start"])
def test_every_day_of_a_quarter_maps_back_to_it(start_month: int, named_by: str) -> None:
    calendar = FiscalCalendar(start_month, named_by)
    quarter = calendar.quarter_of(date(2025, 6, 15))
    for _ in range(8):
        first, last = calendar.first_day(quarter), calendar.last_day(quarter)
        assert calendar.quarter_of(first) == quarter
        assert calendar.quarter_of(last) == quarter
        assert calendar.quarter_of(date.fromordinal(first.toordinal() - 1)) == quarter.previous()
        assert 89 <= (last - first).days + 1 <= 92
        quarter = quarter.previous()


def test_look_back_is_the_current_quarter_and_the_ones_before_oldest_first() -> None:
    calendar = FiscalCalendar(2, "end")
    assert [q.period_id for q in calendar.look_back(date(2025, 2, 1), 2)] == ["2025_Q3", "2025_Q4", "2026_Q1"]
    assert [q.period_id for q in calendar.look_back(date(2025, 2, 1), 0)] == ["2026_Q1"]
    assert [q.period_id for q in FiscalCalendar().look_back(date(2025, 1, 5), 1)] == ["2024_Q4", "2025_Q1"]


def test_parse_period() -> None:
    assert parse_period("2025_Q3") == Quarter(2025, 3)
    for bad in ("2025Q3", "2025_Q5", "2025_Q0", "25_Q1", "2025_q1", "", "2025_Q1 "):
        with pytest.raises(ValueError, match="YYYY_QN"):
            parse_period(bad)


@pytest.mark.parametrize(("month", "named_by"), [(0, "end"), (13, "end"), (1, "middle")])
def test_impossible_calendars_are_refused(month: int, named_by: str) -> None:
    with pytest.raises(ValueError, match=r"start month|named by"):
        FiscalCalendar(month, named_by)
