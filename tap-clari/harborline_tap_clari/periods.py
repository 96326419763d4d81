"""Fiscal quarters as Clari names them (``YYYY_QN``), and which of them a run exports.

Clari's forecast exports are per fiscal quarter. Fiscal years are customer-specific: they start in any month
(``fiscal_year_start_month``) and are named after the calendar year in which they end (the usual convention,
``fiscal_year_named_by: end``) or in which they start (``start``). With start month 2 and ``end``, the fiscal year
February 2025 - January 2026 is FY2026, so 2025-01-15 is in ``2025_Q4`` and 2025-02-01 in ``2026_Q1``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

__all__ = [
    "NAMED_BY_END",
    "NAMED_BY_START",
    "PERIOD_PATTERN",
    "FiscalCalendar",
    "Quarter",
    "parse_period",
]

NAMED_BY_END = "end"
NAMED_BY_START = "start"
#: What ``time_periods`` entries must look like (the vendor's ``timePeriodId`` of a quarter).
PERIOD_PATTERN = r"^[0-9]{4}_Q[1-4]$"
_PERIOD_RE = re.compile(PERIOD_PATTERN)


@dataclass(frozen=True, order=True)
class Quarter:
    """One fiscal quarter: its fiscal year's name (a calendar year) and its number, 1-4."""

    year: int
    number: int

    @property
    def period_id(self) -> str:
        """Clari's id of the quarter, e.g. ``2026_Q1``."""
        return f"{self.year:04d}_Q{self.number}"

    def previous(self) -> Quarter:
        """The quarter before this one."""
        if self.number == 1:
            return Quarter(self.year - 1, 4)
        return Quarter(self.year, self.number - 1)

    def __str__(self) -> str:
        return self.period_id


def parse_period(text: str) -> Quarter:
    """Parse ``YYYY_QN``; raises ValueError for anything else."""
    if not isinstance(text, str) or not _PERIOD_RE.fullmatch(text):
        raise ValueError(f"{text!r} is not a fiscal quarter of the form YYYY_QN, e.g. 2025_Q3")
    return Quarter(int(text[:4]), int(text[-1]))


@dataclass(frozen=True)
class FiscalCalendar:
    """A customer's fiscal calendar: the month its fiscal year starts and how fiscal years are named."""

    start_month: int = 1
    named_by: str = NAMED_BY_END

    def __post_init__(self) -> None:
        """Reject impossible calendars."""
        if not 1 <= self.start_month <= 12:
            raise ValueError("the fiscal year's start month must be 1-12")
        if self.named_by not in {NAMED_BY_END, NAMED_BY_START}:
            raise ValueError(f"fiscal years are named by 'end' or 'start', not {self.named_by!r}")

    def quarter_of(self, day: date) -> Quarter:
        """The fiscal quarter that contains ``day``."""
        months_in = (day.month - self.start_month) % 12
        start_year = day.year if day.month >= self.start_month else day.year - 1
        # A fiscal year starting in January starts and ends in the same calendar year: both namings agree.
        name = start_year + 1 if self.named_by == NAMED_BY_END and self.start_month != 1 else start_year
        return Quarter(name, months_in // 3 + 1)

    def first_day(self, quarter: Quarter) -> date:
        """The first calendar day of ``quarter``."""
        start_year = quarter.year - 1 if self.named_by == NAMED_BY_END and self.start_month != 1 else quarter.year
        month_index = self.start_month - 1 + 3 * (quarter.number - 1)
        return date(start_year + month_index // 12, month_index % 12 + 1, 1)

    def last_day(self, quarter: Quarter) -> date:
        """The last calendar day of ``quarter``."""
        following = self.first_day(
            Quarter(quarter.year + 1, 1) if quarter.number == 4 else Quarter(quarter.year, quarter.number + 1)
        )
        return date.fromordinal(following.toordinal() - 1)

    def look_back(self, today: date, quarters_back: int) -> list[Quarter]:
        """The current quarter and the ``quarters_back`` before it, oldest first."""
        if quarters_back < 0:
            raise ValueError("quarters_back must be 0 or more")
        quarters = [self.quarter_of(today)]
        for _ in range(quarters_back):
            quarters.append(quarters[-1].previous())
        return quarters[::-1]
