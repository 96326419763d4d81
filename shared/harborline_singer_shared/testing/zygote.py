"""Start a plugin's CLI as a real process without paying for its imports each time: a pre-imported "zygote" forks it.

Why: the CLI tests run a plugin as a process dozens of times per suite (bad input must end in an exit code and one
stderr line, never a traceback), and most of each start is importing the SDK and the plugin (about 1 s of CPU;
`snowflake.connector` adds 1.5 s). A zygote is a separate interpreter that imports the plugin once, then forks one
child per run. The child is a real process (own pid, stdin/stdout/stderr, argv, environment, working directory, exit
status or killing signal) that runs the module as `python -m <module>` does (runpy) and ends through the normal
interpreter shutdown (non-daemon threads joined, atexit handlers, stdout flushed), so the exit code, stderr and
signals are what the tests would see from `python -m <module>`.

What differs from a fresh `python -m <module>`, and how it is contained:

* modules are imported before a run's environment is set: a plugin reading the environment at import time would
  see the zygote's, which is the first run's (ours read it at run time);
* interpreter start-up settings (the `PYTHON*` variables, e.g. `PYTHONWARNINGS`) are the zygote's, so a run asking
  for other ones than the first run gets a plain subprocess instead;
* every run has the zygote's string-hash seed (a fresh interpreter draws its own): nothing may depend on set order;
* for a module, the installed console script is not what runs: keep at least one test per package on the real
  script (or give the zygote the script itself: `Zygote(script=...)` runs it as `python <script>` does).

`HARBORLINE_TESTS_NO_ZYGOTE=1` makes every run a plain `python -m` subprocess (`Zygote.popen` falls back then).

Fork safety: the zygote is its own process started with `subprocess` (never the pytest process, which has threads);
it refuses to serve if importing the plugin started a thread.
"""

from __future__ import annotations

import ast
import contextlib
import gc
import importlib
import importlib.util
import json
import os
import runpy
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Self

__all__ = ["DISABLE_ENV", "ForkedProcess", "Zygote"]

#: Set to 1 to start every run as a plain subprocess (to compare, or to rule the zygote out).
DISABLE_ENV = "HARBORLINE_TESTS_NO_ZYGOTE"
#: How the zygote process is started (`-c`, not `-m`: this module is already imported by the package's __init__).
_SERVER = "import sys; from harborline_singer_shared.testing.zygote import server_main; server_main(sys.argv[1:])"
_HEADER = 8  # bytes: the length of the JSON request that follows
_STARTUP_TIMEOUT = 120.0  # a safety net for a zygote that hangs while importing

# -- the server (runs in the zygote process) ---------------------------------------------------------------------


def _receive(conn: socket.socket) -> tuple[dict[str, Any], list[int]] | None:
    """One request: the header carries the three stdio descriptors, the JSON body follows. None: client gone."""
    data, fds, _flags, _addr = socket.recv_fds(conn, _HEADER, 3)
    while data and len(data) < _HEADER:
        data += conn.recv(_HEADER - len(data))
    if len(data) < _HEADER or len(fds) != 3:
        for fd in fds:
            os.close(fd)
        return None
    size = int(data)
    body = b""
    while len(body) < size:
        chunk = conn.recv(size - len(body))
        if not chunk:
            return None
        body += chunk
    return json.loads(body), fds


def _report(conn: socket.socket, line: str) -> None:
    with contextlib.suppress(OSError):  # the client may be gone (its test failed and moved on)
        conn.sendall(f"{line}\n".encode())


