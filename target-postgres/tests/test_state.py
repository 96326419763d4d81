"""STATE goes to stdout only once every record received before it is committed (checked against the database)."""

from __future__ import annotations

import io
import json
import queue
import subprocess
import threading
from contextlib import redirect_stdout

from tp_helpers import cli_argv, cli_env, cli_popen, lines_of, record_msg, schema_msg, state_msg

SCHEMA_S = schema_msg("s", {"id": {"type": "integer"}, "v": {"type": "string"}}, ["id"])
SCHEMA_T = schema_msg("t", {"id": {"type": "integer"}}, [])


class LiveTarget:
    """The CLI as a subprocess whose stdout is read line by line while it runs.

    With `merge_stderr`, its log lines come down the same pipe as its STATE lines, in the order it wrote them (both
    are flushed line by line): a log line then proves which STATE lines were written before it.
    """

    def __init__(self, db, *, merge_stderr: bool = False, **overrides) -> None:
        argv = [*cli_argv(), "--config", str(db.config_file(**overrides))]
        stderr = subprocess.STDOUT if merge_stderr else subprocess.PIPE
        self.proc = cli_popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, env=cli_env())
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr = b""
        threading.Thread(target=self._read_stdout, daemon=True).start()
        self._err_thread = threading.Thread(target=self._read_stderr, daemon=True)
        self._err_thread.start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.decode())
        self.lines.put(None)

    def _read_stderr(self) -> None:
        if self.proc.stderr is not None:
            self.stderr = self.proc.stderr.read()

    def send(self, messages) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(lines_of(messages).encode())
        self.proc.stdin.flush()

    def next_line(self, timeout: float) -> str | None:
        """The next output line (None at the end of output); raises queue.Empty if none comes within `timeout`."""
        return self.lines.get(timeout=timeout)

    def lines_until(self, marker: str, timeout: float) -> list[str]:
        """The output lines before the first one containing `marker` (each line may take up to `timeout`)."""
        before: list[str] = []
        while True:
            try:
                line = self.next_line(timeout)
            except queue.Empty:
                raise AssertionError(f"no {marker!r} in the output within {timeout:.0f} s; so far: {before}") from None
            assert line is not None, f"the output ended before {marker!r}: {before}"
            if marker in line:
                return before
            before.append(line)

    def next_state(self, timeout: float):
        """The next STATE line (log lines, when merged in, are skipped); None at the end of output."""
        while (line := self.next_line(timeout)) is not None:
            if line.startswith("{"):
                return json.loads(line)
        return None

    def send_all_and_close(self, messages) -> None:
        self.send(messages)
        self.close_input()

    def close_input(self) -> None:
        assert self.proc.stdin is not None
        if not self.proc.stdin.closed:
            self.proc.stdin.close()

    def finish(self, timeout: float = 60) -> int:
        self.close_input()
        code = self.proc.wait(timeout=timeout)
        self._err_thread.join(timeout)
        return code


def test_each_state_follows_the_commit_of_every_record_before_it(db):
    """The CLI with small batches; after each STATE line the test reads the table: every record that came before
    that STATE in the input must be there (the target may already be further along; that is fine)."""
    messages = [SCHEMA_S, SCHEMA_T]
    preceding: dict[int, int] = {}  # state bookmark -> number of `t` records before it
    t_count = 0
    for i in range(1, 2001):
        messages.append(record_msg("s", {"id": i, "v": f"v{i}"}))
        if i % 3 == 0:
            messages.append(record_msg("t", {"id": i}))
            t_count += 1
        if i % 70 == 0:
            messages.append(state_msg({"bookmarks": {"s": i}}))
            preceding[i] = t_count
    messages.append(state_msg({"bookmarks": {"s": 2000, "final": True}}))

    live = LiveTarget(db, batch_size_rows=150)
    writer = threading.Thread(target=live.send_all_and_close, args=(messages,))
    writer.start()
    seen = []
    while (state := live.next_state(timeout=60)) is not None:
        last = state["bookmarks"]["s"]
        committed_s = db.query(f'SELECT count(*) FROM "{db.schema}".s WHERE id <= %s', (last,))[0][0]
        assert committed_s == last, f"STATE {state} came out before records 1..{last} of s were committed"
        if "final" not in state["bookmarks"]:
            assert db.count("t") >= preceding[last]
        seen.append(state)
    writer.join()
    assert live.finish() == 0
    assert len(seen) >= 5  # a state after (nearly) each of the 13+ commits, not only at the end
    assert seen[-1] == {"bookmarks": {"s": 2000, "final": True}}
    assert db.count("s") == 2000
    assert db.count("t") == t_count


