from __future__ import annotations

import contextlib
import subprocess
import textwrap
from pathlib import Path

import pytest

from harborline_singer_shared.testing.processes import ServerStartError, start_url_server


def _script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "server.py"
    path.write_text(textwrap.dedent(body))
    return path


def test_returns_the_url_and_stops_the_child(tmp_path: Path) -> None:
    script = _script(
        tmp_path,
        """
        import time
        print("http://127.0.0.1:1234/api", flush=True)
        time.sleep(60)
        """,
    )
    with contextlib.ExitStack() as stack:
        url = start_url_server([str(script)], tmp_path / "log.txt", stack)
        assert url == "http://127.0.0.1:1234/api"
        pids = subprocess.run(["pgrep", "-f", str(script)], capture_output=True, text=True, check=False).stdout
        assert pids.strip()
    # Closing the stack stops the child and waits for it: it is gone the moment the `with` ends (no grace period).
    pids = subprocess.run(["pgrep", "-f", str(script)], capture_output=True, text=True, check=False).stdout
    assert not pids.strip()


def test_a_child_that_dies_fails_with_its_log(tmp_path: Path) -> None:
    script = _script(tmp_path, 'import sys\nprint("port already in use", file=sys.stderr)\nsys.exit(3)\n')
    with contextlib.ExitStack() as stack, pytest.raises(ServerStartError, match="port already in use"):
        start_url_server([str(script)], tmp_path / "log.txt", stack, timeout=30)
