"""Shared fixtures for the shared package's own tests (the same plugin every package uses)."""

from __future__ import annotations

pytest_plugins = ["harborline_singer_shared.testing.fixtures"]
