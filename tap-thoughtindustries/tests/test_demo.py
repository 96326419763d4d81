"""The README's demo (`nox -s demo`), run as written: tap into a throwaway PostgreSQL, a readable summary, `--keep`.

The demo is what a new user runs first; this runs its script with small data, keeps PostgreSQL up with `--keep`,
queries the loaded tables through the printed connection while the demo waits, then ends it with Enter.
"""

from __future__ import annotations

import os
import queue
import re
import shlex
import subprocess
import sys
import threading
from pathlib import Path

import psycopg2
import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "shared" / "scripts" / "demo.py"
HUNG = 300  # a safety net for a hung demo only: each wait ends on the line it waits for


def _lines(stream: object, into: queue.Queue[str | None]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        into.put(line)
    into.put(None)


@pytest.mark.skipif(not DEMO.exists(), reason="runs from a checkout of the monorepo (the demo script is not packaged)")
def test_demo_with_keep_leaves_the_loaded_database_up_until_enter() -> None:
    argv = [
        sys.executable,
        str(DEMO),
        "--users",
        "40",
        "--events",
        "600",
        "--days",
        "5",
        "--window-days",
        "2",
        "--keep",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAP_", "TARGET_", "HARBORLINE_"))}
    proc = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    out: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_lines, args=(proc.stdout, out), daemon=True).start()
    seen: list[str] = []
    try:
        psql = None
        while psql is None:
            line = out.get(timeout=HUNG)
            assert line is not None, "the demo ended before offering psql:\n" + "".join(seen)
            seen.append(line)
            if seen[-2:-1] and "In another terminal:" in seen[-2]:
                psql = line.strip()
        text = "".join(seen)
        # The summary a person reads: rows per table, the pseudonymized join, how long it took.
        assert "Rows per table in demo.thoughtindustries:" in text
        assert re.search(r"^\s+users\s+40$", text, re.MULTILINE), text
        assert "(600 of the fake API's 600 events)" in text
        assert "rows/s end to end" in text
        # The printed command works: its binary exists and its URI reaches the loaded database.
        binary, uri = shlex.split(psql)
        assert Path(binary).exists(), psql
        with psycopg2.connect(uri) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM thoughtindustries.users WHERE email LIKE 'hl1:%'")
            assert cur.fetchone() == (40,)  # every e-mail pseudonymized
        conn.close()
        assert proc.stdin is not None
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.wait(timeout=HUNG) == 0, "".join(seen)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    while (line := out.get(timeout=HUNG)) is not None:
        seen.append(line)
    text = "".join(seen)
    kept = re.search(r"\[demo\] kept (\S+)", text)
    assert kept is not None, text
    assert Path(kept.group(1)).is_dir()  # configs and logs kept for a look
    with pytest.raises(psycopg2.OperationalError):  # and PostgreSQL stopped
        psycopg2.connect(uri, connect_timeout=5)
