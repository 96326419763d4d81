"""Database faults during a load (issue 11): never a STATE for rows that were not committed.

Transient faults (connection lost, server shut down or restarted) are retried: the batch is redone on a new connection
from the data the target kept, and the table ends exactly as without the fault. Other failures stop the run before any
later STATE with one clear error line and a non-zero exit; so does a BATCH message (refused, its files never opened).

The CLI runs as a subprocess fed through a pipe; each test waits on the event it needs (a STATE line on stdout, a log
line, a COPY seen on the server, the process's exit), never on a wall-clock pause.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import queue
import shutil
import subprocess
import threading
from contextlib import redirect_stdout
from typing import Any

import psycopg2
import pytest
from tp_helpers import (
    SERVER,
    Db,
    cli_argv,
    cli_env,
    cli_popen,
    lines_of,
    new_database,
    new_schema,
    record_msg,
    schema_msg,
    state_msg,
)

from harborline_singer_shared.retry import ManualClock, RetryPolicy
from harborline_singer_shared.testing.postgres import find_system_bindir
from harborline_target_postgres import sinks
from harborline_target_postgres.sinks import PostgresSink, TargetLoadError

#: A safety net for a hung process only: every wait below ends on an event long before this.
HUNG = 120

SCHEMA_S = schema_msg("s", {"id": {"type": "integer"}, "v": {"type": "string"}}, ["id"])


def records(start: int, stop: int) -> list[dict[str, Any]]:
    return [record_msg("s", {"id": i, "v": f"v{i}"}) for i in range(start, stop)]


class Piped:
    """The CLI with stdin as a pipe the test writes to, stdout read line by line while it runs."""

    def __init__(self, db: Db, **overrides: Any) -> None:
        argv = [*cli_argv(), "--config", str(db.config_file(**overrides))]
        self.proc = cli_popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env()
        )
        self.states: list[Any] = []
        self._lines: queue.Queue[bytes | None] = queue.Queue()
        self._stderr: list[bytes] = []
        self._log: queue.Queue[bytes | None] = queue.Queue()
        threading.Thread(target=self._pump_stdout, daemon=True).start()
        self._err = threading.Thread(target=self._pump_stderr, daemon=True)
        self._err.start()

    def _pump_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line)
            self._log.put(line)
        self._log.put(None)

    def wait_for_log(self, text: str) -> None:
        """Read the target's log until a line containing `text` appears."""
        while True:
            line = self._log.get(timeout=HUNG)
            assert line is not None, f"the target ended without logging {text!r}"
            if text in line.decode("utf-8", "replace"):
                return

    def _pump_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def send(self, messages: list[Any]) -> None:
        assert self.proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):  # the target stopped on an error: its exit code and stderr say why
            self.proc.stdin.write(lines_of(messages).encode())
            self.proc.stdin.flush()

    def wait_for_state(self, wanted: Any) -> None:
        """Read stdout until the STATE `wanted` appears (fails if the target ends without writing it)."""
        while True:
            line = self._lines.get(timeout=HUNG)
            assert line is not None, f"the target ended without writing STATE {wanted}; stdout: {self.states}"
            self.states.append(json.loads(line))
            if self.states[-1] == wanted:
                return

    def finish(self) -> tuple[int, str]:
        """Close stdin, wait for the exit; (exit code, stderr). Every STATE written is in `states`."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.close()
        code = self.proc.wait(timeout=HUNG)
        while (line := self._lines.get(timeout=HUNG)) is not None:
            self.states.append(json.loads(line))
        self._err.join(HUNG)
        return code, b"".join(self._stderr).decode("utf-8", "replace")


@pytest.fixture
def own_db(tmp_path):
    """A database of its own: the test terminates every target-postgres backend connected to it."""
    database = Db(new_database("faults"), new_schema(), tmp_path)
    yield database
    database.close()


def terminate_target_backends(db: Db) -> int:
    rows = db.query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = 'target-postgres' AND datname = current_database()"
    )
    return len(rows)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "ERROR" in line or "Traceback" in line]


def assert_states_committed(db: Db, states: list[Any], table: str = "s") -> None:
    """Every STATE written follows only committed records: ids below its `pos` are all in the table."""
    committed = {row[0] for row in db.rows(table, "id")}
    for state in states:
        pos = state["pos"]
        assert set(range(pos)) <= committed, f"STATE {state} was written, but ids below {pos} are not all committed"


def test_connections_lost_between_batches_are_redone_and_no_state_runs_ahead(own_db):
    """Issue 11's repro: the target's connections are terminated between two batches. The STATE after records
    1000-1499 used to go out although they were never committed (a tap resuming from it skips them). Now the batch is
    redone on a new connection from the data the target kept: every row lands once, each STATE after its commit."""
    db = own_db
    live = Piped(db, batch_size_rows=1000)
    live.send([SCHEMA_S, *records(0, 1000), state_msg({"pos": 1000})])
    live.wait_for_state({"pos": 1000})  # ids 0-999 committed
    live.send([*records(1000, 1500), state_msg({"pos": 1500})])
    assert terminate_target_backends(db) >= 1
    live.send(records(1500, 3000))
    code, stderr = live.finish()

    assert_states_committed(db, live.states)
    assert code == 0, stderr
    assert live.states == [{"pos": 1000}, {"pos": 1500}]
    assert db.rows("s", "id, v") == [(i, f"v{i}") for i in range(3000)]
    assert "Traceback" not in stderr, stderr
    assert error_lines(stderr) == [], stderr
    assert "redoing the batch" in stderr, stderr


def test_connection_lost_mid_copy_is_redone_without_duplicates(own_db):
    """Terminated while the open batch streams by COPY (append-only: a row sent twice would show): the batch is sent
    again on a new connection, every row lands exactly once, and STATE goes out only after its records."""
    db = own_db
    keyless = schema_msg("s", {"id": {"type": "integer"}, "v": {"type": "string"}})
    pad = "x" * 300  # rows large enough that the open batch streams in several chunks before it is full

    def rows(start: int, stop: int) -> list[dict[str, Any]]:
        return [record_msg("s", {"id": i, "v": f"{pad}{i}"}) for i in range(start, stop)]

    live = Piped(db, batch_size_rows=6000)
    live.send([keyless, *rows(0, 4000), state_msg({"pos": 4000})])
    # Wait for the event: a COPY of the open batch in progress on the server.
    while not db.query(
        "SELECT 1 FROM pg_stat_activity WHERE application_name = 'target-postgres' "
        "AND datname = current_database() AND query LIKE 'COPY%%' AND state = 'active'"
    ):
        assert live.proc.poll() is None, "the target ended before its COPY was seen"
    assert terminate_target_backends(db) >= 1
    live.send([*rows(4000, 7000), state_msg({"pos": 7000})])  # the batch fills at 5999: its commit must be redone
    live.send(rows(7000, 8000))
    code, stderr = live.finish()

    assert_states_committed(db, live.states)
    assert code == 0, stderr
    assert live.states == [{"pos": 4000}, {"pos": 7000}]
    assert db.query(f'SELECT count(*), count(DISTINCT id), min(id), max(id) FROM "{db.schema}".s') == [
        (8000, 8000, 0, 7999)
    ]
    assert error_lines(stderr) == [], stderr


def test_commit_whose_acknowledgement_was_lost_is_not_redone(db, monkeypatch):
    """The connection drops after the server committed but before the target heard so: the batch is not redone (an
    append-only stream would get every row twice); the transaction's status on the server decides."""
    commit_once = PostgresSink._commit_once
    lost = []

    def ack_lost(self, job, conn, *args):
        commit_once(self, job, conn, *args)
        if not lost:
            lost.append(True)
            conn.close()
            raise psycopg2.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(PostgresSink, "_commit_once", ack_lost)
    keyless = schema_msg("s", {"id": {"type": "integer"}, "v": {"type": "string"}})
    result = db.run([keyless, *records(0, 5), state_msg({"pos": 5})], batch_size_rows=3)
    assert lost
    assert db.rows("s", "id") == [(i,) for i in range(5)]
    assert result.states == [{"pos": 5}]


