"""The metadata streams: one per export method, full table every run.

Each stream names its method and its record element; every such element in the answer (at any depth) is one record.
Trees (accounts, levels, versions, dimension and attribute values) nest their element in itself: each record gets
``parent_id`` (null at the root). Other nested elements (an account's attributes, a user's subscriptions) become
arrays or objects (:func:`~harborline_tap_adaptive.fields.nested_value`). Answer shapes are in the README.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any, ClassVar

from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError

from harborline_tap_adaptive.client import AdaptiveStream
from harborline_tap_adaptive.fields import Fields, nested_value, snake_case

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence
    from xml.etree.ElementTree import Element

    from singer_sdk.helpers.types import Context

VERSION_FOLDER = "VERSION_FOLDER"
_ARRAY = th.ArrayType(th.ObjectType(additional_properties=True))
_OBJECT = th.ObjectType(additional_properties=True)
_EXTRA = th.Property(
    "extra",
    th.ObjectType(additional_properties=True),
    description="Attributes and nested elements this stream has no field for, as sent (text).",
)


def iter_elements(root: Element, tag: str) -> Iterator[tuple[Element, tuple[Element, ...]]]:
    """Every ``tag`` element below ``root`` with its ancestors (outermost first); not inside other records' fields."""

    def walk(node: Element, ancestors: tuple[Element, ...], *, inside_record: bool) -> Iterator[Any]:
        for child in node:
            if child.tag == tag:
                yield child, ancestors
                yield from walk(child, (*ancestors, child), inside_record=True)
            elif not inside_record:
                yield from walk(child, (*ancestors, child), inside_record=False)

    return walk(root, (), inside_record=False)


def _id(node: Element | None) -> int | None:
    if node is None:
        return None
    try:
        return int(node.get("id", ""))
    except ValueError:
        return None


class MetadataStream(AdaptiveStream):
    """A full-table stream filled from one export method's answer."""

    method: ClassVar[str]
    record_tag: ClassVar[str]
    fields: ClassVar[Fields]
    #: The record element nests in itself: records get ``parent_id``.
    tree: ClassVar[bool] = False
    #: Enclosing element tag -> field that gets its id (``{"dimension": "dimension_id"}``).
    context_ids: ClassVar[dict[str, str]] = {}
    #: Nested element tag -> field (array or object), declared in the schema.
    nested: ClassVar[dict[str, str]] = {}
    #: Nested elements that are another stream's records (a dimension's values), left out of this one.
    skip_children: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def declare(
        cls,
        fields: Fields,
        *,
        tree: bool = False,
        context_ids: Sequence[str] = (),
        nested: dict[str, th.JSONTypeHelper[Any]] | None = None,
        more: Sequence[th.Property[Any]] = (),
    ) -> dict[str, Any]:
        """The schema: context ids, the attributes, ``parent_id`` for trees, nested fields, ``extra``."""
        properties = [th.Property(name, th.IntegerType, required=True) for name in context_ids]
        properties += [p for p in fields.properties() if p.name not in context_ids]
        if tree:
            properties.append(th.Property("parent_id", th.IntegerType, description="Null at the root of the tree."))
        properties += [th.Property(name, kind) for name, kind in (nested or {}).items()]
        properties += list(more)
        properties.append(_EXTRA)
        return th.PropertiesList(*properties).to_dict()

    def request_children(self) -> list[Element]:
        """Method-specific elements of the call (none by default)."""
        return []

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:  # noqa: ARG002 - no partitions
        """Call the method once and yield a record per record element."""
        with self.tagged():
            output = self.call(self.method, self.request_children())
        if output is not None:
            yield from self.records_from(output)

    def records_from(self, output: Element) -> Iterator[dict[str, Any]]:
        """The records of one answer; elements without their key are logged and skipped."""
        skipped = 0
        for node, ancestors in iter_elements(output, self.record_tag):
            record = self.record(node, ancestors)
            if any(record.get(key) is None for key in self.primary_keys):
                skipped += 1
                continue
            yield record
        if skipped:
            self.logger.warning("stream '%s': %d element(s) without %s skipped", self.name, skipped, self.primary_keys)

    @property
    def field_names(self) -> list[str]:
        """Every field of the schema: each record has them all (null when the element lacks one)."""
        names: list[str] | None = self.__dict__.get("_adaptive_field_names")
        if names is None:
            names = list(self.schema["properties"])
            self.__dict__["_adaptive_field_names"] = names
        return names

    def record(self, node: Element, ancestors: tuple[Element, ...]) -> dict[str, Any]:
        """One element as a record."""
        record: dict[str, Any] = dict.fromkeys(self.field_names)
        self.fields.convert(dict(node.attrib), record)
        if self.tree:
            parent = next((a for a in reversed(ancestors) if a.tag == self.record_tag), None)
            record["parent_id"] = _id(parent)
        for tag, context_field in self.context_ids.items():
            record[context_field] = _id(next((a for a in reversed(ancestors) if a.tag == tag), None))
        extra = record.get("extra") or {}
        for child in node:
            if child.tag == self.record_tag or child.tag in self.skip_children:
                continue
            field = self.nested.get(child.tag)
            if field is not None:
                record[field] = nested_value(child)
            else:
                extra[snake_case(child.tag)] = nested_value(child)
        record["extra"] = extra or None
        return record


