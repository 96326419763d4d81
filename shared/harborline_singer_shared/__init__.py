"""Shared internals of the Harborline Singer connectors.

Every tap and target depends on this package so that auth, pagination, retry, pseudonymization and the
target rule engine exist once. It never imports a plugin.
"""

from __future__ import annotations

__version__ = "0.1.0"