def test_batch_message_is_refused_without_reading_its_manifest(db, tmp_path):
    """Issue 11: BATCH records were silently dropped (exit 0, STATE after them) and the manifest path was opened.
    BATCH is refused with one clear line naming stream and input line; its files are never opened."""
    fifo = tmp_path / "manifest.jsonl"
    os.mkfifo(fifo)
    opened = threading.Event()
    released = threading.Event()

    def writer() -> None:
        with fifo.open("wb") as fh:  # returns once a reader opens the FIFO
            if not released.is_set():
                opened.set()
            fh.write(b'{"id": 99, "v": "from the manifest"}\n')

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    batch = {
        "type": "BATCH",
        "stream": "s",
        "encoding": {"format": "jsonl", "compression": "none"},
        "manifest": [fifo.as_uri()],
    }
    messages = [SCHEMA_S, *records(0, 3), state_msg({"pos": 3}), batch, state_msg({"pos": 100})]
    try:
        result = db.cli(messages, batch_size_rows=2, timeout=HUNG)
    finally:
        released.set()
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # lets the writer's open return if nobody else did
        thread.join(HUNG)
        os.close(fd)
    assert not opened.is_set(), "the target opened the BATCH manifest"
    assert result.returncode != 0
    assert {"pos": 100} not in result.states
    assert "Traceback" not in result.stderr, result.stderr
    errors = error_lines(result.stderr)
    assert len(errors) == 1, result.stderr
    assert "stream 's'" in errors[0], errors[0]
    assert "input line 6" in errors[0], errors[0]
    assert "BATCH" in errors[0], errors[0]
    assert 99 not in {row[0] for row in db.rows("s", "id")}


