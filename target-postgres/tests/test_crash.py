"""SIGKILL at random points of a multi-batch load, then replay from the last STATE emitted: exactly the source.

A tap resumes from the last STATE the target emitted, so the guarantee under test is: every record before an
emitted STATE is committed (nothing lost), and replaying everything after it into a keyed stream converges to the
source (nothing duplicated, newest value wins), wherever the kill landed: mid-COPY, mid-merge, between commit and
STATE, or before the first commit.

Where the kill lands is chosen by events the test observes, never by a sleep: the input is cut at a random byte and
the target is killed as soon as it has taken that input in, or once every full batch of it is committed (its
STATE may still be waiting), or as soon as a random number of STATE lines came out.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import random
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg2
import pytest
from tp_helpers import Db, cli_argv, cli_env, cli_popen, new_schema, record_msg, schema_msg, shared_database, state_msg

TRIALS = 20
SEED = 20261124
BATCH = 1_000
SCHEMA = schema_msg("s", {"id": {"type": "integer"}, "v": {"type": "string"}, "n": {"type": "number"}}, ["id"])
#: How long an awaited event may take before the test fails (generous: CI machines are loaded).
EVENT_DEADLINE = 120.0


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


def committed_rows(db: Db) -> int:
    """Rows of `s` visible to another connection (committed); 0 before the target created the table."""
    try:
        return db.query(f'SELECT count(*) FROM "{db.schema}".s')[0][0]
    except psycopg2.errors.UndefinedTable:
        return 0


def wait_for(condition: Callable[[], bool], what: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Poll `condition` (each check is an observation, not a guess) until it holds; fail after EVENT_DEADLINE."""
    deadline = time.monotonic() + EVENT_DEADLINE
    while not condition():
        assert proc.poll() is None, f"the target exited (code {proc.returncode}) before {what}:\n{tail(log)}"
        assert time.monotonic() < deadline, f"no {what} after {EVENT_DEADLINE:.0f} s:\n{tail(log)}"
        time.sleep(0.01)


def tail(log: Path) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-15:])


def killed_run(db: Db, text: bytes, cut: int, trigger: str, *, full_batch_rows: int, states_wanted: int) -> list[dict]:
    """Start the CLI, feed it the first `cut` bytes, SIGKILL it when `trigger` happens; the STATEs it emitted.

    `trigger` is "taken" (the write of the input returned: the target has read all but a pipe buffer of it),
    "committed" (the table holds `full_batch_rows` rows: every full batch of the input is committed, the target may
    be mid-COPY of the next one, its STATE possibly still waiting), or "states" (`states_wanted` STATE lines came
    out, or everything the input can commit is committed, whichever is first).
    """
    argv = [*cli_argv(), "--config", str(db.config_file(batch_size_rows=BATCH))]
    log = db.tmp_path / f"{db.schema}.log"
    with log.open("wb") as stderr:
        proc = cli_popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, env=cli_env())
    out: list[bytes] = []  # stdout lines, appended one by one as they come (the "states" trigger counts them)

    def read_stdout() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            out.append(line)  # noqa: PERF402 - one by one: the "states" trigger counts them as they come

    reader = threading.Thread(target=read_stdout, daemon=True)
    reader.start()
    try:
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.write(text[:cut])  # type: ignore[union-attr]
            proc.stdin.flush()  # type: ignore[union-attr]
        if trigger == "committed":
            wait_for(lambda: committed_rows(db) >= full_batch_rows, f"commit of {full_batch_rows} rows", proc, log)
        elif trigger == "states":
            wait_for(
                lambda: len(out) >= states_wanted or committed_rows(db) >= full_batch_rows,
                f"{states_wanted} STATE lines nor commit of {full_batch_rows} rows",
                proc,
                log,
            )
        assert proc.poll() is None, f"the target exited (code {proc.returncode}) with its input open:\n{tail(log)}"
    finally:
        proc.kill()
        proc.wait(timeout=60)
        reader.join(timeout=60)
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
    # Per number of complete lines fed: records among them, and distinct keys in the full batches they make.
    records_upto = [0]
    seen_keys: set[int] = set()
    distinct_after: list[int] = [0]  # distinct keys among the first n records
    for line in lines:
        message = json.loads(line)
        is_record = message["type"] == "RECORD"
        records_upto.append(records_upto[-1] + is_record)
        if is_record:
            seen_keys.add(message["record"]["id"])
            distinct_after.append(len(seen_keys))
    first_batch_end = offsets[next(i for i, n in enumerate(records_upto) if n == BATCH)]
    rng = random.Random(SEED)
    outcomes = []
    for trial in range(TRIALS):
        db = Db(shared_database(), new_schema(), tmp_path)
        # The first trial is cut inside the first batch: nothing can be committed, so no STATE may come out.
        cut = rng.randrange(0, first_batch_end) if trial == 0 else rng.randrange(0, len(text) + 1)
        complete_lines = bisect.bisect_right(offsets, cut) - 1  # lines whose newline is in the input
        full_batch_rows = distinct_after[records_upto[complete_lines] // BATCH * BATCH]
        trigger = rng.choice(["taken", "committed", "states"])
        states_wanted = rng.randint(1, 2 * (records_upto[complete_lines] // BATCH) + 1)
        states = killed_run(db, text, cut, trigger, full_batch_rows=full_batch_rows, states_wanted=states_wanted)
        if states:
            last = states[-1]["bookmarks"]
            # Everything before the last emitted STATE is committed, even though the process was killed.
            committed = db.query(f'SELECT count(*) FROM "{db.schema}".s WHERE id <= %s', (last["s"],))[0][0]
            assert committed == last["s"], f"trial {trial}: STATE {last} emitted but not all its records committed"
            resume = state_at[last["records"] + (1 if last.get("done") else 0)] + 1
        else:
            resume = 1  # nothing emitted: replay everything
        replay = [lines[0], *lines[resume:]]  # a tap sends SCHEMA again, then everything after its bookmark
        db.run("\n".join(replay) + "\n", batch_size_rows=BATCH)
        rows = db.query(f'SELECT id, v, n::text FROM "{db.schema}".s ORDER BY id')
        assert len(rows) == len(expected), f"trial {trial}: {len(rows)} rows, expected {len(expected)}"
        assert {r[0]: (r[1], r[2]) for r in rows} == expected, f"trial {trial}: table differs from the source"
        outcomes.append((cut, trigger, len(states)))
        db.close()
    # The kills did land at different points: before any STATE, and in the middle.
    emitted = [n for _, _, n in outcomes]
    assert min(emitted) == 0
    assert any(0 < n < 40 for n in emitted), outcomes
