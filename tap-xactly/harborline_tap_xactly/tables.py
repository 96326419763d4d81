"""The Xactly Connect (XC) tables this tap reads, and the key of each.

Every table is in the public record of production extracts (Mashey's tap-xactly and GitLab's analytics sources):
stream ``xc_credit`` reads table ``XC_CREDIT``. Keys are the vendor's ``<X>_ID`` where those extracts name one; every
``_hist`` table keeps one row per version, so its key is ``(<X>_ID, VERSION)``; where the extracts are silent the
choice is ours (marked below) and ``key_overrides`` corrects any of them without a release.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MODIFIED_DATE", "TABLES", "XCTable", "table_by_stream"]

#: The replication column of every XC table (UPPERCASE, as the source reports it).
MODIFIED_DATE = "MODIFIED_DATE"


@dataclass(frozen=True)
class XCTable:
    """One XC table: its stream name, table name and key columns."""

    stream: str
    key: tuple[str, ...]

    @property
    def table(self) -> str:
        """The source table (the stream name in upper case)."""
        return self.stream.upper()


def _with_hist(stream: str, key: str) -> list[XCTable]:
    """A table and its ``_hist`` twin, whose rows repeat ``<X>_ID`` once per VERSION."""
    return [XCTable(stream, (key,)), XCTable(f"{stream}_hist", (key, "VERSION"))]


TABLES: tuple[XCTable, ...] = (
    # Mashey's tap-xactly (HEAD).
    XCTable("xc_attainment_measure", ("ATTAINMENT_MEASURE_ID",)),
    XCTable("xc_attainment_measure_criteria", ("ATTAINMENT_MEASURE_CRITERIA_ID",)),
    XCTable("xc_credit", ("CREDIT_ID",)),
    XCTable("xc_credit_adjustment", ("CREDIT_ID",)),
    XCTable("xc_credit_held", ("CREDIT_HELD_ID",)),
    XCTable("xc_credit_totals", ("CREDIT_TOTALS_ID",)),
    XCTable("xc_credit_type", ("CREDIT_TYPE_ID",)),
    *_with_hist("xc_quota", "QUOTA_ID"),
    *_with_hist("xc_quota_assignment", "QUOTA_ASSIGNMENT_ID"),
    XCTable("xc_quota_relationship", ("QUOTA_RELATIONSHIP_ID",)),
    XCTable("xc_quota_totals", ("QUOTA_TOTALS_ID",)),
    *_with_hist("xc_position", "POSITION_ID"),
    *_with_hist("xc_pos_hierarchy", "POS_HIERARCHY_ID"),
    *_with_hist("xc_pos_hierarchy_type", "POS_HIERARCHY_TYPE_ID"),
    *_with_hist("xc_pos_part_assignment", "POS_PART_ASSIGNMENT_ID"),
    *_with_hist("xc_pos_relations", "ID"),
    *_with_hist("xc_pos_rel_type", "POS_REL_TYPE_ID"),
    *_with_hist("xc_pos_title_assignment", "POS_TITLE_ASSIGNMENT_ID"),
    XCTable("xc_role", ("ROLE_ID",)),
    # GitLab's analytics sources.
    XCTable("xc_participant", ("PARTICIPANT_ID",)),
    XCTable("xc_user", ("USER_ID",)),
    XCTable("xc_commission", ("COMMISSION_ID",)),
    XCTable("xc_plan", ("PLAN_ID",)),
    XCTable("xc_period", ("PERIOD_ID",)),
    XCTable("xc_period_type", ("PERIOD_TYPE_ID",)),  # decided: the extracts name no key
    XCTable("xc_plan_assignment", ("PLAN_ASSIGNMENT_ID",)),
    XCTable("xc_rule", ("RULE_ID",)),
    XCTable("xc_plan_approval", ("PLAN_APPROVAL_ID",)),  # decided
    XCTable("xc_planrules", ("PLAN_ID", "RULE_ID")),  # decided: a link table of plans and rules
    XCTable("xc_comp_order_item", ("COMP_ORDER_ITEM_ID",)),
    XCTable("xc_comp_order_item_detail", ("COMP_ORDER_ITEM_DETAIL_ID",)),  # decided
)

_BY_STREAM = {table.stream: table for table in TABLES}


def table_by_stream(stream: str) -> XCTable | None:
    """The table of a stream name, or None."""
    return _BY_STREAM.get(stream)
