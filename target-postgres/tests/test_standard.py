"""The Singer SDK's standard target suite, with no exclusions, against a real PostgreSQL."""

from __future__ import annotations

from singer_sdk.testing import get_target_test_class
from tp_helpers import base_config, new_database

from harborline_target_postgres.target import TargetPostgres

TestTargetPostgresStandard = get_target_test_class(
    TargetPostgres,
    config=base_config(new_database("sdk_standard")),
)
