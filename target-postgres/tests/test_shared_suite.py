"""The shared warehouse rule and bad-input suites (harborline_singer_shared.testing.warehouse_suite) on PostgreSQL.

The same assertions run for every warehouse target; PostgreSQL-only checks stay in test_rules.py and
test_bad_input.py.
"""

from __future__ import annotations

import pytest
from tp_helpers import PostgresProbe

from harborline_singer_shared.testing.warehouse_suite import WarehouseBadInputSuite, WarehouseRulesSuite


@pytest.fixture
def probe(db):
    return PostgresProbe(db)


class TestRules(WarehouseRulesSuite):
    pass


class TestBadInput(WarehouseBadInputSuite):
    pass
