"""Connections (issues 11 and 16): checked at start-up, bounded by a pool, the schema race, URL parameters, PEM files.

Each test runs the real CLI against the session's PostgreSQL and waits on the event it tests (the process's exit, a
STATE line, a backend seen waiting on a lock), never on a pause.
"""

from __future__ import annotations

import contextlib
import json
import queue
import subprocess
import threading
import uuid
from pathlib import Path
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
)
from tp_helpers import state_msg as state

#: A safety net for a hung process only: every wait below ends on an event long before this.
HUNG = 120

SCHEMA_S = schema_msg("s", {"id": {"type": "integer"}, "v": {"type": "string"}}, ["id"])
PEM = "-----BEGIN CERTIFICATE-----\nMIIBnot-a-real-certificate\n-----END CERTIFICATE-----\n"


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "ERROR" in line or "Traceback" in line]


_STARTED: list[subprocess.Popen[bytes]] = []


@pytest.fixture(autouse=True)
def _stop_leftover_runs():
    """A failed test may leave its target waiting for input: stop it (only the processes this module started)."""
    yield
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(HUNG)


class Live:
    """The CLI with stdin as a pipe the test writes to; stdout (STATE lines) read while it runs."""

    def __init__(self, config: dict[str, Any], tmp_path: Path, env: dict[str, str] | None = None) -> None:
        path = tmp_path / f"config-{uuid.uuid4().hex[:6]}.json"
        path.write_text(json.dumps(config))
        self.proc = cli_popen(
            [*cli_argv(), "--config", str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=cli_env(env),
        )
        _STARTED.append(self.proc)
        self.states: list[Any] = []
        self._lines: queue.Queue[bytes | None] = queue.Queue()
        self._stderr: list[bytes] = []
        threading.Thread(target=self._pump, daemon=True).start()
        self._err = threading.Thread(target=self._pump_err, daemon=True)
        self._err.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _pump_err(self) -> None:
        assert self.proc.stderr is not None
        self._stderr.extend(self.proc.stderr)

    def send(self, messages: list[Any]) -> None:
        assert self.proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self.proc.stdin.write(lines_of(messages).encode())
            self.proc.stdin.flush()

    def wait_for_state(self, wanted: Any) -> None:
        while True:
            line = self._lines.get(timeout=HUNG)
            assert line is not None, f"the target ended without writing STATE {wanted}"
            self.states.append(json.loads(line))
            if self.states[-1] == wanted:
                return

    def wait_exit(self) -> tuple[int, str]:
        """Wait for the process to end by itself (stdin stays open: it must not be waiting for input)."""
        code = self.proc.wait(timeout=HUNG)
        self._err.join(HUNG)
        with contextlib.suppress(BrokenPipeError):
            self.proc.stdin.close()  # type: ignore[union-attr]
        return code, b"".join(self._stderr).decode("utf-8", "replace")

    def finish(self) -> tuple[int, str]:
        with contextlib.suppress(BrokenPipeError):
            self.proc.stdin.close()  # type: ignore[union-attr]
        code = self.proc.wait(timeout=HUNG)
        while (line := self._lines.get(timeout=HUNG)) is not None:
            self.states.append(json.loads(line))
        self._err.join(HUNG)
        return code, b"".join(self._stderr).decode("utf-8", "replace")


# -- 1. the connection is checked at start-up ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"database": "no_such_database_here"}, "`database`"),
        ({"user": "no_such_role_here"}, "`user`"),
        ({"port": 1}, "`host` and `port`"),
    ],
    ids=["database", "user", "unreachable"],
)
def test_wrong_settings_fail_at_startup_before_any_input(db, tmp_path, change, named):
    """Issue 16: the target used to fail only when the first record arrived (after the tap had started). Now it
    checks its connection before reading: with stdin open and nothing written, it ends by itself, in one line."""
    live = Live(db.config(**change), tmp_path)  # nothing is ever written to its stdin
    code, stderr = live.wait_exit()
    assert code == 1, stderr
    assert "Traceback" not in stderr, stderr
    errors = error_lines(stderr)
    assert len(errors) == 1, stderr
    assert "cannot connect to PostgreSQL" in errors[0], errors[0]
    assert f"check {named}" in errors[0], errors[0]