def _serve(listener: socket.socket) -> tuple[dict[str, Any], list[int]] | None:
    """Fork a child per request until stdin closes. Returns only in a child: its request and stdio descriptors."""
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # only to wake select() through the wakeup fd
    running: dict[int, socket.socket] = {}
    sys.stdout.write("ready\n")  # the client waits for this line: every import is done
    sys.stdout.flush()
    while True:
        ready, _, _ = select.select([listener, wake_read, sys.stdin.fileno()], [], [])
        if wake_read in ready:
            os.read(wake_read, 4096)
        while running:  # reap every child that ended, tell its client how
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            conn = running.pop(pid)
            _report(conn, str(os.waitstatus_to_exitcode(status)))
            conn.close()
        if sys.stdin.fileno() in ready and not os.read(sys.stdin.fileno(), 4096):
            for pid in running:  # the test session ended: nothing is waiting for these any more
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            return None
        if listener not in ready:
            continue
        conn, _ = listener.accept()
        request = _receive(conn)
        if request is None:
            conn.close()
            continue
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            for fd in (wake_read, wake_write):
                os.close(fd)
            for other in (listener, conn, *running.values()):
                other.close()
            return request
        for fd in request[1]:
            os.close(fd)
        running[pid] = conn
        _report(conn, str(pid))


def _become(request: dict[str, Any], fds: list[int]) -> None:
    """In the child: take the run's stdio, working directory, environment and argv, as a fresh `python -m` has them.

    `sys.stdin`/`stdout`/`stderr` stay the objects the interpreter made at start-up (for pipes, as a fresh
    interpreter makes them for pipes): nothing was read from or left buffered in them before the fork.
    """
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    for fd in fds:
        if fd > 2:
            os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.path[0] = str(Path.cwd())  # `python -m` puts the working directory first
    # argv[0]: runpy sets a module's file, as `-m` does; a script's path is what `python <script>` has.
    sys.argv = [request["target"], *request["args"]]


def _main_imports(kind: str, target: str) -> list[str]:
    """What a run imports first: a module's package and what its `__main__` imports; what a script imports."""
    if kind == "script":
        path, first = target, []
    else:
        spec = importlib.util.find_spec(f"{target}.__main__")
        if spec is None or spec.origin is None:
            return [target]
        path, first = spec.origin, [target]
    tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    names = [alias.name for node in tree.body if isinstance(node, ast.Import) for alias in node.names]
    names += [node.module for node in tree.body if isinstance(node, ast.ImportFrom) and node.module]
    return [*first, *names]


def server_main(argv: list[str]) -> None:
    """The zygote process (`_SERVER` FD module|script TARGET [PRELOAD ...]): import, serve; each child runs TARGET."""
    listen_fd, kind, target, *preload = argv
    for name in preload or _main_imports(kind, target):
        importlib.import_module(name)
    if threading.active_count() != 1:
        msg = f"importing {preload or target} started a thread: forking would be unsafe"
        raise SystemExit(msg)
    # What the imports left is kept out of the children's garbage collections: a collection would write to every
    # object (copying each memory page the child shares with the zygote), which made a run's exit cost 0.4 s.
    gc.collect()
    gc.freeze()
    listener = socket.socket(fileno=int(listen_fd))
    request = _serve(listener)
    if request is None:
        return
    _become(*request)
    if kind == "script":
        runpy.run_path(target, run_name="__main__")
    else:
        runpy.run_module(target, run_name="__main__", alter_sys=True)


# -- the client (runs in the test process) ---------------------------------------------------------------------------


def _read_line(conn: socket.socket) -> bytes:
    """One status line from the zygote, byte by byte: nothing after it may be consumed (b"" if it closed first)."""
    line = b""
    while not line.endswith(b"\n"):
        byte = conn.recv(1)
        if not byte:
            return b""
        line += byte
    return line


def _startup_vars(env: Mapping[str, str]) -> dict[str, str]:
    """The variables the interpreter reads at start-up: they must be the zygote's for a run to be forked."""
    return {k: v for k, v in env.items() if k.startswith("PYTHON")}


_Stdio = int | IO[Any] | None


