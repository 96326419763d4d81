"""STATE never goes backwards: a STATE held while a commit runs is never overtaken by a newer one.

Issue 11 saw `[1, 2, 13, 10, ...]` (1 run in 10): an older STATE held for a running commit was written after a newer
one that went out directly. These tests make the interleaving deterministic: commits wait at a gate the test opens,
and the test waits for the commit threads to end (events, not pauses). The StateEmitter's own unit tests are in
shared/tests/test_warehouse_state.py.
"""

from __future__ import annotations

import io
import json
import threading
from contextlib import redirect_stdout

from tp_helpers import record_msg, schema_msg, state_msg

from harborline_target_postgres.sinks import PostgresSink

HUNG = 120  # a safety net for a hung thread only

SCHEMA_S = schema_msg("s", {"id": {"type": "integer"}, "v": {"type": "string"}}, ["id"])
WIDER_S = schema_msg("s", {"id": {"type": "integer"}, "v": {"type": "string"}, "w": {"type": "integer"}}, ["id"])


def join_commit_threads() -> None:
    for thread in threading.enumerate():
        if thread.name.startswith("commit-"):
            thread.join(HUNG)


def test_state_held_for_a_commit_is_never_written_after_a_newer_one(db, monkeypatch):
    gate = threading.Event()
    commit = PostgresSink._commit_batch

    def gated(self, *args):
        assert gate.wait(HUNG)
        commit(self, *args)

    monkeypatch.setattr(PostgresSink, "_commit_batch", gated)
    out = io.StringIO()
    observed = []

    def feed():
        yield json.dumps(SCHEMA_S) + "\n"
        yield json.dumps(record_msg("s", {"id": 1, "v": "a"})) + "\n"
        yield json.dumps(state_msg({"n": 1})) + "\n"
        yield json.dumps(record_msg("s", {"id": 2, "v": "b"})) + "\n"  # batch of 2 full: its commit waits
        yield json.dumps(state_msg({"n": 2})) + "\n"  # nothing of its own pending, but that commit still runs
        observed.append(out.getvalue())
        gate.set()
        join_commit_threads()
        observed.append(out.getvalue())  # the commit is done: both are out, in order, with no further input
        yield json.dumps(WIDER_S) + "\n"  # drains: nothing open, nothing running
        yield json.dumps(record_msg("s", {"id": 3, "v": "c", "w": 3})) + "\n"
        yield json.dumps(state_msg({"n": 3})) + "\n"

    with redirect_stdout(out):
        db.target(batch_size_rows=2).listen(feed())
    assert observed == ["", '{"n": 1}\n{"n": 2}\n']
    # Before the fix: [{"n": 2}, {"n": 1}, {"n": 3}] ({"n": 2} went out directly, the held {"n": 1} after it).
    assert [json.loads(line) for line in out.getvalue().splitlines()] == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert db.rows("s", "id, v, w") == [(1, "a", None), (2, "b", None), (3, "c", 3)]


# -- the emitter on its own --------------------------------------------------------------------------------------