def test_wrong_settings_in_url_name_the_url(db, tmp_path):
    kwargs = SERVER.connect_kwargs(db.dbname)
    url = f"postgresql://{kwargs['user']}@{kwargs['host']}:{kwargs['port']}/no_such_database_here"
    config = {k: v for k, v in db.config(sqlalchemy_url=url).items() if k not in {"host", "port", "database"}}
    code, stderr = Live(config, tmp_path).wait_exit()
    assert code == 1, stderr
    errors = error_lines(stderr)
    assert len(errors) == 1, stderr
    assert "check the database in `sqlalchemy_url`" in errors[0], errors[0]


@pytest.mark.parametrize("how", ["no host", "empty host", "url without host"])
def test_config_without_host_says_so(db, tmp_path, how):
    """Without `host`, libpq silently tried a local Unix socket: the setting is named instead (a socket is asked for
    by giving its directory, a path starting with /)."""
    config = db.config()
    if how == "no host":
        del config["host"]
    elif how == "empty host":
        config["host"] = ""
    else:
        del config["host"]
        config["sqlalchemy_url"] = f"postgresql://user@/{db.dbname}"
    code, stderr = Live(config, tmp_path).wait_exit()
    assert code == 1, stderr
    errors = error_lines(stderr)
    assert len(errors) == 1, stderr
    assert "host" in errors[0], errors[0]
    assert "Traceback" not in stderr, stderr


# -- 2. connections are bounded whatever the number of streams -----------------------------------------------------