class ForkedProcess:
    """A run forked by the zygote, with the `subprocess.Popen` methods the tests use (bytes pipes only)."""

    def __init__(self, args: list[str], conn: socket.socket, pid: int, pipes: dict[str, IO[bytes] | None]) -> None:
        self.args = args
        self.pid = pid
        self.returncode: int | None = None
        self.stdin: IO[bytes] | None = pipes["stdin"]
        self.stdout: IO[bytes] | None = pipes["stdout"]
        self.stderr: IO[bytes] | None = pipes["stderr"]
        self._conn = conn
        self._lock = threading.Lock()

    def _read_status(self, timeout: float | None) -> int | None:
        with self._lock:
            if self.returncode is None:
                ready, _, _ = select.select([self._conn], [], [], timeout)
                if not ready:
                    return None
                line = _read_line(self._conn)
                if not line:
                    msg = f"the zygote ended before reporting how process {self.pid} ended"
                    raise RuntimeError(msg)
                self.returncode = int(line)
                self._conn.close()
            return self.returncode

    def poll(self) -> int | None:
        """The exit code (negative: the killing signal), or None while it runs."""
        return self._read_status(0)

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the end (subprocess.TimeoutExpired after `timeout` seconds); return the exit code."""
        code = self._read_status(timeout)
        if code is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        return code

    def send_signal(self, sig: int) -> None:
        """Signal the process unless it already ended."""
        if self.poll() is None:  # the zygote has not reaped it yet: the pid is still this process
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def terminate(self) -> None:
        """SIGTERM."""
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL."""
        self.send_signal(signal.SIGKILL)

    def communicate(self, input: bytes | None = None, timeout: float | None = None) -> tuple[Any, Any]:  # noqa: A002
        """Feed `input`, read stdout and stderr to their end and wait, as `Popen.communicate` does."""
        results: dict[str, bytes] = {}
        threads = []

        def feed(stream: IO[bytes]) -> None:
            with contextlib.suppress(BrokenPipeError):
                if input:
                    stream.write(input)
                stream.close()

        def drain(name: str, stream: IO[bytes]) -> None:
            results[name] = stream.read()
            stream.close()

        if self.stdin is not None:
            threads.append(threading.Thread(target=feed, args=(self.stdin,), daemon=True))
        for name in ("stdout", "stderr"):
            stream = getattr(self, name)
            if stream is not None:
                threads.append(threading.Thread(target=drain, args=(name, stream), daemon=True))
        for thread in threads:
            thread.start()
        self.wait(timeout)
        for thread in threads:
            thread.join(timeout)
        return results.get("stdout"), results.get("stderr")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        for stream in (self.stdin, self.stdout, self.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self.wait()


class Zygote:
    """Runs `python -m <module>` (or `python <script>`) processes forked from one interpreter that imported it once.

    `script` is a Python script to run instead of a module, e.g. an installed console script (a wrapper that
    imports the entry point and calls it). The zygote imports `preload`, by default what the run imports first: the
    package and the modules its `__main__` imports, or the modules the script imports.

    Started at the first run and stopped at exit (or `close`). `popen` and `run` take the arguments after
    `python -m <module>`; a run whose `PYTHON*` variables differ from the first run's, or any run while
    `HARBORLINE_TESTS_NO_ZYGOTE=1`, is a plain subprocess.
    """

    def __init__(self, module: str = "", *, script: str | Path = "", preload: Sequence[str] = ()) -> None:
        if bool(module) == bool(script):
            msg = "a Zygote runs either a module or a script"
            raise ValueError(msg)
        self.kind, self.target = ("module", module) if module else ("script", str(script))
        self.command = [sys.executable, "-m", module] if module else [sys.executable, str(script)]
        self.preload = list(preload)
        self._server: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._address = ""
        self._startup: dict[str, str] = {}
        self._lock = threading.Lock()

    # -- lifetime ------------------------------------------------------------------------------------------------

    def _start(self, env: dict[str, str]) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="harborline-zygote-")
        self._address = str(Path(self._dir.name) / "socket")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self._address)
        listener.listen(64)
        log = Path(self._dir.name) / "zygote.log"
        with log.open("wb") as stderr:
            self._server = subprocess.Popen(  # noqa: S603 - this interpreter, this module
                [sys.executable, "-c", _SERVER, str(listener.fileno()), self.kind, self.target, *self.preload],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=env,
                pass_fds=(listener.fileno(),),
            )
        listener.close()
        assert self._server.stdout is not None  # noqa: S101 - Popen(stdout=PIPE)
        ready, _, _ = select.select([self._server.stdout], [], [], _STARTUP_TIMEOUT)
        if not ready or self._server.stdout.readline() != b"ready\n":
            self._server.kill()
            self._server.wait()
            msg = f"the zygote for {self.target} did not start:\n{log.read_text(errors='replace')[-3000:]}"
            raise RuntimeError(msg)
        self._startup = _startup_vars(env)

    def close(self) -> None:
        """Stop the zygote (runs still going are killed) and remove its socket."""
        if self._server is not None:
            with contextlib.suppress(OSError):
                self._server.stdin.close()  # type: ignore[union-attr]  # Popen(stdin=PIPE)
            try:
                self._server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._server.kill()
                self._server.wait()
            if self._server.stdout is not None:
                self._server.stdout.close()
            self._server = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    # -- runs ----------------------------------------------------------------------------------------------------

    def _forkable(self, env: Mapping[str, str]) -> bool:
        if os.environ.get(DISABLE_ENV) == "1":
            return False
        with self._lock:
            if self._server is None:
                import atexit  # noqa: PLC0415 - only when a zygote is really started

                self._start(dict(env))
                atexit.register(self.close)
            return _startup_vars(env) == self._startup

    def popen(
        self,
        args: Sequence[str],
        *,
        stdin: _Stdio = None,
        stdout: _Stdio = None,
        stderr: _Stdio = None,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
    ) -> ForkedProcess | subprocess.Popen[bytes]:
        """Like `subprocess.Popen([*self.command, *args], ...)` with bytes pipes (PIPE, DEVNULL, STDOUT)."""
        full_env = dict(os.environ if env is None else env)
        argv = [*self.command, *args]
        if not self._forkable(full_env):
            return subprocess.Popen(  # noqa: S603 - this interpreter and the caller's arguments
                argv, stdin=stdin, stdout=stdout, stderr=stderr, env=full_env, cwd=cwd
            )
        ours: dict[str, IO[bytes] | None] = {}
        theirs: list[int] = []
        to_close: list[int] = []
        for name, spec, fd, writable in (
            ("stdin", stdin, 0, False),
            ("stdout", stdout, 1, True),
            ("stderr", stderr, 2, True),
        ):
            ours[name] = None
            if spec == subprocess.PIPE:
                read_end, write_end = os.pipe()
                mine, child = (read_end, write_end) if writable else (write_end, read_end)
                ours[name] = os.fdopen(mine, "rb" if writable else "wb")  # the caller closes it
                theirs.append(child)
                to_close.append(child)
            elif spec == subprocess.STDOUT and name == "stderr":
                theirs.append(theirs[1])
            elif spec == subprocess.DEVNULL:
                theirs.append(os.open(os.devnull, os.O_RDWR))
                to_close.append(theirs[-1])
            elif spec is None:
                theirs.append(fd)
            else:
                theirs.append(spec if isinstance(spec, int) else spec.fileno())
        request = {"target": self.target, "args": list(args), "env": full_env, "cwd": str(Path(cwd or ".").resolve())}
        body = json.dumps(request).encode()
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(self._address)
            socket.send_fds(conn, [b"%08d" % len(body)], theirs)
            conn.sendall(body)
            pid_line = _read_line(conn)
        finally:
            for fd in to_close:
                os.close(fd)
        if not pid_line:
            conn.close()
            msg = f"the zygote for {self.target} did not start the run"
            raise RuntimeError(msg)
        return ForkedProcess(argv, conn, int(pid_line), ours)

    def run(
        self,
        args: Sequence[str],
        *,
        input: bytes | None = None,  # noqa: A002 - as subprocess.run names it
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        timeout: float | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        """Like `subprocess.run([*self.command, *args], input=..., capture_output=True, check=False)`."""
        proc = self.popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd)
        try:
            out, err = proc.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
        return subprocess.CompletedProcess(proc.args, proc.wait(), out, err)
