"""Helpers to run target-snowflake (in-process or as the real CLI) against the emulator and read tables back."""

from __future__ import annotations

import io
import json
import os
import uuid
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import sf_live
import sf_server
from sf_helpers import TEST_TIMEOUTS, session_parameters_for_tests

from harborline_singer_shared.testing.warehouse import lines_of, record_msg, schema_msg, state_msg  # noqa: F401
from harborline_singer_shared.testing.zygote import Zygote
from harborline_target_snowflake import connector
from harborline_target_snowflake.target import TargetSnowflake

#: `python -m harborline_target_snowflake` runs, forked from one interpreter that imported the target once (the
#: connector alone takes 1.5 s to import; see the zygote module). test_cli starts one run as a plain subprocess.
CLI = Zygote("harborline_target_snowflake")


def base_config(schema: str, settings: dict[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    """The target's config for `schema` in the account of `settings` (default: the emulator)."""
    account = settings if settings is not None else sf_server.settings()
    config = {**account, "default_target_schema": schema, **overrides}
    return {k: v for k, v in config.items() if v is not None}


class RunResult:
    def __init__(self, stdout: str, stderr: str, returncode: int = 0) -> None:
        self.stdout = stdout
        self.stderr = stderr
        self.returncode = returncode

    @property
    def states(self) -> list[Any]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    @property
    def errors(self) -> list[str]:
        """The error lines of stderr (the SDK's log format ends the level with a space)."""
        return [line for line in self.stderr.splitlines() if " ERROR " in line or line.startswith("ERROR")]


def one_error_line(result: RunResult, secrets: tuple[str, ...] = ("snow-secret-password",)) -> str:
    """The run failed with exactly one error line, no traceback, and no secret anywhere in its output."""
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    for secret in secrets:
        assert secret not in result.stderr + result.stdout
    assert len(result.errors) == 1, result.errors
    return result.errors[0]


def new_schema() -> str:
    """A fresh schema name (not created)."""
    return f"s_{uuid.uuid4().hex[:10]}"


class Warehouse:
    """One test's schema in an account (default the emulator; see sf_live): run the target into it, read its tables
    back. A live account's schema is dropped by `close`."""

    def __init__(self, tmp_path: Path, settings: dict[str, Any] | None = None) -> None:
        self.settings = dict(settings) if settings is not None else sf_server.settings()
        self.live = self.settings.get("account") != sf_server.ACCOUNT
        self.schema = sf_live.schema_name() if self.live else new_schema()
        self.tmp_path = tmp_path
        self._conn: Any = None

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values no output may hold: the account's password, key lines, passphrase."""
        return tuple(sf_live.secrets()) if self.live else ("snow-secret-password",)

    def config(self, **overrides: Any) -> dict[str, Any]:
        return base_config(self.schema, self.settings, **overrides)

    def target(self, **overrides: Any) -> TargetSnowflake:
        return TargetSnowflake(config=self.config(**overrides), validate_config=True)

    def run(self, messages: list[Any] | str, **overrides: Any) -> RunResult:
        """Run the target in-process to the end of input (raises what the target raises)."""
        text = messages if isinstance(messages, str) else lines_of(messages)
        target = self.target(**overrides)
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            target.listen(io.StringIO(text))
        return RunResult(out.getvalue(), err.getvalue())

    def cli(self, messages: list[Any] | str | bytes, *, timeout: float = 120, **overrides: Any) -> RunResult:
        """Run the real CLI as a subprocess with the input on stdin (bytes: sent as they are)."""
        if isinstance(messages, bytes):
            data = messages
        else:
            data = (messages if isinstance(messages, str) else lines_of(messages)).encode("utf-8")
        path = self.tmp_path / f"config-{uuid.uuid4().hex[:6]}.json"
        path.write_text(json.dumps(self.config(**overrides)))
        proc = CLI.run(["--config", str(path)], input=data, timeout=timeout, env=cli_env())
        return RunResult(
            proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace"), proc.returncode
        )

    # -- reading back -------------------------------------------------------------------------------------------

    @property
    def conn(self) -> Any:
        if self._conn is None:
            params = session_parameters_for_tests(self.settings)
            timeouts = {} if self.live else TEST_TIMEOUTS
            self._conn = connector.connect(self.settings, session_parameters=params, **timeouts)
        return self._conn

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        cur = self.conn.cursor()
        cur.execute(sql)
        return [tuple(r) for r in cur.fetchall()] if cur.description else []

    def table(self, name: str) -> str:
        return connector.qualified(self.schema, name)

    def tables(self) -> list[str]:
        rows = self.query(
            f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{self.schema.upper()}' ORDER BY 1"
        )
        return [r[0] for r in rows]

    def columns(self, table: str) -> dict[str, str]:
        """Column name (as stored) -> data type, in table order."""
        rows = self.query(
            "SELECT column_name, data_type, numeric_precision, numeric_scale FROM information_schema.columns "
            f"WHERE table_schema = '{self.schema.upper()}' AND table_name = '{connector.stored_name(table)}' "
            "ORDER BY ordinal_position"
        )
        return {r[0]: (f"NUMBER({r[2]},{r[3]})" if r[1] == "NUMBER" else r[1]) for r in rows}

    def rows(self, table: str, columns: list[str], order: str | None = None) -> list[tuple[Any, ...]]:
        cols = ", ".join(connector.quote(c) for c in columns)
        order_by = connector.quote(order or columns[0])
        return self.query(f"SELECT {cols} FROM {self.table(table)} ORDER BY {order_by}")

    def count(self, table: str, where: str = "TRUE") -> int:
        return int(self.query(f"SELECT COUNT(*) FROM {self.table(table)} WHERE {where}")[0][0])

    def close(self) -> None:
        """Close the reading connection; on a live account first drop the test's schema."""
        if self.live:
            self.query(f"DROP SCHEMA IF EXISTS {connector.quote(self.schema)} CASCADE")
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def cli_env() -> dict[str, str]:
    """The caller's environment without settings that would leak into the run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TARGET_SNOWFLAKE_", "MELTANO_"))}
    env["PYTHONWARNINGS"] = "ignore"
    return env