_ACCOUNT_FIELDS = Fields(
    "id:i code name accountTypeCode description shortName timeStratum displayAs isAssumption:b suppressZeroes:b "
    "isDefaultRoot:b decimalPrecision:i planBy actualsBy timeRollup timeWeightAcctId:i hasSalaryDetail:b dataPrivacy "
    "subType startExpanded:b isBreakbackEligible:b levelDimRollup levelDimWeightAcctId:i rollupText enableActuals:b "
    "isGroup:b isIntercompany:b isLinked:b isImportable:b hasFormula:b exchangeRateType"
)


class AccountsStream(MetadataStream):
    """The chart of accounts (all account kinds), one record per account with its parent."""

    name = "accounts"
    method = "exportAccounts"
    record_tag = "account"
    primary_keys: ClassVar[list[str]] = ["id"]
    fields = _ACCOUNT_FIELDS
    tree = True
    nested: ClassVar[dict[str, str]] = {"attributes": "attributes"}
    schema = MetadataStream.declare(fields, tree=True, nested={"attributes": _ARRAY})


class ActiveCurrenciesStream(MetadataStream):
    """The currencies in use."""

    name = "active_currencies"
    method = "exportActiveCurrencies"
    record_tag = "currency"
    primary_keys: ClassVar[list[str]] = ["code"]
    fields = Fields("code name precision:i isReportingCurrency:b userDefined:b")
    schema = MetadataStream.declare(fields)


class AttributesStream(MetadataStream):
    """Custom attributes (of accounts, levels, dimensions ...)."""

    name = "attributes"
    method = "exportAttributes"
    record_tag = "attribute"
    primary_keys: ClassVar[list[str]] = ["id"]
    fields = Fields("id:i name type autoCreate:b keepSorted:b dimensionId:i seqNo:i")
    skip_children = frozenset({"attributeValue"})
    schema = MetadataStream.declare(fields)


class AttributeValuesStream(MetadataStream):
    """The values of each attribute, a tree per attribute."""

    name = "attribute_values"
    method = "exportAttributes"
    record_tag = "attributeValue"
    primary_keys: ClassVar[list[str]] = ["attribute_id", "id"]
    fields = Fields("id:i name description shortName")
    tree = True
    context_ids: ClassVar[dict[str, str]] = {"attribute": "attribute_id"}
    schema = MetadataStream.declare(fields, tree=True, context_ids=["attribute_id"])


class CustomerLogoStream(MetadataStream):
    """Where the instance's logo is."""

    name = "customer_logo"
    method = "exportCustomerLogo"
    record_tag = "customerLogo"
    primary_keys: ClassVar[list[str]] = ["url"]
    fields = Fields("url contentType")
    schema = MetadataStream.declare(fields)