def test_failed_run_never_emits_the_state_after_uncommitted_records(db):
    messages = [SCHEMA_S]
    messages += [record_msg("s", {"id": i}) for i in range(1, 51)]
    messages.append(state_msg({"upto": 50}))
    messages += [record_msg("s", {"id": i}) for i in range(51, 121)]
    messages.append(state_msg({"upto": 120}))
    messages += [record_msg("s", {"id": i}) for i in range(121, 141)]
    text = lines_of(messages) + '{"type": "RECORD", "stream": "s", "record": {"id": 141\n'
    result = db.cli(text, batch_size_rows=100)
    assert result.returncode != 0
    # The batch of records 1..100 was committed, so the STATE that followed record 50 went out; the one after 120
    # did not, since records 101..120 were never committed.
    assert result.states == [{"upto": 50}]
    assert db.rows("s", "id") == [(i,) for i in range(1, 101)]


def test_state_with_nothing_pending_is_emitted_right_away(db):
    live = LiveTarget(db, merge_stderr=True)
    live.send([state_msg({"first": 1})])
    assert live.next_state(timeout=60) == {"first": 1}  # stdin is still open: it was not held to the end
    live.send([SCHEMA_S, record_msg("s", {"id": 1}), state_msg({"second": 2}), SCHEMA_T])
    # A record is pending (batch not full): its STATE must wait for the commit at the end of the input. The target
    # handles its input in order, so once it logs the creation of t's table (whose SCHEMA came after the STATE) it
    # has handled that STATE; a STATE it wrote then would be on the shared pipe before this log line.
    before_marker = live.lines_until(f"Created table {db.schema}.t", timeout=60)
    assert [line for line in before_marker if line.startswith("{")] == []
    assert live.finish() == 0
    assert live.next_state(timeout=60) == {"second": 2}
    assert db.rows("s", "id") == [(1,)]


def test_state_emitted_in_process_after_each_drain(db):
    """The same rule in-process: STATE with nothing pending appears before the next line is even read."""
    out = io.StringIO()
    observed = []
    target = db.target(batch_size_rows=2)

    def feed():
        yield json.dumps(state_msg({"a": 1})) + "\n"
        observed.append(out.getvalue())
        yield json.dumps(SCHEMA_S) + "\n"
        yield json.dumps(record_msg("s", {"id": 1})) + "\n"
        yield json.dumps(state_msg({"a": 2})) + "\n"
        observed.append(out.getvalue())
        yield json.dumps(record_msg("s", {"id": 2})) + "\n"  # batch of 2 full: commit, then STATE {"a": 2}
        target.get_sink("s").wait_committed()  # the event: the handed-off commit ended (its thread wrote the STATE)
        observed.append(out.getvalue())
        yield json.dumps(state_msg({"a": 2})) + "\n"  # unchanged: not repeated
        yield json.dumps(state_msg({"a": 3})) + "\n"
        observed.append(out.getvalue())

    with redirect_stdout(out):
        target.listen(feed())
    assert observed == [
        '{"a": 1}\n',
        '{"a": 1}\n',
        '{"a": 1}\n{"a": 2}\n',
        '{"a": 1}\n{"a": 2}\n{"a": 3}\n',
    ]
    assert out.getvalue() == '{"a": 1}\n{"a": 2}\n{"a": 3}\n'


def test_overwrite_holds_state_until_the_swap(db):
    db.run([SCHEMA_S, record_msg("s", {"id": 1})])
    out = io.StringIO()
    observed = []

    def feed():
        yield json.dumps(SCHEMA_S) + "\n"
        for i in range(10, 16):
            yield json.dumps(record_msg("s", {"id": i})) + "\n"
            yield json.dumps(state_msg({"i": i})) + "\n"
        observed.append(out.getvalue())

    with redirect_stdout(out):
        db.target(load_method="overwrite", batch_size_rows=2).listen(feed())
    # Batches were committed to staging, but the table still had the old rows: no STATE could go out yet.
    assert observed == [""]
    assert out.getvalue() == '{"i": 15}\n'
    assert db.rows("s", "id") == [(i,) for i in range(10, 16)]
