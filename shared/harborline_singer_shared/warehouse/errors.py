"""Errors of a warehouse load that the user can act on: one line each, exit code 1, no traceback."""

from __future__ import annotations


class TargetLoadError(Exception):
    """A load problem with one clear message (stream, input line, column); the run stops with exit code 1."""


class RecordTypeError(TargetLoadError):
    """A record value does not match its schema's type."""
