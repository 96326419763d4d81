"""The ``data`` stream: exportData for each chosen version, for the allow-list of accounts only.

A child of ``versions`` (which chooses the versions, see ``VersionsStream.export_plan``). For each version not yet in
the state (or listed in ``reexport_versions``) one exportData call asks for the accounts of ``account_codes`` only;
its CSV output is parsed as it arrives (:func:`~harborline_tap_adaptive.xmlapi.iter_output_lines` feeding
:mod:`csv`) and unpivoted into one record per non-empty cell. A row whose account code is not in ``account_codes`` is
dropped before it becomes a record, whatever the server sent: those accounts hold material non-public information.

A version enters the state (id, name, time) only after all its rows were emitted, and STATE is written after each
version, so an interrupted run redoes at most the version in flight.
"""

from __future__ import annotations

import csv
import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, ClassVar

from singer_sdk import typing as th
from singer_sdk.exceptions import FatalAPIError

from harborline_tap_adaptive.client import AdaptiveStream
from harborline_tap_adaptive.streams import VersionsStream
from harborline_tap_adaptive.xmlapi import element, iter_output_lines

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from xml.etree.ElementTree import Element

    from singer_sdk.helpers.types import Context

__all__ = ["DataStream", "NonNumericCellError", "RowShape", "export_data_request"]

METHOD = "exportData"
EXPORTED = "exported_versions"
_PERIOD_MONTH = re.compile(r"^(0[1-9]|1[0-2])/(\d{4})$")
_ACCOUNT_CODE, _ACCOUNT_NAME, _LEVEL_NAME = "Account Code", "Account Name", "Level Name"


class NonNumericCellError(FatalAPIError):
    """A period cell that is not a number: the export cannot be trusted, so the run stops."""


class MissingAllowListError(FatalAPIError):
    """``data`` is selected but ``account_codes`` is empty: nothing may be exported without the allow-list."""


def export_data_request(
    version_name: str,
    config: dict[str, Any],
) -> list[Element]:
    """The elements of an exportData call: version, format, filters (accounts, levels, time span), dimensions rules."""
    filters = element(
        "filters",
        None,
        element(
            "accounts",
            None,
            *(
                element("account", {"code": code, "isAssumption": False, "includeDescendants": False})
                for code in config.get("account_codes") or []
            ),
        ),
    )
    levels = config.get("levels") or []
    if levels:
        filters.append(
            element(
                "levels",
                None,
                *(element("level", {"name": name, "isRollup": False, "includeDescendants": True}) for name in levels),
            )
        )
    start, end = config.get("time_span_start"), config.get("time_span_end")
    if start or end:
        filters.append(element("timeSpan", {"start": start, "end": end}))
    children = [
        element("version", {"name": version_name, "isDefault": False}),
        element("format", {"useInternalCodes": True, "includeCodes": True, "includeNames": True}),
        filters,
    ]
    dimensions = config.get("dimensions") or []
    if dimensions:
        children.append(element("dimensions", None, *(element("dimension", {"name": d}) for d in dimensions)))
    children.append(
        element(
            "rules",
            {
                "includeZeroRows": False,
                "includeRollupAccounts": True,
                "includeRollupLevels": bool(config.get("include_rollup_levels", False)),
                "markInvalidValues": False,
                "markBlanks": False,
                "timeRollups": False,
            },
        )
    )
    return children


class RowShape:
    """Which columns of an exportData header identify the row and which are periods."""

    def __init__(self, header: list[str]) -> None:
        self.header = header
        self.account_code = self._index(_ACCOUNT_CODE)
        self.account_name = self._index(_ACCOUNT_NAME)
        self.level_name = self._index(_LEVEL_NAME)
        taken = {_ACCOUNT_CODE, _ACCOUNT_NAME, _LEVEL_NAME}
        identifying = [i for i, c in enumerate(header) if c.endswith((" Name", " Code"))]
        #: (dimension, column) for ``<Dimension> Name`` columns other than account and level.
        self.dimensions = sorted(
            (header[i].removesuffix(" Name"), i)
            for i in identifying
            if header[i] not in taken and header[i].endswith(" Name") and not header[i].startswith("Level ")
        )
        #: (label, first day or None, column) of every period column.
        self.periods = [(label, _period_start(label), i) for i, label in enumerate(header) if i not in identifying]
        if self.account_code is None:
            raise FatalAPIError(f"{METHOD}: the CSV header has no '{_ACCOUNT_CODE}' column (columns: {header[:8]})")

    def _index(self, name: str) -> int | None:
        return self.header.index(name) if name in self.header else None


def _period_start(label: str) -> str | None:
    match = _PERIOD_MONTH.match(label.strip())
    return f"{match.group(2)}-{match.group(1)}-01" if match else None


def _cell(row: list[str], index: int | None) -> str | None:
    return row[index] if index is not None and index < len(row) else None


