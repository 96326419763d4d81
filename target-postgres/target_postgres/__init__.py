"""Singer target for PostgreSQL."""

from __future__ import annotations
