"""The sheet streams: one call (or one paged job) per sheet named in ``modeled_sheets``; none by default.

- ``modeled_sheets``: exportModeledSheet, the sheet's settings and columns.
- ``sheet_definitions``: exportSheetDefinition, one record per column definition of the sheet.
- ``configurable_model_data``: exportConfigurableModelData of the default version, whose CSV (``output/data``) comes in
  pages of one job: the first call starts the job, each next call asks ``<job jobNumber=".." pageNumber=".."/>`` until
  the page marked last (or an empty page), at most ``max_pages`` pages. Rows are numbered across pages; cells stay text.
"""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING, Any, ClassVar

from singer_sdk import typing as th
from singer_sdk.exceptions import FatalAPIError

from harborline_tap_adaptive.fields import Fields
from harborline_tap_adaptive.streams import MetadataStream, iter_elements
from harborline_tap_adaptive.xmlapi import element

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from singer_sdk.helpers.types import Context

_ARRAY = th.ArrayType(th.ObjectType(additional_properties=True))


def _sheet_names(stream: MetadataStream) -> list[str]:
    return [str(name) for name in stream.config.get("modeled_sheets") or []]


class ModeledSheetsStream(MetadataStream):
    """Each modeled sheet of ``modeled_sheets``: its settings and columns."""

    name = "modeled_sheets"
    method = "exportModeledSheet"
    record_tag = "modeledSheet"
    primary_keys: ClassVar[list[str]] = ["name"]
    fields = Fields("id:i name type isGlobal:b description")
    nested: ClassVar[dict[str, str]] = {"columns": "columns"}
    schema = MetadataStream.declare(fields, nested={"columns": _ARRAY})

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:  # noqa: ARG002 - no partitions
        """One call per sheet."""
        for sheet in _sheet_names(self):
            with self.tagged():
                output = self.call(self.method, [element("modeledSheet", {"name": sheet, "isGlobal": False})])
            if output is not None:
                yield from self.records_from(output)


class SheetDefinitionsStream(MetadataStream):
    """The column definitions of each sheet of ``modeled_sheets``."""

    name = "sheet_definitions"
    method = "exportSheetDefinition"
    record_tag = "column"
    primary_keys: ClassVar[list[str]] = ["sheet_id", "id"]
    fields = Fields("id:i name type code description isRequired:b isSystem:b dimensionId:i")
    context_ids: ClassVar[dict[str, str]] = {"sheet": "sheet_id"}
    schema = MetadataStream.declare(fields, context_ids=["sheet_id"], more=[th.Property("sheet_name", th.StringType)])

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:  # noqa: ARG002 - no partitions
        """One call per sheet."""
        for sheet in _sheet_names(self):
            with self.tagged():
                output = self.call(self.method, [element("sheet", {"name": sheet})])
            if output is not None:
                for record in self.records_from(output):
                    yield {**record, "sheet_name": sheet}


class ConfigurableModelDataStream(MetadataStream):
    """The rows of each sheet of ``modeled_sheets`` in the default version, following the job's pages."""

    name = "configurable_model_data"
    method = "exportConfigurableModelData"
    record_tag = "data"
    primary_keys: ClassVar[list[str]] = ["modeled_sheet", "version_id", "row_number"]
    fields = Fields("")
    schema: ClassVar[dict[str, Any]] = th.PropertiesList(
        th.Property("modeled_sheet", th.StringType, required=True),
        th.Property("version_id", th.IntegerType, required=True, description="The default version's id."),
        th.Property("version_name", th.StringType),
        th.Property("row_number", th.IntegerType, required=True, description="1 for the first row of the first page."),
        th.Property(
            "values",
            th.ObjectType(additional_properties=th.StringType),
            description="Column header -> cell text. Rows may name people: pseudonymize `values.<column>` if so.",
        ),
    ).to_dict()

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:  # noqa: ARG002 - no partitions
        """Every page of every sheet's job."""
        sheets = _sheet_names(self)
        if not sheets:
            return
        with self.tagged():
            version_id, version_name = self._default_version()
            for sheet in sheets:
                yield from self._sheet_rows(sheet, version_id, version_name)

    def _default_version(self) -> tuple[int, str]:
        output = self.call("exportVersions")
        for node, _ in iter_elements(output, "version") if output is not None else ():
            if node.get("isDefaultVersion") in {"1", "true"}:
                return int(node.get("id", "0")), node.get("name", "")
        raise FatalAPIError("exportVersions: no version is marked isDefaultVersion; cannot export model data")

    def _sheet_rows(self, sheet: str, version_id: int, version_name: str) -> Iterator[dict[str, Any]]:
        job: dict[str, str] | None = None
        header: list[str] | None = None
        number = 0
        for page in range(1, self.max_pages + 1):
            children = [
                element("version", {"name": version_name, "isDefault": False}),
                element("modeledSheet", {"name": sheet, "isGlobal": False, "includeAllColumns": True}),
            ]
            if job is not None:
                children.append(element("job", {"jobNumber": job.get("jobNumber"), "pageNumber": page}))
            output = self.call(self.method, children)
            data = output.find("data") if output is not None else None
            text = "".join(data.itertext()) if data is not None else ""
            rows = [row for row in csv.reader(io.StringIO(text, newline="")) if row]
            if page == 1 and rows:
                header, rows = rows[0], rows[1:]
            elif header is not None and rows and rows[0] == header:
                rows = rows[1:]  # a page may repeat the header
            for row in rows:
                number += 1
                yield {
                    "modeled_sheet": sheet,
                    "version_id": version_id,
                    "version_name": version_name,
                    "row_number": number,
                    "values": dict(zip(header or [], row, strict=False)),
                }
            marker = output.find("job") if output is not None else None
            job = dict(marker.attrib) if marker is not None else None
            if job is None or job.get("isLastPage") in {"1", "true"} or not rows:
                return
        raise FatalAPIError(
            f"{self.method}: sheet '{sheet}' did not end after {self.max_pages} pages (the `max_pages` setting)"
        )
