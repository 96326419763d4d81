"""The Singer SDK's standard target suite against the emulator."""

from __future__ import annotations

import uuid

from singer_sdk.testing import get_target_test_class
from st_helpers import base_config

from harborline_target_snowflake.target import TargetSnowflake

TestTargetSnowflakeStandard = get_target_test_class(
    TargetSnowflake,
    config=base_config(f"sdk_{uuid.uuid4().hex[:8]}"),
)
