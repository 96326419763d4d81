"""The zygote's runs behave as `python -m <module>` runs: same output, exit code, signals; the import happens once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from harborline_singer_shared.testing.zygote import DISABLE_ENV, ForkedProcess, Zygote

PROBE_INIT = """
import os
with open(os.environ["PROBE_IMPORTS"], "a") as fh:  # one line per interpreter that imported the package
    fh.write(f"{os.getpid()}\\n")
"""
PROBE_MAIN = """
import atexit, os, sys, threading
args = sys.argv[1:]
if args[0] == "echo":
    data = sys.stdin.read()
    print(f"argv={sys.argv} path0={sys.path[0]} cwd={os.getcwd()} var={os.environ.get('PROBE_VAR')} read={data!r}")
    print("to stderr", file=sys.stderr)
    atexit.register(lambda: print("atexit ran", file=sys.stderr))
    # A non-daemon thread still writing when the main module ends: the interpreter's shutdown waits for it.
    threading.Thread(target=lambda: (sys.stdin.read(0), print("thread done", flush=True))).start()
    sys.exit(int(args[1]))
if args[0] == "raise":
    raise ValueError("boom")
if args[0] == "block":
    print("waiting", flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def probe(tmp_path: Path) -> Iterator[tuple[Zygote, dict[str, str]]]:
    """A throwaway package `zyprobe` on PYTHONPATH, and a zygote for it (closed after the test)."""
    package = tmp_path / "lib" / "zyprobe"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent(PROBE_INIT))
    (package / "__main__.py").write_text(textwrap.dedent(PROBE_MAIN))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON") and k != DISABLE_ENV}
    env |= {"PYTHONPATH": str(tmp_path / "lib"), "PROBE_IMPORTS": str(tmp_path / "imports.txt"), "PROBE_VAR": "v1"}
    zygote = Zygote("zyprobe")
    yield zygote, env
    zygote.close()


def _plain(args: list[str], env: dict[str, str], data: bytes, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "zyprobe", *args], input=data, capture_output=True, env=env, cwd=cwd, check=False
    )


def test_a_run_prints_and_exits_as_python_m_does(probe: tuple[Zygote, dict[str, str]], tmp_path: Path) -> None:
    zygote, env = probe
    for code, var in ((0, "v1"), (3, "v2")):  # the second run gets its own environment, not the first's
        run_env = env | {"PROBE_VAR": var}
        forked = zygote.run(["echo", str(code)], input=b"line 1\nline 2\r\n", env=run_env, cwd=tmp_path)
        plain = _plain(["echo", str(code)], run_env, b"line 1\nline 2\r\n", tmp_path)
        assert (forked.returncode, forked.stdout, forked.stderr) == (plain.returncode, plain.stdout, plain.stderr)
        assert forked.returncode == code
        assert f"var={var}" in forked.stdout.decode()
        assert forked.stdout.decode().endswith("thread done\n")
        assert forked.stderr == b"to stderr\natexit ran\n"
    imports = (tmp_path / "imports.txt").read_text().split()
    assert len(imports) == 3, "the zygote imported the package once; the two plain runs once each"


def test_an_uncaught_exception_is_a_traceback_and_exit_1(probe: tuple[Zygote, dict[str, str]], tmp_path: Path) -> None:
    zygote, env = probe
    forked = zygote.run(["raise"], env=env, cwd=tmp_path)
    plain = _plain(["raise"], env, b"", tmp_path)
    assert forked.returncode == plain.returncode == 1
    assert forked.stderr.decode().startswith("Traceback (most recent call last):")
    assert forked.stderr.decode().splitlines()[-1] == plain.stderr.decode().splitlines()[-1] == "ValueError: boom"


def test_a_running_process_can_be_killed(probe: tuple[Zygote, dict[str, str]]) -> None:
    zygote, env = probe
    proc = zygote.popen(["block"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    assert isinstance(proc, ForkedProcess)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"waiting\n"  # it runs and waits on its stdin
    assert proc.poll() is None
    assert proc.pid != os.getpid()
    proc.kill()
    assert proc.wait(timeout=60) == -signal.SIGKILL
    with pytest.raises(subprocess.TimeoutExpired):  # a wait that times out says so (another run, still blocked)
        zygote.popen(["block"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env).wait(timeout=0.1)


def test_other_interpreter_settings_or_the_switch_give_a_plain_subprocess(
    probe: tuple[Zygote, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    zygote, env = probe
    assert isinstance(zygote.popen(["echo", "0"], stdin=subprocess.DEVNULL, env=env), ForkedProcess)
    other = zygote.popen(["echo", "0"], stdin=subprocess.DEVNULL, env=env | {"PYTHONWARNINGS": "error"})
    assert isinstance(other, subprocess.Popen)
    assert other.wait(timeout=60) == 0
    monkeypatch.setenv(DISABLE_ENV, "1")
    switched = zygote.popen(["echo", "0"], stdin=subprocess.DEVNULL, env=env)
    assert isinstance(switched, subprocess.Popen)
    assert switched.wait(timeout=60) == 0


def test_a_script_runs_as_python_script_does(probe: tuple[Zygote, dict[str, str]], tmp_path: Path) -> None:
    """A console script is a small wrapper: imported once by the zygote, run per call with its own argv."""
    _, env = probe
    script = tmp_path / "probe-script"
    script.write_text("import sys\nimport zyprobe\nprint(sys.argv)\nsys.exit(len(sys.argv))\n")
    zygote = Zygote(script=script)
    try:
        forked = zygote.run(["a", "b"], env=env, cwd=tmp_path)
    finally:
        zygote.close()
    plain = subprocess.run([sys.executable, str(script), "a", "b"], capture_output=True, env=env, check=False)
    assert (forked.returncode, forked.stdout, forked.stderr) == (plain.returncode, plain.stdout, plain.stderr)
    assert forked.returncode == 3  # the script and two arguments
