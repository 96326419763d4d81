"""Benchmark helpers shared by the packages' `bench/` scripts (run by `nox -s bench`, never by the test suites)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

__all__ = ["run_measured"]


def run_measured(cmd: list[str], *, stderr_path: Path) -> tuple[float, float, str]:
    """Run ``cmd`` with stdout to /dev/null; return (seconds, peak RSS MiB, stderr text).

    Peak RSS comes from ``os.wait4``'s rusage of that child alone; a failing command ends the bench with its stderr.
    """
    with Path(os.devnull).open("wb") as devnull, stderr_path.open("wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=devnull, stderr=err)  # noqa: S603 - the bench's own commands
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
    text = stderr_path.read_text(encoding="utf-8", errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode}):\n{text[-3000:]}")
    return seconds, usage.ru_maxrss / 1024, text
