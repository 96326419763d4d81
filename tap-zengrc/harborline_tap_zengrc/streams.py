"""The ZenGRC object types and their record schemas.

Field lists follow the public record descriptions of the v2 API: the request record of the
swagger-derived client (mshedsilegx/zengrc) and the columns GitLab's dbt models read from their
production ZenGRC extract (gitlab-analytics ``models/sources/zengrc``). ``people`` and
``systems`` are list endpoints used in production by SnowAlert's ZenGRC connector; their record
fields are not publicly described, so their schemas hold the fields every ZenGRC object and
person reference is seen to carry (see the README).

Shapes shared by many objects:

* references to another object are ``{id, title, type}``; references to a person are
  ``{id, name, type}``;
* ``custom_attributes`` is a map keyed by attribute id (``{"141": {"id", "title", "value"}}``),
  different in every tenant, so it is one JSON object without declared properties: a target
  stores it as one JSON column instead of one column per attribute;
* ``mapped`` is an object whose members (``controls``, ``audits`` ...) are arrays of object
  references. The documented members are declared so a flattening target makes
  ``mapped__controls`` JSON-array columns; members a tenant adds are kept too
  (``additionalProperties``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from singer_sdk import typing as th

from harborline_tap_zengrc.client import ZenGRCStream

OBJECT_REF = th.ObjectType(
    th.Property("id", th.IntegerType, description="Id of the referenced object."),
    th.Property("title", th.StringType),
    th.Property("type", th.StringType, description="Object type, e.g. Control."),
)

PERSON_REF = th.ObjectType(
    th.Property("id", th.IntegerType, description="Id of the person."),
    th.Property("name", th.StringType, description="Display name (personal data)."),
    th.Property("type", th.StringType, description="Always Person."),
)

CUSTOM_ATTRIBUTES = th.CustomType(
    {
        "type": ["object", "null"],
        "description": (
            "Tenant-defined attributes keyed by attribute id, each {id, title, value}; kept as one JSON object."
        ),
        "additionalProperties": {
            "type": ["object", "null"],
            "properties": {
                "id": {"type": ["integer", "null"]},
                "title": {"type": ["string", "null"]},
                "value": {},
            },
        },
    },
)

LINKS = th.ObjectType(
    th.Property("self", th.ObjectType(th.Property("href", th.StringType))),
)


def mapped(*members: str) -> th.Property[Any]:
    """Return the ``mapped`` property: documented members declared, others kept as well."""
    return th.Property(
        "mapped",
        th.ObjectType(
            *(th.Property(member, th.ArrayType(OBJECT_REF)) for member in members),
            additional_properties=th.ArrayType(OBJECT_REF),
        ),
        description="Objects mapped to this one, by object type (arrays of {id, title, type}).",
    )


def common(*extra: th.Property[Any]) -> th.PropertiesList:
    """Return the fields every ZenGRC object has, followed by the type's own fields."""
    return th.PropertiesList(
        th.Property("id", th.IntegerType, required=True, description="Object id."),
        th.Property("code", th.StringType, description="Human-readable code, e.g. CONTROL-12."),
        th.Property("title", th.StringType),
        th.Property("type", th.StringType, description="Object type name."),
        th.Property("description", th.StringType),
        th.Property("status", th.StringType),
        th.Property("created_at", th.DateTimeType),
        th.Property(
            "updated_at",
            th.DateTimeType,
            description="Last change (UTC); the replication key, normalized to fixed-width UTC.",
        ),
        th.Property("custom_attributes", CUSTOM_ATTRIBUTES),
        *extra,
    )


class AssessmentsStream(ZenGRCStream):
    """Assessments of a control's design and operation, made within an audit."""

    name = "assessments"
    path = "/assessments"
    schema: ClassVar[dict[str, Any]] = common(
        th.Property("assessors", th.ArrayType(PERSON_REF)),
        th.Property("conclusion", th.StringType),
        th.Property("control", OBJECT_REF, description="The assessed control."),
        th.Property("start_date", th.DateType),
        th.Property("end_date", th.DateType),
        mapped("audits"),
    ).to_dict()


class AuditsStream(ZenGRCStream):
    """Audits: containers for the requests, assessments and issues of one audit."""

    name = "audits"
    path = "/audits"
    schema: ClassVar[dict[str, Any]] = common(
        th.Property("audit_managers", th.ArrayType(PERSON_REF)),
        th.Property("program", OBJECT_REF, description="The audited program."),
        th.Property("start_date", th.DateType),
        th.Property("end_date", th.DateType),
        th.Property("report_period_start_date", th.DateType),
        th.Property("report_period_end_date", th.DateType),
        th.Property("sync_external_attachments", th.BooleanType),
        th.Property("sync_external_comments", th.BooleanType),
        mapped("markets", "standards"),
    ).to_dict()


class ControlsStream(ZenGRCStream):
    """Controls: the measures that are tested in audits."""

    name = "controls"
    path = "/controls"
    schema: ClassVar[dict[str, Any]] = common(
        mapped("objectives"),
    ).to_dict()


class IssuesStream(ZenGRCStream):
    """Issues: findings that need remediation or acceptance."""

    name = "issues"
    path = "/issues"
    schema: ClassVar[dict[str, Any]] = common(
        th.Property("notes", th.StringType),
        th.Property("stop_date", th.DateType),
        th.Property("tags", th.ArrayType(th.StringType)),
        mapped("audits", "controls", "programs", "standards"),
    ).to_dict()


class ObjectivesStream(ZenGRCStream):
    """Objectives: the compliance requirements controls satisfy."""

    name = "objectives"
    path = "/objectives"
    schema: ClassVar[dict[str, Any]] = common(
        th.Property("os_state", th.StringType, description="Review state of the object."),
        mapped(),
    ).to_dict()