def test_batch_message_with_a_file_url_outside_the_project_is_refused(db):
    batch = {
        "type": "BATCH",
        "stream": "s",
        "encoding": {"format": "jsonl", "compression": "none"},
        "manifest": ["file:///etc/passwd"],
    }
    result = db.cli([SCHEMA_S, batch], timeout=HUNG)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    errors = error_lines(result.stderr)
    assert len(errors) == 1, result.stderr
    assert "stream 's', input line 2" in errors[0], errors[0]


def test_commit_refused_by_the_server_stops_the_run_before_any_later_state(own_db):
    """The same rule when the server refuses a commit outright (here: a lock timeout, as a statement_timeout would):
    not retried, the STATE after its records never goes out, one clear line, exit 1."""
    db = own_db
    db.execute(f"ALTER DATABASE \"{db.dbname}\" SET lock_timeout = '50ms'")  # for the target's connections
    live = Piped(db, batch_size_rows=1000)
    live.send([SCHEMA_S, *records(0, 1000), state_msg({"pos": 1000})])
    live.wait_for_state({"pos": 1000})
    locker = psycopg2.connect(**SERVER.connect_kwargs(db.dbname))
    try:
        with locker.cursor() as cur:
            cur.execute("SET lock_timeout = 0")
            cur.execute(f'LOCK TABLE "{db.schema}".s IN ACCESS EXCLUSIVE MODE')  # held until the target has ended
        live.send([*records(1000, 1500), state_msg({"pos": 1500}), *records(1500, 3000)])
        code, stderr = live.finish()
    finally:
        locker.rollback()
        locker.close()

    assert code != 0
    assert live.states == [{"pos": 1000}]
    assert db.rows("s", "id") == [(i,) for i in range(1000)]
    assert "Traceback" not in stderr, stderr
    errors = error_lines(stderr)
    assert len(errors) == 1, stderr
    assert "stream 's', input lines 1003-2003: loading the batch failed" in errors[0], errors[0]
    assert "nothing was committed" in errors[0], errors[0]


