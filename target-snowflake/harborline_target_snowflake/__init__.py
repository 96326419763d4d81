"""Singer target for Snowflake: the Snowflake dialect of the Harborline warehouse loader."""

from __future__ import annotations

from importlib.metadata import version

#: The one source of the version is pyproject.toml; this reads what was installed.
__version__ = version("harborline-target-snowflake")