class ProgramsStream(ZenGRCStream):
    """Programs: frameworks or initiatives (SOC 2, PCI ...) holding the other objects."""

    name = "programs"
    path = "/programs"
    schema: ClassVar[dict[str, Any]] = common(
        th.Property("editors", th.ArrayType(PERSON_REF)),
        th.Property("managers", th.ArrayType(PERSON_REF)),
        th.Property("readers", th.ArrayType(PERSON_REF)),
        th.Property("primary_contact", PERSON_REF),
        th.Property("secondary_contact", PERSON_REF),
        th.Property("notes", th.StringType),
        th.Property("reference_url", th.StringType),
        th.Property("url", th.StringType),
        th.Property("tags", th.ArrayType(th.StringType)),
        th.Property("effective_date", th.DateType),
        th.Property("stop_date", th.DateType),
        mapped(
            "assessments",
            "issues",
            "org_groups",
            "requests",
            "risks",
            "standards",
            "systems",
        ),
    ).to_dict()


class RequestsStream(ZenGRCStream):
    """Requests: evidence requested from an assignee within an audit."""

    name = "requests"
    path = "/requests"
    schema: ClassVar[dict[str, Any]] = common(
        th.Property("assignees", th.ArrayType(PERSON_REF)),
        th.Property("requesters", th.ArrayType(PERSON_REF)),
        th.Property("verifiers", th.ArrayType(PERSON_REF)),
        th.Property(
            "reviewers",
            th.ArrayType(
                th.ObjectType(
                    th.Property("reviewer", PERSON_REF),
                    th.Property("status", th.StringType),
                ),
            ),
        ),
        th.Property("audit", OBJECT_REF, description="The audit the request belongs to."),
        th.Property("notes", th.StringType),
        th.Property("test", th.StringType, description="Test plan or procedure."),
        th.Property("notify_assignee", th.BooleanType),
        th.Property("start_date", th.DateType),
        th.Property("end_date", th.DateType),
        th.Property("due_date", th.DateType),
        th.Property("stop_date", th.DateType),
        th.Property("tags", th.ArrayType(th.StringType)),
        th.Property("links", LINKS),
        mapped("controls", "issues", "programs"),
    ).to_dict()


class RisksStream(ZenGRCStream):
    """Risks to the organization, with their scores."""

    name = "risks"
    path = "/risks"
    schema: ClassVar[dict[str, Any]] = common(
        th.Property(
            "risk_vector_score_values",
            th.ArrayType(
                th.CustomType(
                    {"type": ["object", "null"], "properties": {}, "additionalProperties": True},
                ),
            ),
            description="Scores per risk vector; element shape not publicly documented.",
        ),
        mapped(),
    ).to_dict()


class VendorsStream(ZenGRCStream):
    """Vendors (third parties) managed in the vendor risk module."""

    name = "vendors"
    path = "/vendors"
    schema: ClassVar[dict[str, Any]] = common(
        th.Property("notes", th.StringType),
        th.Property("reference_url", th.StringType),
        th.Property("url", th.StringType),
        th.Property("risk_rating", th.StringType),
        th.Property("secondary_contact", PERSON_REF),
        th.Property("tags", th.ArrayType(th.StringType)),
        th.Property("start_date", th.DateType),
        th.Property("end_date", th.DateType),
        mapped("data_assets", "facilities", "products", "systems", "tasks"),
    ).to_dict()


class SystemsStream(ZenGRCStream):
    """Systems (assets) that controls and audits can target; schema inferred, see README."""

    name = "systems"
    path = "/systems"
    schema: ClassVar[dict[str, Any]] = common(
        th.Property("notes", th.StringType),
        th.Property("tags", th.ArrayType(th.StringType)),
        mapped(),
    ).to_dict()


class PeopleStream(ZenGRCStream):
    """People (users and contacts); personal data, schema inferred, see README."""

    name = "people"
    path = "/people"
    schema: ClassVar[dict[str, Any]] = th.PropertiesList(
        th.Property("id", th.IntegerType, required=True, description="Person id."),
        th.Property("name", th.StringType, description="Display name (personal data)."),
        th.Property("email", th.StringType, description="E-mail address (personal data)."),
        th.Property("type", th.StringType, description="Always Person."),
        th.Property("created_at", th.DateTimeType),
        th.Property(
            "updated_at",
            th.DateTimeType,
            description="Last change (UTC); the replication key, normalized to fixed-width UTC.",
        ),
    ).to_dict()


STREAM_TYPES: list[type[ZenGRCStream]] = [
    AssessmentsStream,
    AuditsStream,
    ControlsStream,
    IssuesStream,
    ObjectivesStream,
    PeopleStream,
    ProgramsStream,
    RequestsStream,
    RisksStream,
    SystemsStream,
    VendorsStream,
]

#: Every field that holds personal data, as a ready-made value for the ``pseudonymize`` setting:
#: people's names and e-mail addresses, and the name in every person reference (owners,
#: assignees, contacts ...). Person ids are kept: they are not personal data on their own and keep
#: joins possible. Free text (descriptions, notes, custom attribute values) may name people too;
#: add those fields if a tenant writes personal data there.
PERSONAL_DATA_FIELDS: dict[str, list[str]] = {
    "assessments": ["assessors.name"],
    "audits": ["audit_managers.name"],
    "people": ["name", "email"],
    "programs": [
        "editors.name",
        "managers.name",
        "readers.name",
        "primary_contact.name",
        "secondary_contact.name",
    ],
    "requests": [
        "assignees.name",
        "requesters.name",
        "verifiers.name",
        "reviewers.reviewer.name",
    ],
    "vendors": ["secondary_contact.name"],
}