class DimensionFamiliesStream(MetadataStream):
    """Dimension families, with their dimensions and levels."""

    name = "dimension_families"
    method = "exportDimensionFamilies"
    record_tag = "dimensionFamily"
    primary_keys: ClassVar[list[str]] = ["id"]
    fields = Fields("id:i name description")
    nested: ClassVar[dict[str, str]] = {"dimensions": "dimensions", "levels": "levels"}
    schema = MetadataStream.declare(fields, nested={"dimensions": _ARRAY, "levels": _ARRAY})


class DimensionMappingStream(MetadataStream):
    """Dimension value mappings."""

    name = "dimension_mapping"
    method = "exportDimensionMapping"
    record_tag = "mapping"
    primary_keys: ClassVar[list[str]] = ["id"]
    fields = Fields("id:i dimensionId:i name sourceValue targetValueId:i")
    schema = MetadataStream.declare(fields)


class DimensionsStream(MetadataStream):
    """Dimensions (their values are in dimension_values)."""

    name = "dimensions"
    method = "exportDimensions"
    record_tag = "dimension"
    primary_keys: ClassVar[list[str]] = ["id"]
    fields = Fields("id:i name shortName description autoCreate:b listDimension:b keepSorted:b useOnLevels:b seqNo:i")
    nested: ClassVar[dict[str, str]] = {"attributes": "attributes"}
    skip_children = frozenset({"dimensionValue"})
    schema = MetadataStream.declare(fields, nested={"attributes": _ARRAY})


class DimensionValuesStream(MetadataStream):
    """The values of each dimension, a tree per dimension."""

    name = "dimension_values"
    method = "exportDimensions"
    record_tag = "dimensionValue"
    primary_keys: ClassVar[list[str]] = ["dimension_id", "id"]
    fields = Fields("id:i name description shortName")
    tree = True
    context_ids: ClassVar[dict[str, str]] = {"dimension": "dimension_id"}
    nested: ClassVar[dict[str, str]] = {"attributes": "attributes"}
    schema = MetadataStream.declare(fields, tree=True, context_ids=["dimension_id"], nested={"attributes": _ARRAY})


class GroupsStream(MetadataStream):
    """User groups and their members (user ids)."""

    name = "groups"
    method = "exportGroups"
    record_tag = "group"
    primary_keys: ClassVar[list[str]] = ["id"]
    fields = Fields("id:i name isGlobal:b ownerId:i")
    nested: ClassVar[dict[str, str]] = {"users": "users"}
    schema = MetadataStream.declare(fields, nested={"users": _ARRAY})


class InstancesStream(MetadataStream):
    """The instances the login can reach."""

    name = "instances"
    method = "exportInstances"
    record_tag = "instance"
    primary_keys: ClassVar[list[str]] = ["code"]
    fields = Fields("code name isDefault:b")
    schema = MetadataStream.declare(fields)


class LevelsStream(MetadataStream):
    """The organization levels, one record per level with its parent."""

    name = "levels"
    method = "exportLevels"
    record_tag = "level"
    primary_keys: ClassVar[list[str]] = ["id"]
    fields = Fields(
        "id:i code name shortName currency availability publishedForecast:b isImportable:b workflowStatus "
        "isElimination:b isLinked:b hasChildren:b"
    )
    tree = True
    nested: ClassVar[dict[str, str]] = {"attributes": "attributes"}
    schema = MetadataStream.declare(fields, tree=True, nested={"attributes": _ARRAY})


class LocalesStream(MetadataStream):
    """The locales the instance offers."""

    name = "locales"
    method = "exportLocales"
    record_tag = "locale"
    primary_keys: ClassVar[list[str]] = ["code"]
    fields = Fields("code name")
    schema = MetadataStream.declare(fields)


