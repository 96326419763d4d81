"""SIGKILL at random points of a multi-batch load, then replay from the last STATE emitted: exactly the source.

A tap resumes from the last STATE the target emitted, so the guarantee under test is: every record before an
emitted STATE is committed (nothing lost), and replaying everything after it into a keyed stream converges to the
source (nothing duplicated, newest value wins), wherever the kill landed: mid-COPY, mid-merge, between commit and
STATE, or before the first commit.
"""

from __future__ import annotations

import contextlib
import json
import random
import subprocess
import threading
import time

import pytest
from tp_helpers import Db, cli_argv, cli_env, new_schema, record_msg, schema_msg, shared_database, state_msg

TRIALS = 20
SEED = 20261124
SCHEMA = schema_msg("s", {"id": {"type": "integer"}, "v": {"type": "string"}, "n": {"type": "number"}}, ["id"])


def build_source() -> tuple[list[str], dict[int, int], dict[int, tuple[str, str]]]:
    """Input lines, STATE bookmark -> index of its line, and the expected table (id -> (v, n))."""
    lines = [json.dumps(SCHEMA)]
    state_at: dict[int, int] = {}
    expected: dict[int, tuple[str, str]] = {}
    records = 0
    for i in range(1, 20_001):
        batch = [(i, f"v{i}")]
        if i % 10 == 0 and i > 2_000:
            batch.append((i - 1_500, f"update {i}"))  # later records overwrite earlier ones, across batches
        for key, value in batch:
            lines.append(json.dumps(record_msg("s", {"id": key, "v": value, "n": key / 8})))
            expected[key] = (value, str(key / 8))
            records += 1
            if records % 500 == 0:
                lines.append(json.dumps(state_msg({"bookmarks": {"s": key, "records": records}})))
                state_at[records] = len(lines) - 1
    lines.append(json.dumps(state_msg({"bookmarks": {"s": 20_000, "records": records, "done": True}})))
    state_at[records + 1] = len(lines) - 1
    return lines, state_at, expected


def killed_run(db: Db, text: bytes, cut: int, pause: float) -> list[dict]:
    """Start the CLI, feed it the first `cut` bytes, wait `pause` seconds, SIGKILL it; the STATEs it emitted."""
    argv = [*cli_argv(), "--config", str(db.config_file(batch_size_rows=1_000))]
    proc = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=cli_env()
    )
    out: list[bytes] = []
    reader = threading.Thread(target=lambda: out.extend(proc.stdout), daemon=True)  # type: ignore[arg-type]
    reader.start()
    with contextlib.suppress(BrokenPipeError):
        proc.stdin.write(text[:cut])  # type: ignore[union-attr]
        proc.stdin.flush()  # type: ignore[union-attr]
    time.sleep(pause)
    proc.kill()
    proc.wait(timeout=30)
    reader.join(timeout=30)
    # A line cut by the kill (no newline yet) is not a STATE the tap would have seen.
    states = [json.loads(line) for line in out if line.endswith(b"\n")]
    with contextlib.suppress(BrokenPipeError):
        proc.stdin.close()  # type: ignore[union-attr]
    return states


@pytest.mark.slow
def test_sigkill_at_random_points_then_replay_converges(tmp_path):
    lines, state_at, expected = build_source()
    text = ("\n".join(lines) + "\n").encode()
    # Byte offset at which each line starts, to cut the input at random line boundaries or mid-line.
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line.encode()) + 1)
    rng = random.Random(SEED)
    started = time.monotonic()
    outcomes = []
    for trial in range(TRIALS):
        db = Db(shared_database(), new_schema(), tmp_path)
        cut = rng.randrange(0, len(text) + 1)
        pause = rng.choice([0.0, rng.uniform(0, 0.05), rng.uniform(0.05, 0.6), rng.uniform(0.6, 1.5)])
        states = killed_run(db, text, cut, pause)
        if states:
            last = states[-1]["bookmarks"]
            # Everything before the last emitted STATE is committed, even though the process was killed.
            committed = db.query(f'SELECT count(*) FROM "{db.schema}".s WHERE id <= %s', (last["s"],))[0][0]
            assert committed == last["s"], f"trial {trial}: STATE {last} emitted but not all its records committed"
            resume = state_at[last["records"] + (1 if last.get("done") else 0)] + 1
        else:
            resume = 1  # nothing emitted: replay everything
        replay = [lines[0], *lines[resume:]]  # a tap sends SCHEMA again, then everything after its bookmark
        db.run("\n".join(replay) + "\n", batch_size_rows=1_000)
        rows = db.query(f'SELECT id, v, n::text FROM "{db.schema}".s ORDER BY id')
        assert len(rows) == len(expected), f"trial {trial}: {len(rows)} rows, expected {len(expected)}"
        assert {r[0]: (r[1], r[2]) for r in rows} == expected, f"trial {trial}: table differs from the source"
        outcomes.append((cut, len(states)))
        db.close()
    # The kills did land at different points: before any STATE, in the middle, and after the end.
    emitted = [n for _, n in outcomes]
    assert min(emitted) == 0
    assert any(0 < n < 40 for n in emitted)
    assert time.monotonic() - started < 90
