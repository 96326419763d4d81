"""The five Clari streams, all filled from the same forecast exports.

Every stream is FULL_TABLE: each run re-exports the whole look-back (see the README) and re-emits everything, and a
target upserts on the keys. Field names are the vendor's, in snake_case. Entries are the large part: one per user,
week (time frame) and forecast field; the others are small look-up arrays of the same document, emitted once per
run per key even when several exports carry them.
"""

from __future__ import annotations

import abc
import time
from typing import TYPE_CHECKING, Any, ClassVar

from singer_sdk import typing as th

from harborline_tap_clari.client import ClariStream, ExportKey, Lookups

if TYPE_CHECKING:
    from collections.abc import Iterable

    from singer_sdk.helpers.types import Context

#: An entry's keys with a column of their own; every other key goes into ``extra``.
ENTRY_FIELDS: dict[str, str] = {
    "userId": "user_id",
    "fieldId": "field_id",
    "timeFrameId": "time_frame_id",
    "timePeriodId": "time_period_id",
    "forecastValue": "forecast_value",
    "quotaValue": "quota_value",
    "adjustmentValue": "adjustment_value",
    "currency": "currency",
    "isUpdated": "is_updated",
    "updatedBy": "updated_by",
    "updatedOn": "updated_on",
}
_KNOWN_KEYS = frozenset(ENTRY_FIELDS)
#: Identifiers are text in every table, whatever JSON type the vendor used, so keys join.
_ID_COLUMNS = frozenset({"user_id", "field_id", "time_frame_id", "time_period_id", "updated_by"})


def epoch_ms_to_datetime(value: Any) -> str | None:
    """Epoch milliseconds (a number, or its text) as an ISO 8601 UTC date-time; None when not a number."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        seconds, millis = divmod(int(value), 1000)
        moment = time.gmtime(seconds)  # the fastest exact way to calendar fields (this runs once per entry)
    except (TypeError, ValueError, ArithmeticError, OSError):
        return None
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03d+00:00" % (  # noqa: UP031 - measured faster than f-strings here
        moment.tm_year,
        moment.tm_mon,
        moment.tm_mday,
        moment.tm_hour,
        moment.tm_min,
        moment.tm_sec,
        millis,
    )


def _text(value: Any) -> str | None:
    """An identifier as text (``None`` stays ``None``)."""
    if value is None or isinstance(value, str):
        return value
    return str(value)


class ForecastEntriesStream(ClariStream):
    """One row per forecast, period, week, user and forecast field, with exact values."""

    name = "forecast_entries"
    primary_keys: ClassVar[list[str]] = ["forecast_id", "time_period_id", "time_frame_id", "user_id", "field_id"]
    replication_key = None
    schema: ClassVar[dict[str, Any]] = th.PropertiesList(
        th.Property("forecast_id", th.StringType, required=True, description="The Forecast Tab (from the Clari URL)."),
        th.Property("time_period_id", th.StringType, required=True, description="Fiscal quarter, e.g. 2026_Q1."),
        th.Property(
            "time_frame_id",
            th.StringType,
            required=True,
            description="The week; week ids repeat in every quarter, so join time_frames on the period too.",
        ),
        th.Property("user_id", th.StringType, required=True),
        th.Property("field_id", th.StringType, required=True, description="The forecast field (see fields)."),
        th.Property("forecast_value", th.NumberType, description="Exact decimal, never rounded through float."),
        th.Property("quota_value", th.NumberType, description="Exact decimal."),
        th.Property("adjustment_value", th.NumberType, description="Exact decimal."),
        th.Property("currency", th.StringType),
        th.Property("is_updated", th.BooleanType),
        th.Property("updated_by", th.StringType, description="Who last changed the value (as Clari identifies them)."),
        th.Property("updated_on", th.DateTimeType, description="Last change, from epoch milliseconds, UTC."),
        th.Property(
            "extra",
            th.ObjectType(additional_properties=True),
            description="Keys of the entry that have no column here (e.g. from other typesToExport), as sent.",
        ),
    ).to_dict()

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:  # noqa: ARG002 - no partitions
        """Stream every export's entries."""
        for key, entry in self.export_runner.entries(self):
            yield self.entry_record(key, entry)

    @staticmethod
    def entry_record(key: ExportKey, entry: dict[str, Any]) -> dict[str, Any]:
        """One entry as a record: known keys renamed, ids as text, ``updatedOn`` as a date-time, the rest in extra."""
        record: dict[str, Any] = {ENTRY_FIELDS.get(name, name): value for name, value in entry.items()}
        unknown = entry.keys() - _KNOWN_KEYS
        if unknown:
            record["extra"] = {name: record.pop(name) for name in unknown}
        record["forecast_id"] = key.forecast_id
        for column in _ID_COLUMNS:
            value = record.get(column)
            if value is not None and type(value) is not str:
                record[column] = str(value)
        if "updated_on" in record:
            record["updated_on"] = epoch_ms_to_datetime(record["updated_on"])
        if record.get("time_period_id") is None:
            record["time_period_id"] = key.period
        return record


