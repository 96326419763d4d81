"""Snowflake's errors in the emulator: COPY's rejection of a staged value, worded as Snowflake words it, and faults
a test injects at a chosen statement.

- COPY with ON_ERROR=ABORT_STATEMENT: Snowflake refuses the statement with the value, the file, the line and
  character, and the row and column (documented; public logs show the form below). fakesnow passes DuckDB's own
  conversion message through instead, so the target's mapping of row and column back to the input could not be
  tested; here the staged file is read again to find the refused value and the message is rebuilt in Snowflake's form:

      Numeric value 'x' is not recognized
        File 'batch_1.csv.gz', line 3, character 5
        Row 2, column "HL_STAGE_..."["N":2]
        If you would like to continue loading when an error is encountered, use other values such as ...

  Error numbers as Snowflake gives them for a cast: 100038 number, 100039 number out of range, 100040 date,
  100035 timestamp; 100037 (boolean) and 100108 (time) are assumptions. The wording of real messages is not proven.
- `FAULTS.inject(...)`: the emulator refuses a chosen statement with a chosen Snowflake error (a statement timeout,
  a lock wait, a privilege error) as Snowflake answers, so the real target process meets the fault at a
  deterministic moment (on the statement, never on time).
"""

from __future__ import annotations

import csv
import decimal
import gzip
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fakesnow.cursor
import snowflake.connector.errors
from sqlglot import exp


def _error(message: str, errno: int, sqlstate: str) -> snowflake.connector.errors.ProgrammingError:
    """An error the server sends as Snowflake does: the message alone (the server adds number and state).

    `done_format_msg`: else the connector prefixes the number, and at INFO level a `None:` query id, to `msg`,
    which fakesnow sends as the message, so the text would depend on this process's log level.
    """
    error = snowflake.connector.errors.ProgrammingError
    return error(msg=message, errno=errno, sqlstate=sqlstate, done_format_msg=True)


# -- COPY's rejection message ---------------------------------------------------------------------------------------

_DUCK_VALUE = re.compile(
    r'Error when converting column "column(\d+)"\. Could not convert string "(.*)" to \'([^\']+)\''
)
_DUCK_FILE = re.compile(r"^\s*file = (.+)$", re.MULTILINE)
_CONTINUE_HINT = (
    "If you would like to continue loading when an error is encountered, use other values such as 'SKIP_FILE' or "
    "'CONTINUE' for the ON_ERROR option. For more information on loading options, please run 'info loading_data' "
    "in a SQL client."
)


def _wording(duck_type: str, value: str) -> tuple[str, int]:
    """Snowflake's message and error number for a value its column's type refuses."""
    kind = duck_type.upper()
    if kind.startswith(("DECIMAL", "BIGINT", "INTEGER", "HUGEINT", "DOUBLE", "SMALLINT")):
        try:
            decimal.Decimal(value)
        except decimal.InvalidOperation:
            return f"Numeric value '{value}' is not recognized", 100038
        return f"Numeric value '{value}' is out of range", 100039
    if kind.startswith("TIMESTAMP"):
        return f"Timestamp '{value}' is not recognized", 100035
    if kind == "DATE":
        return f"Date '{value}' is not recognized", 100040
    if kind == "BOOLEAN":
        return f"Boolean value '{value}' is not recognized", 100037
    if kind.startswith("TIME"):
        return f"Time '{value}' is not recognized", 100108
    return f"Value '{value}' is not recognized", 100038


def _locate(path: Path, index: int, value: str) -> tuple[int, int, int] | None:
    """(row, line, character) of the first record whose field `index` holds `value`, all counted from 1.

    The file is the target's CSV form (tab-separated, every value enclosed in quotes, NULL an empty field), so a
    record spans several lines where a value holds newlines: the row and the line differ from then on.
    """
    with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter="\t", quotechar='"')
        start = 1
        for row, fields in enumerate(reader, 1):
            if index < len(fields) and fields[index] == value:
                before = "".join(f'"{f.replace(chr(34), chr(34) * 2)}"\t' if f else "\t" for f in fields[:index])
                line = start + before.count("\n")
                return row, line, len(before) - (before.rfind("\n") + 1) + 1
            start = reader.line_num + 1
    return None


