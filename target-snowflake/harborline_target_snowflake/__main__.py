"""`python -m harborline_target_snowflake` runs the target."""

from __future__ import annotations

from harborline_target_snowflake.target import TargetSnowflake

TargetSnowflake.cli()
