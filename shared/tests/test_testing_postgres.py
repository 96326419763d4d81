from __future__ import annotations

import os
import pwd
import signal
import socket
import subprocess
import sys
from pathlib import Path

import psycopg2
import pytest

from harborline_singer_shared.testing import postgres as pgmod
from harborline_singer_shared.testing.fixtures import unique_database_name
from harborline_singer_shared.testing.postgres import (
    BACKEND_ENV_VAR,
    DSN_ENV_VAR,
    PostgresServer,
    PostgresServerError,
    find_system_bindir,
)


def system_backend_skip_reason() -> str | None:
    if find_system_bindir() is None:
        return "no PostgreSQL server binaries (initdb/pg_ctl) on this machine"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' system user"
    return None


def port_open(host: str, port: int) -> bool:
    if host.startswith("/"):
        return (Path(host) / f".s.PGSQL.{port}").exists()
    with socket.socket() as sock:
        sock.settimeout(10)  # a refused port answers at once; the limit only guards a loaded machine
        return sock.connect_ex((host, port)) == 0


def exercise(server: PostgresServer) -> None:
    """Query, check the fast settings, create a database and use it."""
    with psycopg2.connect(server.dsn()) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1 + 1")
        assert cur.fetchone() == (2,)
        cur.execute("SHOW fsync")
        assert cur.fetchone() == ("off",)
        cur.execute("SHOW synchronous_commit")
        assert cur.fetchone() == ("off",)
    conn.close()
    dsn = server.create_database("made_by_test")
    assert dsn == server.dsn("made_by_test")
    conn = psycopg2.connect(**server.connect_kwargs("made_by_test"))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT current_database(), current_user")
            assert cur.fetchone() == ("made_by_test", server.user)
    finally:
        conn.close()


@pytest.mark.parametrize("backend", ["system", "embedded"])
def test_backend_starts_serves_and_cleans_up(backend, monkeypatch):
    monkeypatch.delenv(DSN_ENV_VAR, raising=False)
    if backend == "system" and (reason := system_backend_skip_reason()):
        pytest.skip(reason)
    with PostgresServer(backend=backend) as server:
        assert server.kind == backend
        assert server.running
        assert server.password is None
        assert server.data_dir is not None
        assert (server.data_dir / "PG_VERSION").exists()
        data_dir = server.data_dir
        host, port = server.host, server.port
        if backend == "system":
            assert host == "127.0.0.1"
        else:
            assert host.startswith("/"), "embedded listens on a unix socket directory"
        assert port_open(host, port)
        exercise(server)
    assert not server.running
    assert not data_dir.exists(), "data directory must be removed"
    assert not port_open(host, port), "server must be stopped"


def test_env_var_selects_backend(monkeypatch):
    monkeypatch.setenv(BACKEND_ENV_VAR, "embedded")
    assert PostgresServer().backend == "embedded"
    monkeypatch.setenv(BACKEND_ENV_VAR, "System")
    assert PostgresServer().backend == "system"
    monkeypatch.setenv(BACKEND_ENV_VAR, "docker")
    with pytest.raises(ValueError, match=BACKEND_ENV_VAR):
        PostgresServer()


def test_forced_system_without_binaries_is_a_clear_error(monkeypatch):
    monkeypatch.delenv(DSN_ENV_VAR, raising=False)
    monkeypatch.setattr(pgmod, "find_system_bindir", lambda: None)
    server = PostgresServer(backend="system")
    with pytest.raises(PostgresServerError, match="initdb"):
        server.start()
    assert not server.running


def test_auto_falls_back_to_embedded_without_system_binaries(monkeypatch):
    monkeypatch.delenv(DSN_ENV_VAR, raising=False)
    monkeypatch.setattr(pgmod, "find_system_bindir", lambda: None)
    with PostgresServer(backend="auto") as server:
        assert server.kind == "embedded"


def test_not_started_server_refuses_connection_details():
    with pytest.raises(PostgresServerError, match="not running"):
        PostgresServer().dsn()


def test_external_dsn_is_used_and_not_stopped(postgres_server, monkeypatch):
    monkeypatch.setenv(DSN_ENV_VAR, postgres_server.dsn())
    with PostgresServer() as external:
        assert external.kind == "external"
        assert (external.host, external.port) == (postgres_server.host, postgres_server.port)
        name = unique_database_name("external")
        external.create_database(name)
        with psycopg2.connect(external.dsn(name)) as conn, conn.cursor() as cur:
            cur.execute("SELECT current_database()")
            assert cur.fetchone() == (name,)
        conn.close()
        external.drop_database(name)
    assert external.data_dir is None
    # The real server is still up after the external handle stopped.
    conn = psycopg2.connect(postgres_server.dsn())
    conn.close()