class PermissionSetsStream(MetadataStream):
    """Permission sets and their permissions."""

    name = "permission_sets"
    method = "exportPermissionSets"
    record_tag = "permissionSet"
    primary_keys: ClassVar[list[str]] = ["id"]
    fields = Fields("id:i name description")
    nested: ClassVar[dict[str, str]] = {"permissions": "permissions"}
    schema = MetadataStream.declare(fields, nested={"permissions": _ARRAY})


class RolesStream(MetadataStream):
    """Roles."""

    name = "roles"
    method = "exportRoles"
    record_tag = "role"
    primary_keys: ClassVar[list[str]] = ["id"]
    fields = Fields("id:i name description")
    nested: ClassVar[dict[str, str]] = {"permissionSets": "permission_sets"}
    schema = MetadataStream.declare(fields, nested={"permission_sets": _ARRAY})


class SecurityAuditStream(MetadataStream):
    """The security audit log (logins, permission changes ...)."""

    name = "security_audit"
    method = "exportSecurityAudit"
    record_tag = "event"
    primary_keys: ClassVar[list[str]] = ["id"]
    fields = Fields("id:i timestamp:t userId:i login eventType objectType objectName ipAddress details")
    schema = MetadataStream.declare(fields)


class SheetsStream(MetadataStream):
    """Every sheet of the instance (their definitions are per modeled sheet, see sheet_definitions)."""

    name = "sheets"
    method = "exportSheets"
    record_tag = "sheet"
    primary_keys: ClassVar[list[str]] = ["id"]
    fields = Fields("id:i name type isGlobal:b description")
    schema = MetadataStream.declare(fields)


class TimePeriodsStream(MetadataStream):
    """The calendar: every period of every stratum (year, quarter, month ...)."""

    name = "time_periods"
    method = "exportTime"
    record_tag = "period"
    primary_keys: ClassVar[list[str]] = ["stratum", "code"]
    fields = Fields("id:i code label shortName stratumId:i start:d end:d parentId:i")
    schema = MetadataStream.declare(
        fields,
        more=[
            th.Property("stratum", th.StringType, required=True, description="The stratum's code (year, month ...)."),
            th.Property("parent_code", th.StringType, description="The enclosing period's code, when nested."),
        ],
    )

    def records_from(self, output: Element) -> Iterator[dict[str, Any]]:
        """Periods with their stratum: the enclosing ``<stratum>``, or the one ``stratumId`` names."""
        strata = {s.get("id"): s.get("code") for s in output.iter("stratum")}
        for node, ancestors in iter_elements(output, self.record_tag):
            record = self.record(node, ancestors)
            enclosing = next((a for a in reversed(ancestors) if a.tag == "stratum"), None)
            record["stratum"] = enclosing.get("code") if enclosing is not None else strata.get(node.get("stratumId"))
            parent = next((a for a in reversed(ancestors) if a.tag == self.record_tag), None)
            record["parent_code"] = parent.get("code") if parent is not None else None
            if record["stratum"] is None or record.get("code") is None:
                self.logger.warning("stream '%s': a period without stratum or code skipped", self.name)
                continue
            yield record


class TransactionDefinitionsStream(MetadataStream):
    """Transaction definitions and their columns."""

    name = "transaction_definitions"
    method = "exportTransactionDefinition"
    record_tag = "transactionDefinition"
    primary_keys: ClassVar[list[str]] = ["id"]
    fields = Fields("id:i name description")
    nested: ClassVar[dict[str, str]] = {"columns": "columns"}
    schema = MetadataStream.declare(fields, nested={"columns": _ARRAY})


class UsersStream(MetadataStream):
    """Users (e-mail, login and name are personal data, pseudonymized by default)."""

    name = "users"
    method = "exportUsers"
    record_tag = "user"
    primary_keys: ClassVar[list[str]] = ["id"]
    fields = Fields(
        "id:i guid login email name position permissionSetId:i alternateEmail savedLocale timeZone lastLogin:t "
        "isActive:b"
    )
    nested: ClassVar[dict[str, str]] = {"subscriptions": "subscriptions", "groups": "groups"}
    schema = MetadataStream.declare(fields, nested={"subscriptions": _OBJECT, "groups": _ARRAY})


