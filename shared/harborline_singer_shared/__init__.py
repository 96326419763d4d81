"""Shared internals of the Harborline Singer connectors.

Every tap and target depends on this package so that auth, pagination, retry, pseudonymization and the
target rule engine exist once. It never imports a plugin.
"""

from __future__ import annotations

from importlib.metadata import version

#: The one source of the version is pyproject.toml; this reads what was installed.
__version__ = version("harborline-singer-shared")
