"""The target's input loop: Singer lines parsed with msgspec (exact decimals), each error naming its input line.

RECORD lines of a stream with a typed record path skip the generic dict path: the envelope is decoded alone and the
record goes to its sink as raw JSON (see `LineReader.on_raw_record` and `hot`).
"""

from __future__ import annotations

import decimal
import re
import sys
import typing as t
from collections import Counter, defaultdict

import msgspec
from singer_sdk.exceptions import MissingKeyPropertiesError, RecordsWithoutSchemaException
from singer_sdk.singerlib.encoding.base import GenericSingerReader
from singer_sdk.singerlib.exceptions import InvalidInputLine

from harborline_singer_shared.rules import IncompatibleSchemaChangeError
from harborline_singer_shared.rules.plan import MissingKeyColumnError
from harborline_singer_shared.warehouse.errors import TargetLoadError

_decode = msgspec.json.Decoder(float_hook=decimal.Decimal).decode


class _Envelope(msgspec.Struct):
    """A Singer message's envelope; the record stays raw JSON until its stream's typed decoder reads it."""

    type: str
    stream: str | None = None
    record: msgspec.Raw = msgspec.Raw(b"null")
    version: int | None = None


_decode_envelope = msgspec.json.Decoder(_Envelope).decode

#: Errors that are the input's or the warehouse's fault: reported as one line, exit code 1, no traceback (a dialect
#: adds its own, e.g. connection errors).
CLEAR_ERRORS: tuple[type[BaseException], ...] = (
    TargetLoadError,
    IncompatibleSchemaChangeError,
    MissingKeyColumnError,
    MissingKeyPropertiesError,
    RecordsWithoutSchemaException,
    InvalidInputLine,
)


_STREAM_IN_LINE = re.compile(rb'"stream"\s*:\s*"((?:[^"\\]|\\.){1,200})"')


#: An error message that begins by naming its stream: `stream 'x': the rest` (or `stream "it's": ...`).
_STREAM_PREFIX = re.compile(r"""(stream (?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")): (.*)""", re.DOTALL)


def _stream_hint(raw: str | bytes) -> str:
    """`stream 'x', ` when a malformed line still shows its stream name (e.g. a truncated RECORD), else ''."""
    data = raw.encode("utf-8", "replace") if isinstance(raw, str) else bytes(raw)
    match = _STREAM_IN_LINE.search(data[:4096])
    if match is None:
        return ""
    try:
        name = msgspec.json.decode(b'"' + match.group(1) + b'"')
    except msgspec.DecodeError:
        return ""
    return f"stream {name!r}, "


def _at_line(line: int, message: str) -> str:
    """`stream 'x', input line N: ...`: the one order every error line uses (`input line N: ...` without a stream)."""
    match = _STREAM_PREFIX.match(message)
    if match is not None:
        return f"{match.group(1)}, input line {line}: {match.group(2)}"
    return f"input line {line}: {message}"


class LineReader(GenericSingerReader[t.Any]):
    """Singer reader that parses with msgspec (exact decimals) and knows the input line of every message."""

    def __init__(self) -> None:
        super().__init__()
        self.line_number = 0
        #: Called before the first line is read (the target checks its connection there).
        self.on_start: t.Callable[[], None] | None = None
        self.on_failure: t.Callable[[], None] | None = None
        #: (stream, raw record) -> True when handled; False sends the line through the generic dict path.
        self.on_raw_record: t.Callable[[str | None, msgspec.Raw, int | None], bool] | None = None
        #: The stream whose records came last, as (line, lines) -> first line it did not take (or None): the tight
        #: loop that takes a run of that stream's RECORD lines, one msgspec call and one row each.
        self.hot: t.Callable[[bytes, t.Iterator[bytes]], bytes | None] | None = None
        #: Records taken by `hot` (for the end-of-run summary).
        self.hot_records = 0
        #: Errors whose message gets `input line N` added (the target's one-line errors).
        self.clear_errors: tuple[type[BaseException], ...] = CLEAR_ERRORS

    @property
    def default_input(self) -> t.IO[t.Any]:
        """Standard input as bytes (decoding is msgspec's job), read in 1 MiB blocks: fewer refills per line."""
        try:
            return open(sys.stdin.fileno(), "rb", buffering=1 << 20, closefd=False)
        except (AttributeError, OSError, ValueError):  # a replaced sys.stdin without a file descriptor
            return sys.stdin.buffer

    def deserialize_json(self, line: t.Any) -> dict[str, t.Any]:
        """Parse one line; a malformed one is named by its number."""
        try:
            value = _decode(line)
        except msgspec.DecodeError as exc:
            msg = f"input line {self.line_number}: malformed JSON ({exc}); the open batch was not committed"
            raise InvalidInputLine(msg) from None
        if not isinstance(value, dict):
            msg = f"input line {self.line_number}: a Singer message must be a JSON object"
            raise InvalidInputLine(msg)
        return value

    def _started(self) -> None:
        if self.on_start is not None:
            self.on_start()

    def process_lines(
        self,
        file_input: t.IO[t.Any] | None,
        callbacks: dict[str, t.Callable[[dict[str, t.Any]], None]],
    ) -> t.Counter[str]:
        """The SDK's loop, made lean for RECORD messages, with the input line number in every error."""
        stats: dict[str, int] = defaultdict(int)
        on_record = callbacks["RECORD"]
        on_raw = self.on_raw_record
        records = 0
        self.hot_records = 0
        self._started()
        lines = iter(file_input or self.default_input)
        try:
            for raw in lines:
                self.line_number += 1
                if self.hot is not None:
                    raw = self.hot(raw, lines)  # noqa: PLW2901 - the line it handed back, if any
                    if raw is None:
                        continue
                if on_raw is not None:
                    # Fast path: decode only the envelope; a typed stream decodes its record straight into a struct.
                    try:
                        envelope: _Envelope | None = _decode_envelope(raw)
                    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
                        envelope = None  # the generic path below says precisely what is wrong
                    if (
                        envelope is not None
                        and envelope.type == "RECORD"
                        and on_raw(envelope.stream, envelope.record, envelope.version)
                    ):
                        records += 1
                        continue
                try:
                    message = _decode(raw)
                except (msgspec.DecodeError, UnicodeDecodeError) as exc:
                    if not raw.strip():
                        continue
                    msg = (
                        f"{_stream_hint(raw)}input line {self.line_number}: malformed JSON ({exc}); "
                        "the open batch was not committed"
                    )
                    raise InvalidInputLine(msg) from None
                if message.__class__ is not dict:
                    msg = f"input line {self.line_number}: a Singer message must be a JSON object"
                    raise InvalidInputLine(msg)
                kind = message.get("type")
                if kind == "RECORD":
                    on_record(message)
                    records += 1
                    continue
                callback = callbacks.get(kind) if isinstance(kind, str) else None
                if callback is None:
                    msg = f"input line {self.line_number}: unknown or missing message type {kind!r}"
                    raise InvalidInputLine(msg)
                callback(message)
                stats[str(kind)] += 1
        except BaseException as exc:
            if (
                isinstance(exc, self.clear_errors)
                and exc.args
                and isinstance(exc.args[0], str)
                and "input line" not in exc.args[0]
            ):
                exc.args = (_at_line(self.line_number, exc.args[0]), *exc.args[1:])
            if self.on_failure is not None:
                self.on_failure()
            raise
        stats["RECORD"] += records + self.hot_records
        return Counter(**stats)