class _LookupStream(ClariStream):
    """A stream filled from one look-up array of every export, each key emitted once per run."""

    replication_key = None
    #: Vendor key -> column.
    columns: ClassVar[dict[str, str]] = {}
    #: Columns that are identifiers (kept as text).
    id_columns: ClassVar[frozenset[str]] = frozenset()

    @abc.abstractmethod
    def items(self, key: ExportKey, lookups: Lookups) -> list[dict[str, Any]]:
        """The array of one export this stream reads (each look-up stream names its own)."""

    def shape(self, key: ExportKey, item: dict[str, Any]) -> dict[str, Any]:  # noqa: ARG002 - used by subclasses
        """One array item as a record."""
        record: dict[str, Any] = {}
        for name, column in self.columns.items():
            if name in item:
                value = item[name]
                record[column] = _text(value) if column in self.id_columns else value
        return record

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:  # noqa: ARG002 - no partitions
        """Each export's items, the first occurrence of every key only."""
        seen: set[tuple[Any, ...]] = set()
        for key, lookups in self.export_runner.lookups_of_every_export(self):
            for item in self.items(key, lookups):
                if not isinstance(item, dict):
                    continue
                record = self.shape(key, item)
                identity = tuple(record.get(k) for k in self.primary_keys)
                if any(part is None for part in identity) or identity in seen:
                    continue
                seen.add(identity)
                yield record


class UsersStream(_LookupStream):
    """The users of the exported forecasts (only those active today: Clari exports no former users)."""

    name = "users"
    primary_keys: ClassVar[list[str]] = ["user_id"]
    columns: ClassVar[dict[str, str]] = {
        "userId": "user_id",
        "email": "email",
        "name": "name",
        "crmId": "crm_id",
        "hierarchyId": "hierarchy_id",
        "hierarchyName": "hierarchy_name",
        "parentHierarchyId": "parent_hierarchy_id",
        "parentHierarchyName": "parent_hierarchy_name",
        "scopeId": "scope_id",
    }
    id_columns: ClassVar[frozenset[str]] = frozenset(
        {"user_id", "crm_id", "hierarchy_id", "parent_hierarchy_id", "scope_id"}
    )
    schema: ClassVar[dict[str, Any]] = th.PropertiesList(
        th.Property("user_id", th.StringType, required=True),
        th.Property("email", th.StringType, description="E-mail address (personal data, pseudonymized by default)."),
        th.Property("name", th.StringType, description="Full name (personal data, pseudonymized by default)."),
        th.Property("crm_id", th.StringType, description="The user's id in the CRM."),
        th.Property("hierarchy_id", th.StringType),
        th.Property("hierarchy_name", th.StringType),
        th.Property("parent_hierarchy_id", th.StringType),
        th.Property("parent_hierarchy_name", th.StringType),
        th.Property("scope_id", th.StringType),
    ).to_dict()

    def items(self, key: ExportKey, lookups: Lookups) -> list[dict[str, Any]]:  # noqa: ARG002
        """The export's ``users``."""
        return lookups.users