class DataStream(AdaptiveStream):
    """One record per version, account, level, dimension values and period: an exact amount."""

    name = "data"
    parent_stream_type = VersionsStream
    primary_keys: ClassVar[list[str]] = ["version_id", "account_code", "level_name", "dimension_key", "period"]
    #: One state for all versions (the list of exported versions), not one per partition.
    state_partitioning_keys: ClassVar[list[str]] = []
    schema: ClassVar[dict[str, Any]] = th.PropertiesList(
        th.Property("version_id", th.IntegerType, required=True),
        th.Property("version_name", th.StringType),
        th.Property("account_code", th.StringType, required=True, description="Always one of `account_codes`."),
        th.Property("account_name", th.StringType),
        th.Property("level_name", th.StringType, required=True, description="Empty when the export has no level."),
        th.Property(
            "dimensions",
            th.ObjectType(additional_properties=th.StringType),
            description="Dimension name -> value name, for the dimensions of the `dimensions` setting.",
        ),
        th.Property(
            "dimension_key",
            th.StringType,
            required=True,
            description="`Dimension=Value` pairs sorted by dimension, joined by `|`; empty without dimensions.",
        ),
        th.Property("period", th.StringType, required=True, description="The column label, e.g. 01/2025."),
        th.Property("period_start", th.DateType, description="First day of an MM/YYYY period; null for others."),
        th.Property("amount", th.NumberType, description="Exact decimal, never rounded through float."),
    ).to_dict()

    @property
    def emit_activate_version_messages(self) -> bool:
        """Never: a run exports only new versions, so an ACTIVATE_VERSION would delete every older version's rows."""
        return False

    @property
    def allow_list(self) -> frozenset[str]:
        """``account_codes``: the only accounts whose rows may leave."""
        return frozenset(str(code) for code in self.config.get("account_codes") or [])

    def exported(self) -> dict[int, dict[str, Any]]:
        """The versions exported completely by earlier runs, by id (from the state)."""
        entries = self.stream_state.get(EXPORTED) or []
        return {int(e["id"]): e for e in entries if isinstance(e, dict) and "id" in e}

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """Export one version (the context) unless an earlier run did; then mark it exported and write STATE."""
        if context is None:
            return
        version_id, version_name = int(context["version_id"]), str(context["version_name"])
        with self.tagged():
            if not self.allow_list:
                raise MissingAllowListError(
                    "Setting 'account_codes' is empty: the data stream exports only the accounts listed there "
                    "(the others hold MNPI); list them or deselect the data stream."
                )
            again = set(self.config.get("reexport_versions") or [])
            if version_id in self.exported() and version_name not in again and str(version_id) not in again:
                self.logger.info(
                    "stream 'data': version '%s' (id %d) was exported before; skipped", version_name, version_id
                )
                return
            self.logger.info("stream 'data': exporting version '%s' (id %d)", version_name, version_id)
            count = 0
            for record in self.stream_call(
                METHOD,
                export_data_request(version_name, dict(self.config)),
                lambda chunks: self._records(chunks, version_id, version_name),
            ):
                count += 1
                yield record
        self._mark_exported(version_id, version_name, count)

    def _mark_exported(self, version_id: int, version_name: str, count: int) -> None:
        exported = self.exported()
        exported[version_id] = {
            "id": version_id,
            "name": version_name,
            "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        self.stream_state[EXPORTED] = [exported[k] for k in sorted(exported)]
        self.logger.info("stream 'data': version '%s' done, %d record(s)", version_name, count)
        # The SDK writes STATE at the end of each partition too; writing here makes the version's completion durable
        # even when the run dies before the SDK gets there (its own write is a no-op when nothing changed).
        self._write_state_message()

    def _records(self, chunks: Iterator[bytes], version_id: int, version_name: str) -> Iterator[dict[str, Any]]:
        """Unpivot the CSV as it arrives; rows of accounts outside the allow-list never become records."""
        reader = csv.reader(iter_output_lines(chunks, METHOD))
        header = next(reader, None)
        if header is None:
            return
        shape = RowShape(header)
        allowed = self.allow_list
        code_at = shape.account_code
        for row in reader:
            if not row:
                continue
            code = _cell(row, code_at)
            if code not in allowed:
                continue  # MNPI: not even looked at
            dims = {name: row[i] if i < len(row) else "" for name, i in shape.dimensions}
            base = {
                "version_id": version_id,
                "version_name": version_name,
                "account_code": code,
                "account_name": _cell(row, shape.account_name),
                "level_name": _cell(row, shape.level_name) or "",
                "dimensions": dims,
                "dimension_key": "|".join(f"{name}={value}" for name, value in sorted(dims.items())),
            }
            for label, start, index in shape.periods:
                text = row[index].strip() if index < len(row) else ""
                if not text:
                    continue
                try:
                    amount = Decimal(text)
                except InvalidOperation:
                    amount = None
                if amount is None or not amount.is_finite():
                    raise NonNumericCellError(
                        f"{METHOD}: version '{version_name}', account '{code}', period '{label}': the cell is not a "
                        "number"
                    )
                yield {**base, "period": label, "period_start": start, "amount": amount}
