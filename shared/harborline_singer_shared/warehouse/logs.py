"""Log lines that cannot be forged: control characters from the input are escaped before any handler sees them."""

from __future__ import annotations

import logging
import re

#: Characters that must not reach a log line raw: a stream or property name holding them could forge or hide lines.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _escape_control(text: str) -> str:
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


class ControlCharacterFilter(logging.Filter):
    """Escape control characters (repr-style: `\\n`, `\\x1b`) in every log line, its logger name included.

    Names come from the input (stream and property names are any JSON string); the SDK's own lines and the per-stream
    logger names use them raw. Costs nothing per record: it runs per log line.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place when it holds a control character; never drop it."""
        if _CONTROL.search(record.name):
            record.name = _escape_control(record.name)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string is the logging module's to report
            return True
        if _CONTROL.search(message):
            record.msg = _escape_control(message)
            record.args = None
        return True


def install_control_character_filter(logger: logging.Logger) -> None:
    """Attach the filter to every handler `logger`'s records reach (once)."""
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if not any(isinstance(f, ControlCharacterFilter) for f in handler.filters):
                handler.addFilter(ControlCharacterFilter())
        if not current.propagate:
            break
        current = current.parent