class VersionsStream(MetadataStream):
    """Versions and version folders; each record carries the names of the folders above it.

    It is the parent of ``data``: the versions to export are chosen from this one answer (see :meth:`export_plan`).
    """

    name = "versions"
    method = "exportVersions"
    record_tag = "version"
    primary_keys: ClassVar[list[str]] = ["id"]
    fields = Fields(
        "id:i name shortName type isVirtual:b description isDefaultVersion:b isLocked:b hasAuditTrail:b "
        "enabledForWorkflow:b isImportable:b startVersion endVersion completedValuesThru lockedThru"
    )
    tree = True
    schema = MetadataStream.declare(
        fields,
        tree=True,
        more=[
            th.Property(
                "folder_path",
                th.ArrayType(th.StringType),
                description="Names of the version folders above this version, outermost first.",
            )
        ],
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.export_versions: dict[int, str] = {}

    def records_from(self, output: Element) -> Iterator[dict[str, Any]]:
        """All versions, with folder paths; the data plan is made (and checked) before the first is yielded."""
        records = []
        for node, ancestors in iter_elements(output, self.record_tag):
            record = self.record(node, ancestors)
            record["folder_path"] = [a.get("name", "") for a in ancestors if a.tag == self.record_tag]
            records.append(record)
        if any(child.selected or child.has_selected_descendents for child in self.child_streams):
            self.export_versions = self.export_plan(records)
            for child in self.child_streams:
                if child.selected:
                    # Every stream emits its SCHEMA, even with no version to export (the SDK writes a child's
                    # SCHEMA only when a partition of it syncs). A private SDK method: no public one writes it.
                    child._write_schema_message()  # noqa: SLF001
        yield from (r for r in records if r.get("id") is not None)

    def export_plan(self, records: list[dict[str, Any]]) -> dict[int, str]:
        """The versions ``data`` exports, by id.

        Every non-folder version below a folder named exactly ``version_folder`` (any depth), plus ``version_names``;
        folders never.

        Raises:
            ConfigValidationError: ``version_folder`` or a name of ``version_names`` does not exist.
        """
        folder = self.config.get("version_folder")
        names = list(self.config.get("version_names") or [])
        folders = sorted({str(r.get("name")) for r in records if r.get("type") == VERSION_FOLDER})
        with self.tagged():
            if folder and folder not in folders:
                close = difflib.get_close_matches(folder, folders, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise ConfigValidationError(
                    f"Setting 'version_folder': no version folder is named exactly '{folder}'{hint}; "
                    f"folders: {', '.join(folders) or 'none'}"
                )
            versions = {str(r.get("name")) for r in records if r.get("type") != VERSION_FOLDER}
            missing = [n for n in names if n not in versions]
            if missing:
                raise ConfigValidationError(
                    f"Setting 'version_names': no version is named {', '.join(repr(m) for m in missing)}"
                )
        plan: dict[int, str] = {}
        for record in records:
            if record.get("type") == VERSION_FOLDER or record.get("id") is None:
                continue
            if (folder and folder in record["folder_path"]) or record.get("name") in names:
                plan[record["id"]] = str(record.get("name"))
        return plan

    def generate_child_contexts(self, record: dict[str, Any], context: Context | None) -> Iterable[Context | None]:  # noqa: ARG002
        """A ``data`` partition for each version of the plan; none for the others (folders, other versions)."""
        version_id = record.get("id")
        if version_id in self.export_versions:
            yield {"version_id": version_id, "version_name": self.export_versions[version_id]}


#: The personal data of Adaptive's exports, pseudonymized unless configured otherwise (``pseudonymize: {}`` opts out):
#: users' e-mail addresses, logins (e-mail addresses in most instances) and names, and the logins and IP addresses of
#: the security audit. User ids are kept so tables join.
PERSONAL_DATA_FIELDS: dict[str, list[str]] = {
    "users": ["email", "login", "name", "alternate_email"],
    "security_audit": ["login", "ip_address"],
}