def _snowflake_copy_error(exc: snowflake.connector.errors.ProgrammingError, expr: exp.Copy) -> Exception | None:
    """Snowflake's ABORT_STATEMENT error for DuckDB's conversion error `exc` (None: not one we can reword)."""
    text = str(exc.msg)
    value, file = _DUCK_VALUE.search(text), _DUCK_FILE.search(text)
    if value is None or file is None:
        return None
    index, raw, duck_type = int(value.group(1)), value.group(2), value.group(3)
    path = Path(file.group(1).strip())
    located = _locate(path, index, raw) if path.is_file() else None
    target = expr.this
    columns = [c.name for c in target.expressions] if isinstance(target, exp.Schema) else []
    table = target.this.name if isinstance(target, exp.Schema) else target.name
    if located is None or index >= len(columns):
        return None
    row, line, character = located
    message, errno = _wording(duck_type, raw)
    msg = (
        f"{message}\n  File '{path.name}', line {line}, character {character}\n"
        f'  Row {row}, column "{table}"["{columns[index]}":{index + 1}]\n  {_CONTINUE_HINT}'
    )
    return _error(msg, errno, "22018")


def _copy_into(original: Any) -> Any:
    def copy_into(duck_conn: Any, database: Any, schema: Any, expr: exp.Copy, *args: Any, **kwargs: Any) -> str:
        try:
            return original(duck_conn, database, schema, expr, *args, **kwargs)
        except snowflake.connector.errors.ProgrammingError as exc:
            if exc.errno != 100038 or (reworded := _snowflake_copy_error(exc, expr)) is None:
                raise
            raise reworded from None

    return copy_into


# -- faults injected by tests ------------------------------------------------------------------------------------


@dataclass
class Fault:
    """Refuse the statements matching `pattern` (from the start) with Snowflake error `errno`.

    The first `skip` matches run normally, the next `times` are refused; `seen` counts the matches, `hits` the
    refusals (`times=0`: only count). With `after`, the statement runs first and its answer is the error: an
    answer lost after the work was done (a COMMIT that took, as far as the client can tell, may not have).
    """

    pattern: re.Pattern[str]
    errno: int
    message: str
    sqlstate: str
    skip: int = 0
    times: int = 1
    after: bool = False
    seen: int = 0
    hits: int = 0


class Faults:
    """The faults armed for the running test (the server answers from several threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed: list[Fault] = []

    def inject(
        self,
        pattern: str,
        errno: int,
        message: str,
        *,
        sqlstate: str = "57014",
        skip: int = 0,
        times: int = 1,
        after: bool = False,
    ) -> Fault:
        """Arm a fault; `pattern` is a regular expression matched at the start of the statement text."""
        fault = Fault(re.compile(pattern), errno, message, sqlstate, skip, times, after)
        with self._lock:
            self._armed.append(fault)
        return fault

    def count(self, pattern: str) -> Fault:
        """Only count the statements matching `pattern` (`seen`)."""
        return self.inject(pattern, 0, "", times=0)

    def clear(self) -> None:
        with self._lock:
            self._armed.clear()

    def check(self, command: str, *, after: bool = False) -> None:
        """Raise the error of the first armed fault this statement triggers (as Snowflake would answer).

        Called before the statement runs, and with `after` once it has run (for the faults armed with `after`).
        """
        with self._lock:
            for fault in self._armed:
                if fault.after != after or not fault.pattern.match(command):
                    continue
                fault.seen += 1
                if fault.seen > fault.skip and fault.hits < fault.times:
                    fault.hits += 1
                    raise _error(fault.message, fault.errno, fault.sqlstate)


#: The emulator's armed faults (the `faults` fixture clears them after each test).
FAULTS = Faults()


def install() -> None:
    """Word COPY's conversion errors as Snowflake does (called once by `fakesnow_shims.install`)."""
    fakesnow.cursor.copy_into = _copy_into(fakesnow.cursor.copy_into)  # type: ignore[attr-defined]
