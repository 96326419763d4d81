"""Record shaping: entries renamed, ids as text, epoch milliseconds as UTC date-times, unknown keys in extra."""

from __future__ import annotations

from decimal import Decimal

import pytest

from harborline_tap_clari.client import ExportKey
from harborline_tap_clari.streams import ForecastEntriesStream, epoch_ms_to_datetime

KEY = ExportKey("net_bookings", "2025_Q1")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, "1970-01-01T00:00:00.000+00:00"),
        (1735689600123, "2025-01-01T00:00:00.123+00:00"),
        ("1735689600123", "2025-01-01T00:00:00.123+00:00"),
        (Decimal(1735689600999), "2025-01-01T00:00:00.999+00:00"),
        (-1, "1969-12-31T23:59:59.999+00:00"),
        (None, None),
        (True, None),
        ("soon", None),
        (10**30, None),
    ],
)
def test_epoch_ms_to_datetime(value: object, expected: str | None) -> None:
    assert epoch_ms_to_datetime(value) == expected


def test_entry_record_shapes_an_entry() -> None:
    entry = {
        "userId": 42,
        "fieldId": "forecast_call",
        "timeFrameId": 7,
        "timePeriodId": "2025_Q1",
        "forecastValue": Decimal("12345678901234567.89"),
        "quotaValue": 100,
        "adjustmentValue": None,
        "currency": "USD",
        "isUpdated": False,
        "updatedBy": 9,
        "updatedOn": 1735689600123,
        "crmClosedValue": Decimal("1.5"),
        "forecast_id": "not ours",
    }
    assert ForecastEntriesStream.entry_record(KEY, entry) == {
        "forecast_id": "net_bookings",
        "user_id": "42",
        "field_id": "forecast_call",
        "time_frame_id": "7",
        "time_period_id": "2025_Q1",
        "forecast_value": Decimal("12345678901234567.89"),
        "quota_value": 100,
        "adjustment_value": None,
        "currency": "USD",
        "is_updated": False,
        "updated_by": "9",
        "updated_on": "2025-01-01T00:00:00.123+00:00",
        "extra": {"crmClosedValue": Decimal("1.5"), "forecast_id": "not ours"},
    }


def test_an_entry_without_a_period_takes_the_exported_one() -> None:
    record = ForecastEntriesStream.entry_record(KEY, {"userId": "u1", "fieldId": "f", "timeFrameId": "w01"})
    assert record["time_period_id"] == "2025_Q1"
    assert "extra" not in record