class FieldsStream(_LookupStream):
    """The forecast fields (rows of the Forecast Tab) of each forecast."""

    name = "fields"
    primary_keys: ClassVar[list[str]] = ["forecast_id", "field_id"]
    columns: ClassVar[dict[str, str]] = {"fieldId": "field_id", "fieldName": "field_name", "fieldType": "field_type"}
    id_columns: ClassVar[frozenset[str]] = frozenset({"field_id"})
    schema: ClassVar[dict[str, Any]] = th.PropertiesList(
        th.Property("forecast_id", th.StringType, required=True),
        th.Property("field_id", th.StringType, required=True),
        th.Property("field_name", th.StringType),
        th.Property("field_type", th.StringType),
    ).to_dict()

    def items(self, key: ExportKey, lookups: Lookups) -> list[dict[str, Any]]:  # noqa: ARG002
        """The export's ``fields``."""
        return lookups.fields

    def shape(self, key: ExportKey, item: dict[str, Any]) -> dict[str, Any]:
        """Fields belong to their forecast."""
        return {"forecast_id": key.forecast_id, **super().shape(key, item)}


class TimePeriodsStream(_LookupStream):
    """The exported fiscal quarters."""

    name = "time_periods"
    primary_keys: ClassVar[list[str]] = ["time_period_id"]
    columns: ClassVar[dict[str, str]] = {
        "timePeriodId": "time_period_id",
        "label": "label",
        "type": "type",
        "year": "year",
        "startDate": "start_date",
        "endDate": "end_date",
        "crmId": "crm_id",
    }
    id_columns: ClassVar[frozenset[str]] = frozenset({"time_period_id", "year", "crm_id"})
    schema: ClassVar[dict[str, Any]] = th.PropertiesList(
        th.Property("time_period_id", th.StringType, required=True, description="e.g. 2026_Q1."),
        th.Property("label", th.StringType),
        th.Property("type", th.StringType, description="e.g. quarter."),
        th.Property("year", th.StringType, description="The fiscal year's name, as text."),
        th.Property("start_date", th.DateType),
        th.Property("end_date", th.DateType),
        th.Property("crm_id", th.StringType),
    ).to_dict()

    def items(self, key: ExportKey, lookups: Lookups) -> list[dict[str, Any]]:  # noqa: ARG002
        """The export's ``timePeriods``."""
        return lookups.time_periods


class TimeFramesStream(_LookupStream):
    """The weeks of each exported quarter, including any that begins before the quarter's first day."""

    name = "time_frames"
    primary_keys: ClassVar[list[str]] = ["time_period_id", "time_frame_id"]
    columns: ClassVar[dict[str, str]] = {
        "timeFrameId": "time_frame_id",
        "startDate": "start_date",
        "endDate": "end_date",
    }
    id_columns: ClassVar[frozenset[str]] = frozenset({"time_frame_id"})
    schema: ClassVar[dict[str, Any]] = th.PropertiesList(
        th.Property("time_period_id", th.StringType, required=True, description="The quarter the week belongs to."),
        th.Property(
            "time_frame_id", th.StringType, required=True, description="The week; the same ids recur every quarter."
        ),
        th.Property("start_date", th.DateType),
        th.Property("end_date", th.DateType),
    ).to_dict()

    def items(self, key: ExportKey, lookups: Lookups) -> list[dict[str, Any]]:  # noqa: ARG002
        """The export's ``timeFrames``."""
        return lookups.time_frames

    def shape(self, key: ExportKey, item: dict[str, Any]) -> dict[str, Any]:
        """Weeks belong to the exported period (the vendor reuses week ids in every quarter)."""
        return {"time_period_id": key.period, **super().shape(key, item)}


#: forecast_entries first: it runs each export once and leaves the look-up arrays for the others.
STREAM_TYPES: list[type[ClariStream]] = [
    ForecastEntriesStream,
    UsersStream,
    FieldsStream,
    TimePeriodsStream,
    TimeFramesStream,
]

#: The stream names, for checks that run before the streams exist (a test keeps it in step with STREAM_TYPES).
STREAM_NAMES: tuple[str, ...] = ("forecast_entries", "users", "fields", "time_periods", "time_frames")

#: The personal data in Clari's exports: users' e-mail addresses and names. The default of the ``pseudonymize``
#: setting (an explicit ``pseudonymize: {}`` opts out). User ids, CRM ids and hierarchy ids are kept so tables join;
#: hierarchy names are team names in most tenants, but add them if yours names hierarchies after people.
PERSONAL_DATA_FIELDS: dict[str, list[str]] = {
    "users": ["email", "name"],
}