def test_create_database_without_psycopg2_uses_psql(postgres_server, monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg2", None)
    name = unique_database_name("psql")
    postgres_server.create_database(name)
    monkeypatch.undo()
    conn = psycopg2.connect(postgres_server.dsn(name))
    conn.close()


def test_invalid_database_name_rejected(postgres_server):
    with pytest.raises(ValueError, match="database name"):
        postgres_server.create_database('x"; DROP DATABASE postgres; --')


@pytest.mark.parametrize(
    ("dsn", "expected"),
    [
        (
            "postgresql://u%40x:p%3Aw@db.example:6543/app?sslmode=disable",
            {
                "host": "db.example",
                "port": "6543",
                "user": "u@x",
                "password": "p:w",
                "dbname": "app",
                "sslmode": "disable",
            },
        ),
        (
            "postgresql://postgres@/db?host=/run/pg&port=5432",
            {"user": "postgres", "dbname": "db", "host": "/run/pg", "port": "5432"},
        ),
        (
            "host=localhost port=5433 user=me password='a b' dbname=x",
            {"host": "localhost", "port": "5433", "user": "me", "password": "a b", "dbname": "x"},
        ),
    ],
)
def test_parse_dsn(dsn, expected):
    assert pgmod._parse_dsn(dsn) == expected


def test_unique_database_name():
    first = unique_database_name("test_x[param-1]")
    second = unique_database_name("test_x[param-1]")
    assert first != second
    assert first.startswith("t_test_x_param_1_")
    assert len(unique_database_name("y" * 200)) <= 63


# -- the pytest fixtures -----------------------------------------------------------------------


def test_pg_dsn_fixture_gives_fresh_database(pg_dsn, pg_database, postgres_server):
    assert pg_dsn == postgres_server.dsn(pg_database)
    with psycopg2.connect(pg_dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT current_database()")
        assert cur.fetchone() == (pg_database,)
        cur.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        assert cur.fetchone() == (0,)
        cur.execute("CREATE TABLE t (id int)")
    conn.close()


def test_pg_connect_kwargs_fixture_is_another_database(pg_connect_kwargs):
    conn = psycopg2.connect(**pg_connect_kwargs)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            assert cur.fetchone() == (0,), "each test must get its own empty database"
    finally:
        conn.close()


def test_failed_start_removes_temp_dir(monkeypatch):
    monkeypatch.delenv(DSN_ENV_VAR, raising=False)
    if reason := system_backend_skip_reason():
        pytest.skip(reason)
    created = []
    real_mkdtemp = pgmod.tempfile.mkdtemp

    def recording_mkdtemp(*args, **kwargs):
        created.append(Path(real_mkdtemp(*args, **kwargs)))
        return str(created[-1])

    def failing_run(self, argv, **kwargs):
        raise PostgresServerError("simulated initdb failure")

    monkeypatch.setattr(pgmod.tempfile, "mkdtemp", recording_mkdtemp)
    monkeypatch.setattr(PostgresServer, "_run", failing_run)
    server = PostgresServer(backend="system")
    with pytest.raises(PostgresServerError, match="simulated"):
        server.start()
    assert created
    assert not any(path.exists() for path in created)
    assert not server.running


def test_auto_falls_back_to_embedded_when_system_start_fails(monkeypatch):
    monkeypatch.delenv(DSN_ENV_VAR, raising=False)
    if reason := system_backend_skip_reason():
        pytest.skip(reason)

    def failing_system(self, bindir):
        raise PostgresServerError("simulated")

    monkeypatch.setattr(PostgresServer, "_start_system", failing_system)
    with PostgresServer(backend="auto") as server:
        assert server.kind == "embedded"
        conn = psycopg2.connect(server.dsn())
        conn.close()


def test_demo_entry_point_prints_dsn_and_cleans_up():
    proc = subprocess.Popen(
        [sys.executable, "-m", "harborline_singer_shared.testing.postgres"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, BACKEND_ENV_VAR: "auto"},
    )
    try:
        line = proc.stdout.readline()
        assert "PostgreSQL at postgresql://" in line
        dsn = line.split(" at ", 1)[1].strip()
        conn = psycopg2.connect(dsn)
        conn.close()
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        proc.stdout.close()
    with pytest.raises(psycopg2.OperationalError):
        psycopg2.connect(dsn, connect_timeout=2)
