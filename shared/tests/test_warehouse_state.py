"""The StateEmitter: STATE only after the commits it waits for, in order, never backwards, nothing after a failure.

Target-level tests (real commits, real interleavings) are in target-postgres/tests/test_state_order.py.
"""

from __future__ import annotations

import random

import pytest

from harborline_singer_shared.warehouse.state import StateEmitter


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
