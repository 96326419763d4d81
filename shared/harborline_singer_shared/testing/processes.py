"""Child processes for demos, end-to-end checks and benchmarks: fake vendor APIs started as scripts.

Every fake API in this repo prints its base URL as its first stdout line and serves until terminated; this module
starts one, waits for that line (or fails with the tail of its log), and stops it cleanly.
"""

from __future__ import annotations

import contextlib
import select
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["ServerStartError", "start_url_server", "stop_process"]


class ServerStartError(RuntimeError):
    """The child exited or printed nothing before the timeout; the message ends with its log's tail."""


def _tail(path: Path, lines: int = 20) -> str:
    if not path.exists():
        return "    (no log)"
    text = path.read_text(errors="replace").splitlines()[-lines:]
    return "\n".join(f"    {line}" for line in text) or "    (empty)"


def stop_process(proc: subprocess.Popen[Any]) -> None:
    """Terminate a child and wait for it (kill after 10 s); close its stdout pipe."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def start_url_server(
    script_args: list[str], log_file: Path, stack: contextlib.ExitStack, *, timeout: float = 120.0
) -> str:
    """Run `python <script_args>` (stderr to `log_file`), stopped when `stack` closes; return its first stdout line."""
    stderr = stack.enter_context(log_file.open("w"))
    proc = subprocess.Popen(  # noqa: S603 - runs a script of this repo with the current interpreter
        [sys.executable, *script_args], stdout=subprocess.PIPE, stderr=stderr, text=True
    )
    stack.callback(stop_process, proc)
    assert proc.stdout is not None  # noqa: S101 - Popen(stdout=PIPE)
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline().strip() if ready else ""
    if not line.startswith("http"):
        proc.kill()
        msg = f"{Path(script_args[0]).name} did not print its URL within {timeout:.0f} s:\n{_tail(log_file)}"
        raise ServerStartError(msg)
    return line