@pytest.fixture
def limited_role(tmp_path):
    """A database owned by a role the server lets open at most 5 connections (a bound the target must respect)."""
    role = "tp_pool_" + uuid.uuid4().hex[:8]
    admin = Db(new_database("pool"), new_schema(), tmp_path)
    admin.execute(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 5")
    admin.execute(f'ALTER DATABASE "{admin.dbname}" OWNER TO {role}')
    yield admin, role
    admin.close()


def many_streams(count: int, records: int) -> list[Any]:
    """`count` keyed streams, their records interleaved, a STATE after each round, one SCHEMA change midway."""
    messages: list[Any] = [
        schema_msg(f"s{n}", {"id": {"type": "integer"}, "v": {"type": "string"}}, ["id"]) for n in range(count)
    ]
    for i in range(records):
        if i == records // 2:  # a new column for s0: its new sink must not reuse a stale staging table
            props = {"id": {"type": "integer"}, "v": {"type": "string"}, "w": {"type": "string"}}
            messages.append(schema_msg("s0", props, ["id"]))
        messages.extend(record_msg(f"s{n}", {"id": i, "v": f"{n}-{i}", "w": f"w{i}"}) for n in range(count))
        messages.append(state({"round": i}))
    return messages


@pytest.mark.parametrize("max_connections", [4, 1])
def test_200_streams_load_within_the_connection_bound(limited_role, max_connections):
    """Issue 11: each stream held about two connections, so ~50 streams exhausted the server (traceback, no STATE)
    and 200 small streams failed at stream 97. The pool bounds them: 200 streams load completely, with STATE, as a
    role the server refuses a sixth connection."""
    admin, role = limited_role
    result = admin.cli(many_streams(200, 4), user=role, max_connections=max_connections, batch_size_rows=2)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert result.states[-1] == {"round": 3}
    assert len(admin.tables()) == 200
    counts = " UNION ALL ".join(f'SELECT count(*) AS n FROM "{admin.schema}".s{n}' for n in range(200))
    assert admin.query(f"SELECT sum(n), min(n) FROM ({counts}) x") == [(800, 4)]
    for n in (0, 1, 99, 199):
        assert admin.rows(f"s{n}", "id, v") == [(i, f"{n}-{i}") for i in range(4)]
    assert admin.rows("s0", "id, w") == [(0, None), (1, None), (2, "w2"), (3, "w3")]


def test_backends_never_exceed_the_setting_while_streams_are_open(db, tmp_path):
    """Sampled while the run is blocked on its input after 60 streams' batches were committed: at most
    max_connections backends belong to the target (the pool keeps them; it never opens more)."""
    live = Live(db.config(max_connections=3, batch_size_rows=1), tmp_path)
    messages = many_streams(60, 6)
    cut = messages.index(state({"round": 2}))
    live.send(messages[: cut + 1])
    live.wait_for_state({"round": 2})
    backends = db.query(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'target-postgres' AND datname = %s",
        (db.dbname,),
    )[0][0]
    assert 1 <= backends <= 3
    live.send(messages[cut + 1 :])
    code, stderr = live.finish()
    assert code == 0, stderr
    assert live.states[-1] == {"round": 5}
    assert db.rows("s59", "id") == [(i,) for i in range(6)]


def test_max_connections_below_one_is_refused(db):
    result = db.cli([SCHEMA_S], max_connections=0)
    assert result.returncode == 1
    errors = error_lines(result.stderr)
    assert len(errors) == 1, result.stderr
    assert "max_connections must be at least 1" in errors[0]


# -- 3. two first runs into one new schema at once -----------------------------------------------------------------


def test_concurrent_first_runs_into_a_new_schema(tmp_path):
    """Issue 11: a concurrent first run into a new schema failed on CREATE SCHEMA (IF NOT EXISTS does not cover the
    race). Made certain here: the schema is being created by an open transaction while both targets start; both
    wait for it, then both load."""
    db = Db(new_database("race"), new_schema(), tmp_path)
    holder = psycopg2.connect(**SERVER.connect_kwargs(db.dbname))
    try:
        with holder.cursor() as cur:
            cur.execute(f'CREATE SCHEMA "{db.schema}"')  # not committed yet: the targets' CREATE SCHEMA waits on it
        runs = []
        for name in ("a", "b"):
            live = Live(db.config(), tmp_path)
            stream = schema_msg(name, {"id": {"type": "integer"}}, ["id"])
            live.send([stream, record_msg(name, {"id": 1}), state({"done": name})])
            live.proc.stdin.close()  # type: ignore[union-attr]
            runs.append(live)
        waiting = (
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'target-postgres' AND datname = %s "
            "AND wait_event_type = 'Lock'"
        )
        while db.query(waiting, (db.dbname,))[0][0] < 2:  # the event: both are blocked on the new schema
            assert all(r.proc.poll() is None for r in runs), "a target ended before reaching CREATE SCHEMA"
        holder.commit()
    finally:
        holder.close()
    for name, live in zip(("a", "b"), runs, strict=True):
        code, stderr = live.finish()
        assert code == 0, stderr
        assert live.states == [{"done": name}]
        assert db.rows(name, "id") == [(1,)]
    db.close()


def test_concurrent_first_runs_creating_the_same_table(tmp_path):
    """Two runs of one stream into a new table: the other's CREATE TABLE commits while ours waits on it (the catalog's
    unique index), so ours fails on a duplicate. Made certain here with a transaction that creates the table (as a
    target would, with its key) and commits only once the target waits on it; the target then plans against the table
    that now exists and loads."""
    db = Db(new_database("race"), new_schema(), tmp_path)
    holder = psycopg2.connect(**SERVER.connect_kwargs(db.dbname))
    try:
        with holder.cursor() as cur:
            cur.execute(f'CREATE SCHEMA "{db.schema}"')
            holder.commit()
            cur.execute(f'CREATE TABLE "{db.schema}".t (id bigint PRIMARY KEY, v text, __loaded_at timestamptz)')
        live = Live(db.config(), tmp_path)
        schema = schema_msg("t", {"id": {"type": "integer"}, "v": {"type": "string"}, "w": {"type": "integer"}}, ["id"])
        live.send([schema, record_msg("t", {"id": 1, "v": "a", "w": 7}), state({"done": 1})])
        live.proc.stdin.close()  # type: ignore[union-attr]
        waiting = (
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'target-postgres' AND datname = %s "
            "AND wait_event_type = 'Lock'"
        )
        while db.query(waiting, (db.dbname,))[0][0] < 1:  # the event: the target waits on the uncommitted table
            assert live.proc.poll() is None, "the target ended before reaching CREATE TABLE"
        holder.commit()
    finally:
        holder.close()
    code, stderr = live.finish()
    assert code == 0, stderr
    assert live.states == [{"done": 1}]
    assert db.rows("t", "id, v, w") == [(1, "a", 7)]  # the column the other run's table lacked was added
    db.close()


def test_two_first_runs_started_at_once(tmp_path):
    db = Db(new_database("race"), new_schema(), tmp_path)
    runs = [Live(db.config(), tmp_path) for _ in range(2)]
    for name, live in zip(("a", "b"), runs, strict=True):
        live.send([schema_msg(name, {"id": {"type": "integer"}}, ["id"]), record_msg(name, {"id": 1})])
    for name, live in zip(("a", "b"), runs, strict=True):
        code, stderr = live.finish()
        assert code == 0, stderr
        assert db.rows(name, "id") == [(1,)]
    db.close()


# -- 6. sqlalchemy_url: query parameters reach libpq, the password is never echoed ---------------------------------


def url_for(db: Db, password: str | None = None, port: int | None = None, query: str = "") -> str:
    kwargs = SERVER.connect_kwargs(db.dbname)
    auth = kwargs["user"] + (f":{password}" if password is not None else "")
    return f"postgresql://{auth}@{kwargs['host']}:{port or kwargs['port']}/{db.dbname}{query}"


def url_config(db: Db, url: str, **extra: Any) -> dict[str, Any]:
    config = {k: v for k, v in db.config(**extra).items() if k not in {"host", "port", "user", "database"}}
    config["sqlalchemy_url"] = url
    return config


def test_url_query_parameters_reach_libpq(db, tmp_path):
    """`?sslmode=require` used to be dropped silently (the load went over an unencrypted connection): the test server
    has no TLS, so honouring it means refusing to connect, at start-up, naming the SSL settings."""
    code, stderr = Live(url_config(db, url_for(db, query="?sslmode=require")), tmp_path).wait_exit()
    assert code == 1, stderr
    errors = error_lines(stderr)
    assert len(errors) == 1, stderr
    assert "SSL" in errors[0], errors[0]
    assert "check `ssl_mode`" in errors[0], errors[0]


def test_url_application_name_is_used(db, tmp_path):
    name = "tp_url_" + uuid.uuid4().hex[:8]
    url = url_for(db, query=f"?application_name={name}&connect_timeout=5")
    live = Live(url_config(db, url, batch_size_rows=1), tmp_path)  # a full batch: its STATE goes out at its commit
    live.send([SCHEMA_S, record_msg("s", {"id": 1, "v": "x"}), state({"pos": 1})])
    live.wait_for_state({"pos": 1})
    assert db.query("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (name,))[0][0] >= 1
    code, stderr = live.finish()
    assert code == 0, stderr


def test_password_with_url_delimiters_is_parsed_and_never_echoed(db, tmp_path):
    """A password holding `/`, `#`, `?` and `@` unencoded was cut at the first delimiter and the rest echoed as the
    host or database in the error. Now the URL is split at its last `@`: the run works (the test server trusts the
    login), and a failing one does not show any piece of the password."""
    pieces = [uuid.uuid4().hex[:8] for _ in range(5)]
    password = f"{pieces[0]}/{pieces[1]}#{pieces[2]}?{pieces[3]}@{pieces[4]}"
    good = Db(db.dbname, db.schema, tmp_path)
    result = good.cli([SCHEMA_S, record_msg("s", {"id": 1, "v": "x"})], **url_config(db, url_for(db, password)))
    assert result.returncode == 0, result.stderr
    assert db.rows("s", "id") == [(1,)]

    code, stderr = Live(url_config(db, url_for(db, password, port=1)), tmp_path).wait_exit()
    assert code == 1, stderr
    assert "cannot connect to PostgreSQL" in stderr, stderr
    for piece in pieces:
        assert piece not in stderr, stderr
    assert "Traceback" not in stderr, stderr


# -- 7. PEM text in ssl_* settings: one file per run, removed at exit ----------------------------------------------


def pem_files(tmp: Path) -> list[Path]:
    return sorted(tmp.glob("target-postgres-*.pem"))


@pytest.mark.parametrize("outcome", ["success", "failure"])
def test_pem_text_is_written_once_and_removed_at_exit(db, tmp_path, outcome):
    """The PEM text of ssl_certificate_authority was written to a new temporary file for every connection and never
    deleted. Now: one file per run (while it runs, however many connections), gone when the run ends either way."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    live = Live(
        db.config(ssl_certificate_authority=PEM, ssl_mode="prefer", batch_size_rows=1, max_connections=4),
        tmp_path,
        env={"TMPDIR": str(tmp)},
    )
    streams = [schema_msg(f"t{n}", {"id": {"type": "integer"}}, ["id"]) for n in range(5)]
    live.send([*streams, *(record_msg(f"t{n}", {"id": i}) for i in range(4) for n in range(5)), state({"pos": 1})])
    live.wait_for_state({"pos": 1})
    files = pem_files(tmp)
    assert len(files) == 1, files
    assert files[0].read_text() == PEM
    assert files[0].stat().st_mode & 0o077 == 0  # private to the user
    if outcome == "failure":
        live.send(['{"type": "RECORD", "stream": "t0", "record": {"id": "not a number"}}'])
    code, stderr = live.finish()
    assert (code == 0) == (outcome == "success"), stderr
    assert pem_files(tmp) == []
