from __future__ import annotations

from datetime import UTC, datetime

import pytest

from harborline_singer_shared.dates import parse_datetime


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2023-02-10T16:44:45.084Z", datetime(2023, 2, 10, 16, 44, 45, 84000, tzinfo=UTC)),
        ("2023-02-10T18:44:45+02:00", datetime(2023, 2, 10, 16, 44, 45, tzinfo=UTC)),
        ("2023-02-10T16:44:45", datetime(2023, 2, 10, 16, 44, 45, tzinfo=UTC)),
        (" 2023-02-10T16:44:45z ", datetime(2023, 2, 10, 16, 44, 45, tzinfo=UTC)),
    ],
)
def test_parses_iso_to_aware_utc(text: str, expected: datetime) -> None:
    parsed = parse_datetime(text)
    assert parsed == expected
    assert parsed is not None
    assert parsed.utcoffset() == UTC.utcoffset(None)


@pytest.mark.parametrize("value", [None, "", "   ", "yesterday", 1700000000, True, "2023-13-01T00:00:00Z"])
def test_anything_else_is_none(value: object) -> None:
    assert parse_datetime(value) is None
