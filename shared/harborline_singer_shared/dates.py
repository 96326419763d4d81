"""Date-time parsing that every tap needs the same way.

APIs write ISO 8601 with a trailing `Z`, which Python 3.10's `fromisoformat` rejects, and some omit the offset
(documented as UTC). One parser, so bookmarks compare the same in every tap.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def parse_datetime(value: Any) -> datetime | None:
    """An ISO 8601 date-time as an aware UTC datetime; None for anything else (including blank text).

    A trailing `Z`/`z` means UTC; a value without an offset is taken as UTC.
    """
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text[-1] in "Zz":
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