def pg_ctl(*args: str) -> None:
    """Run pg_ctl on the test server's cluster (as its system user when we are root)."""
    bindir = find_system_bindir()
    assert bindir is not None
    assert SERVER.data_dir is not None
    argv = [str(bindir / "pg_ctl"), "-D", str(SERVER.data_dir), *args]
    if os.geteuid() == 0:
        argv = ["runuser", "-u", "postgres", "--", *argv]
    subprocess.run(argv, check=True, capture_output=True, timeout=HUNG)


@pytest.mark.skipif(SERVER.kind != "system" or shutil.which("runuser") is None, reason="needs a pg_ctl-run server")
def test_server_stopped_during_a_load_then_started_again(own_db):
    """The server goes down between two batches and comes back while the target is retrying: the batch is redone
    once it accepts connections again, every row lands once, exit 0."""
    db = own_db
    live = Piped(db, batch_size_rows=1000)
    live.send([SCHEMA_S, *records(0, 1000), state_msg({"pos": 1000})])
    live.wait_for_state({"pos": 1000})
    live.send([*records(1000, 1500), state_msg({"pos": 1500})])
    db.close()
    pg_ctl("stop", "-m", "fast", "-w")
    try:
        live.send(records(1500, 3000))
        live.wait_for_log("reconnecting")  # the target found the server gone and is retrying
    finally:
        log = SERVER.data_dir.parent / "server.log"  # type: ignore[union-attr]
        pg_ctl("start", "-w", "-l", str(log), "-o", f"-p {SERVER.port}")
    code, stderr = live.finish()

    assert_states_committed(db, live.states)
    assert code == 0, stderr
    assert live.states == [{"pos": 1000}, {"pos": 1500}]
    assert db.rows("s", "id, v") == [(i, f"v{i}") for i in range(3000)]
    assert error_lines(stderr) == [], stderr


def test_fault_that_outlasts_the_retries_stops_the_run_with_one_clear_error(db, monkeypatch):
    """The server stays unreachable: reconnecting is retried within the time budget (a manual clock here), then the run
    stops with one clear error naming stream and input lines; the STATE after the lost batch never goes out."""
    clock = ManualClock()
    policy = sinks.RECONNECT_POLICY
    monkeypatch.setattr(
        sinks,
        "RECONNECT_POLICY",
        RetryPolicy(
            max_attempts=policy.max_attempts,
            max_elapsed_seconds=policy.max_elapsed_seconds,
            base_delay=policy.base_delay,
            max_delay=policy.max_delay,
            clock=clock,
        ),
    )
    down = []
    commit_once, connect = PostgresSink._commit_once, PostgresSink._new_load_connection

    def lost(self, job, conn, copy, *rest):
        if 6 not in job.first_lines:  # the batch of input lines 6-8 loses its connection; the others commit
            return commit_once(self, job, conn, copy, *rest)
        if copy is not None:
            copy.close()
        down.append(True)
        conn.close()
        raise psycopg2.OperationalError("server closed the connection unexpectedly")

    def refused(self):
        if down:
            raise psycopg2.OperationalError("connection refused")
        return connect(self)

    monkeypatch.setattr(PostgresSink, "_commit_once", lost)
    monkeypatch.setattr(PostgresSink, "_new_load_connection", refused)
    messages = [SCHEMA_S, *records(0, 3), state_msg({"pos": 3}), *records(3, 6), state_msg({"pos": 6}), *records(6, 7)]
    out = io.StringIO()
    with redirect_stdout(out), pytest.raises(TargetLoadError) as info:
        db.target(batch_size_rows=3).listen(io.StringIO(lines_of(messages)))
    assert str(info.value) == (
        "stream 's', input lines 6-8: loading the batch failed: connection refused (nothing was committed)"
    )
    assert out.getvalue() == '{"pos": 3}\n'
    assert db.rows("s", "id") == [(0,), (1,), (2,)]
    assert clock.sleeps
    assert sum(clock.sleeps) <= policy.max_elapsed_seconds
