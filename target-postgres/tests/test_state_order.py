"""STATE never goes backwards: a STATE held while a commit runs is never overtaken by a newer one.

Issue 11 saw `[1, 2, 13, 10, ...]` (1 run in 10): an older STATE held for a running commit was written after a newer
one that went out directly. These tests make the interleaving deterministic: commits wait at a gate the test opens,
and the test waits for the commit threads to end (events, not pauses).
"""

from __future__ import annotations

import io
import json
import random
import threading
from contextlib import redirect_stdout

import pytest
from tp_helpers import record_msg, schema_msg, state_msg

from harborline_singer_shared.warehouse.state import StateEmitter
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


def make_emitter(*, coalesce: bool = False) -> tuple[StateEmitter, list]:
    written: list = []
    return StateEmitter(written.append, coalesce=coalesce), written


def test_emitter_writes_at_once_when_no_commit_runs():
    emitter, written = make_emitter()
    emitter.offer({"n": 1})
    emitter.offer({"n": 1})  # unchanged: not repeated
    emitter.offer({"n": 2})
    assert written == [{"n": 1}, {"n": 2}]


def test_emitter_waits_for_the_commits_running_when_offered_and_writes_in_order():
    emitter, written = make_emitter()
    first, second = object(), object()
    emitter.begin(first)
    emitter.offer(1)
    emitter.begin(second)
    emitter.offer(2)  # waits for both
    emitter.offer(3)  # waits for both
    emitter.end(second)
    assert written == []  # all still wait for `first`
    emitter.end(first)
    assert written == [1, 2, 3]
    assert emitter.held == []


def test_coalescing_emitter_drops_superseded_states():
    emitter, written = make_emitter(coalesce=True)
    first, second = object(), object()
    emitter.begin(first)
    emitter.offer(1)
    emitter.begin(second)
    emitter.offer(2)  # waits for both
    emitter.offer(3)  # waits for both: supersedes 2
    assert emitter.held == [1, 3]
    emitter.end(second)
    assert written == []
    emitter.end(first)
    assert written == [3]  # 1 superseded: never written after 3
    assert emitter.held == []


def test_emitter_bounds_the_states_it_holds():
    emitter, written = make_emitter()
    job = object()
    emitter.begin(job)
    for n in range(1, 1001):
        emitter.offer(n)
    assert len(emitter.held) <= 100
    emitter.end(job)
    assert written == sorted(written)
    assert written[-1] == 1000


def test_emitter_writes_each_state_as_soon_as_its_commits_are_done():
    emitter, written = make_emitter()
    first, second = object(), object()
    emitter.begin(first)
    emitter.offer(1)
    emitter.begin(second)  # carries only records from after 1
    emitter.end(first)
    assert written == [1]
    emitter.offer(2)
    emitter.end(second)
    assert written == [1, 2]


def test_emitter_writes_nothing_after_a_failed_commit():
    emitter, written = make_emitter()
    job = object()
    emitter.begin(job)
    emitter.offer(1)
    error = RuntimeError("commit failed")
    emitter.end(job, error)
    emitter.offer(2)
    assert written == []
    assert emitter.failure is error


@pytest.mark.parametrize("coalesce", [False, True])
def test_emitter_never_writes_backwards_nor_before_its_commits_in_random_interleavings(coalesce):
    rng = random.Random(20261203)
    for _ in range(300):
        running: list[object] = []
        ended: set[object] = set()
        waits: dict[int, set[object]] = {}
        written: list[int] = []

        def write(state: int, *, _waits=waits, _ended=ended, _written=written) -> None:
            assert _waits[state] <= _ended, f"STATE {state} written before its commits ended"
            _written.append(state)

        emitter = StateEmitter(write, coalesce=coalesce)
        offered = 0
        for _ in range(60):
            action = rng.random()
            if action < 0.3:
                job = object()
                running.append(job)
                emitter.begin(job)
            elif action < 0.6 and running:
                job = running.pop(rng.randrange(len(running)))
                ended.add(job)
                emitter.end(job)
            else:
                offered += 1
                waits[offered] = set(running)
                emitter.offer(offered)
        for job in running:
            ended.add(job)
            emitter.end(job)
        assert written == sorted(set(written)), written
        if offered:
            assert written[-1] == offered  # once every commit is done, the newest STATE is out
        if not coalesce:
            assert written == list(range(1, offered + 1))  # every STATE, each once, in order
