"""Defence in depth against secrets in logs.

Why: plugin code should never log a secret, but a vendor error body echoing an API key, an
exception message containing a DSN, or a careless ``logger.debug(config)`` happens. Log lines end up
in Meltano's logs, CI output and support tickets, so every plugin installs a filter that replaces
the values of its secret settings with ``***`` before any handler writes the line.

Python applies a *logger's* filters only to records created on that very logger, not to records
propagated from child loggers; handler filters see everything. :func:`install_secret_redaction`
therefore puts one filter on the logger and on every handler that the logger's records reach at
install time. Install it after logging is configured (the Singer SDK configures it when the plugin
class is invoked, before the plugin object exists).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "MIN_SECRET_LENGTH",
    "REDACTED",
    "SecretRedactionFilter",
    "install_secret_redaction",
    "secret_values_from_config",
]

REDACTED = "***"
"""What a secret is replaced with."""

MIN_SECRET_LENGTH = 4
"""Shorter values are ignored: redacting "1" or "on" would mangle every line and protect nothing."""

# Attributes every LogRecord has; anything else came in through ``extra=`` and is redacted too.
_STANDARD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class SecretRedactionFilter(logging.Filter):
    """Logging filter that replaces known secret values in a record with ``***``.

    The set of secrets can only grow (:meth:`add_secrets`); it is never shown in ``repr``.
    """

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.add_secrets(secrets)

    def __repr__(self) -> str:
        return f"<SecretRedactionFilter secrets={len(self._secrets)}>"

    @property
    def secret_count(self) -> int:
        """How many secrets are redacted (the values themselves are never exposed)."""
        return len(self._secrets)

    def add_secrets(self, secrets: Iterable[str | None]) -> None:
        """Add secrets; ``None``, empty and too-short values are ignored."""
        new = {s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET_LENGTH}
        with self._lock:
            if new <= self._secrets:
                return
            self._secrets |= new
            # Longest first, so a secret containing another one is replaced whole.
            ordered = sorted(self._secrets, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(s) for s in ordered))

    def redact(self, text: str) -> str:
        """Return ``text`` with every known secret replaced by ``***``."""
        pattern = self._pattern
        if pattern is None:
            return text
        return pattern.sub(REDACTED, text)

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place where a secret occurs; never drop it.

        Records without a secret are left untouched, because other filters and formatters
        (e.g. the SDK's metric filter and JSON formatter) inspect ``record.args``.
        """
        if self._pattern is None:
            return True
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string must still be redacted and logged
            message = f"{record.msg!s} {record.args!r}"
        redacted = self.redact(message)
        if redacted != message:
            record.msg = redacted
            record.args = None
        if record.exc_info and not record.exc_text:
            exc_text = logging.Formatter().formatException(record.exc_info)
            if self.redact(exc_text) != exc_text:
                record.exc_text = exc_text
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        for name, value in list(record.__dict__.items()):
            if name not in _STANDARD_ATTRS and isinstance(value, str):
                setattr(record, name, self.redact(value))
        return True


def _reachable_handlers(logger: logging.Logger) -> list[logging.Handler]:
    """Handlers that records of ``logger`` reach, following propagation like logging does."""
    handlers: list[logging.Handler] = []
    current: logging.Logger | None = logger
    while current is not None:
        handlers.extend(h for h in current.handlers if h not in handlers)
        if not current.propagate:
            break
        current = current.parent
    return handlers


def install_secret_redaction(
    secrets: Iterable[str | None],
    logger: logging.Logger | None = None,
) -> SecretRedactionFilter:
    """Redact ``secrets`` from everything logged through ``logger`` (default: the root logger).

    Idempotent: a second call reuses the logger's existing filter and only adds new secrets, and
    attaches it to handlers added since the first call.

    Returns:
        The filter, e.g. to add secrets later or to remove it in tests.
    """
    target = logger if logger is not None else logging.getLogger()
    existing = next((f for f in target.filters if isinstance(f, SecretRedactionFilter)), None)
    redaction = existing if existing is not None else SecretRedactionFilter()
    redaction.add_secrets(secrets)
    if existing is None:
        target.addFilter(redaction)
    for handler in _reachable_handlers(target):
        if redaction not in handler.filters:
            handler.addFilter(redaction)
    return redaction


def _is_secret(schema: Mapping[str, Any]) -> bool:
    """The SDK marks secrets with ``secret: true`` (and ``writeOnly: true``); accept either."""
    return schema.get("secret") is True or schema.get("writeOnly") is True


def _collect(value: Any, schema: Any, found: list[str]) -> None:
    """Walk config and schema together, collecting values of secret settings."""
    if not isinstance(schema, Mapping) or value is None:
        return
    if _is_secret(schema):
        _collect_all_strings(value, found)
        return
    for keyword in ("anyOf", "oneOf", "allOf"):
        for alternative in schema.get(keyword) or ():
            _collect(value, alternative, found)
    if isinstance(value, Mapping):
        properties = schema.get("properties")
        if isinstance(properties, Mapping):
            for name, sub_schema in properties.items():
                if name in value:
                    _collect(value[name], sub_schema, found)
        additional = schema.get("additionalProperties")
        if isinstance(additional, Mapping):
            known = properties if isinstance(properties, Mapping) else {}
            for name, sub_value in value.items():
                if name not in known:
                    _collect(sub_value, additional, found)
    elif isinstance(value, list):
        for item in value:
            _collect(item, schema.get("items"), found)


def _collect_all_strings(value: Any, found: list[str]) -> None:
    """A secret may be an object (e.g. a service-account JSON); every string in it is secret."""
    if isinstance(value, str):
        if value not in found:
            found.append(value)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        text = str(value)
        if text not in found:
            found.append(text)
    elif isinstance(value, Mapping):
        for item in value.values():
            _collect_all_strings(item, found)
    elif isinstance(value, list):
        for item in value:
            _collect_all_strings(item, found)


def secret_values_from_config(config: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    """Return the values of settings marked secret in ``schema`` (a ``config_jsonschema``).

    Nested objects, arrays of objects, ``anyOf``/``oneOf``/``allOf`` and ``additionalProperties``
    are followed. Feed the result to :func:`install_secret_redaction`.
    """
    found: list[str] = []
    _collect(config, schema, found)
    return found
