"""The one place STATE goes out: only after every batch before it committed, never backwards, as soon as that holds.

Batches commit in background threads (`commit jobs`), so a STATE that follows records already handed to such a job
has to wait. The target `offer`s a STATE once every record before it has been handed to a commit job (no sink holds
an open batch with records from before it); the emitter notes which jobs are still running at that moment, and
writes the STATE when the last of them has committed. Jobs that start later carry only records from after the STATE,
so they are not waited for.

Because those sets only shrink as jobs end, a later STATE never becomes writable before an earlier one, so STATE
never goes backwards: a held STATE is never overtaken by a newer one. When several become writable at once (the
commit they wait for ended), they are written in order, oldest first; with `coalesce` only the newest of them is
written and the older ones are dropped as superseded. A failed job stops everything: nothing more is written, and
the target raises the job's error.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

_NOTHING: Any = object()

#: Held states kept one by one at most; beyond that, states that become writable together are coalesced (a tap that
#: sends STATE after STATE while a commit runs must not grow memory without bound).
MAX_HELD = 100


class StateEmitter:
    """Holds STATE messages until the commit jobs running when each was offered have ended, then writes them."""

    def __init__(self, write: Callable[[Any], None], *, coalesce: bool = False) -> None:
        self._write = write
        self._coalesce = coalesce
        self._lock = threading.Lock()
        self._running: set[object] = set()
        #: Offered states not yet writable, oldest first, each with the jobs it waits for.
        self._held: list[tuple[Any, frozenset[object]]] = []
        self._last: Any = _NOTHING
        #: The error of the first commit job that failed; from then on nothing is written.
        self.failure: BaseException | None = None

    def begin(self, job: object) -> None:
        """A commit job is about to start (call before it can end)."""
        with self._lock:
            self._running.add(job)

    def end(self, job: object, error: BaseException | None = None) -> None:
        """A commit job ended (in its own thread): write the states that no longer wait for anything."""
        with self._lock:
            self._running.discard(job)
            if error is not None:
                if self.failure is None:
                    self.failure = error
                self._held.clear()
                return
            if self.failure is not None or not self._held:
                return
            for i in range(len(self._held) - 1, -1, -1):
                if self._held[i][1].isdisjoint(self._running):
                    ready = [state for state, _ in self._held[: i + 1]]
                    del self._held[: i + 1]
                    with contextlib.suppress(Exception):  # kept in `failure`, raised by the target's thread
                        self._emit_all(ready[-1:] if self._coalesce else ready)
                    return

    def offer(self, state: Any) -> None:
        """Every record before `state` has been handed to a commit job: write it once those jobs have committed."""
        with self._lock:
            if self.failure is not None:
                return
            waits_for = frozenset(self._running)
            if not waits_for:
                # Whatever is still held waited only for jobs that have all committed (normally nothing is left).
                ready = [held for held, _ in self._held]
                self._held.clear()
                self._emit_all([state] if self._coalesce else [*ready, state])
                return
            if self._coalesce or len(self._held) >= MAX_HELD:
                # An older held state that waits for every job this one waits for becomes writable with it, not
                # before: superseded.
                while self._held and self._held[-1][1] >= waits_for:
                    self._held.pop()
            self._held.append((state, waits_for))

    @property
    def held(self) -> list[Any]:
        """The states waiting for commits, oldest first (for tests and logs)."""
        with self._lock:
            return [state for state, _ in self._held]

    def _emit_all(self, states: list[Any]) -> None:
        for state in states:
            self._emit(state)

    def _emit(self, state: Any) -> None:
        if state == self._last:
            return
        try:
            self._write(state)
        except BaseException as exc:  # e.g. stdout closed: nothing may be written after a STATE that was lost
            self.failure = exc
            self._held.clear()
            raise
        self._last = state
