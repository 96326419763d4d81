"""The streams of the tap: one per XC table (SQL), one per Incent object (SOAP), and their personal data.

Streams are built from data, not one class per table: the XC tables differ only in name and key (tables.py), and
their columns come from the connection.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from harborline_tap_xactly.client import SqlSource, XactlyTableStream
from harborline_tap_xactly.tables import TABLES

if TYPE_CHECKING:
    from singer_sdk.tap_base import Tap

__all__ = ["PERSONAL_DATA_FIELDS", "SOAP_PERSONAL_DATA_FIELDS", "SQL_PERSONAL_DATA_FIELDS", "table_streams"]

#: People's names and e-mail addresses in the XC tables (column names as the source reports them).
SQL_PERSONAL_DATA_FIELDS: dict[str, list[str]] = {
    "xc_user": ["NAME", "EMAIL"],
    "xc_participant": ["FIRST_NAME", "MIDDLE_NAME", "LAST_NAME", "EMAIL"],
}
#: The same for the SOAP PersonWSO (field names as the WSDL declares them).
SOAP_PERSONAL_DATA_FIELDS: dict[str, list[str]] = {
    "soap_person": ["firstName", "middleName", "lastName", "email"],
}
#: Every personal-data field of the tap; a run pseudonymizes those of the streams it has (see TapXactly).
PERSONAL_DATA_FIELDS: dict[str, list[str]] = {**SQL_PERSONAL_DATA_FIELDS, **SOAP_PERSONAL_DATA_FIELDS}


def table_streams(
    tap: Tap, source: Callable[[], SqlSource], key_overrides: Mapping[str, Sequence[str]] | None = None
) -> list[XactlyTableStream]:
    """One stream per XC table, with ``key_overrides`` applied."""
    overrides = key_overrides or {}
    streams = []
    for table in TABLES:
        key = overrides.get(table.stream)
        chosen = replace(table, key=tuple(str(k) for k in key)) if key else table
        streams.append(XactlyTableStream(tap, chosen, source))
    return streams
