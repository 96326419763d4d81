"""The real CLI in a subprocess against the emulator: loads end to end, STATE only after commits, one-line errors."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sf_live import both_accounts
from st_helpers import Warehouse, cli_env, lines_of, one_error_line, record_msg, schema_msg, state_msg

PASSPHRASE = "correct horse battery staple"


def _encrypted_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    encryption = serialization.BestAvailableEncryption(PASSPHRASE.encode())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption).decode()


TRICKY = [
    "",
    "\\N",
    "\\",
    "a\tb",
    "line1\nline2\r\nline3\r",
    '"quoted"',
    "NULL",
    "007",
    "ünïcödé ✓ 日本語 🚀",
    "ends with backslash\\",
    "\u2028",
]

USERS = {
    "id": {"type": "integer"},
    "name": {"type": ["string", "null"]},
    "address": {
        "type": ["object", "null"],
        "properties": {
            "city": {"type": ["string", "null"]},
            "geo": {"type": "object", "properties": {"lat": {"type": "number"}}},
        },
    },
    "tags": {"type": ["array", "null"], "items": {"type": "string"}},
    "updated_at": {"type": ["string", "null"], "format": "date-time"},
}


@both_accounts
def test_upsert_newest_record_wins_across_batches_with_nested_arrays_and_tricky_strings(wh: Warehouse) -> None:
    messages: list[Any] = [schema_msg("users", USERS, ["id"])]
    # Batches of 3: id 1 is sent in three batches (and twice within one); the newest record wins.
    messages += [
        record_msg("users", {"id": 1, "name": "first", "address": {"city": "Oslo", "geo": {"lat": 59.9}}}),
        record_msg("users", {"id": 2, "name": "b", "tags": ["x", "y\tz"]}),
        record_msg("users", {"id": 1, "name": "second", "updated_at": "2024-01-01T05:30:00+05:30"}),
        state_msg({"pos": 3}),
        record_msg("users", {"id": 3, "name": None, "tags": []}),
        record_msg("users", {"id": 1, "name": "third", "address": {"city": "Bergen"}}),
        record_msg("users", {"id": 1, "name": "newest", "address": {"city": "Tromsø", "geo": {"lat": 69.6}}}),
    ]
    messages += [record_msg("users", {"id": 100 + i, "name": s}) for i, s in enumerate(TRICKY)]
    messages.append(state_msg({"pos": 99}))
    result = wh.cli(messages, batch_size_rows=3)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.states == [{"pos": 3}, {"pos": 99}]
    for secret in wh.secrets:
        assert secret not in result.stderr + result.stdout
    assert list(wh.columns("users")) == [
        "ID", "NAME", "ADDRESS__CITY", "ADDRESS__GEO__LAT", "TAGS", "UPDATED_AT", "__LOADED_AT",
    ]  # fmt: skip
    assert wh.columns("users")["ADDRESS__GEO__LAT"] == "NUMBER(38,9)"
    assert wh.columns("users")["TAGS"] == "VARIANT"
    rows = wh.rows("users", ["id", "name", "address__city", "address__geo__lat", "tags"])
    by_id = {r[0]: r for r in rows}
    assert by_id[1][1:4] == ("newest", "Tromsø", by_id[1][3])
    assert float(by_id[1][3]) == 69.6
    assert json.loads(by_id[2][4]) == ["x", "y\tz"]
    assert json.loads(by_id[3][4]) == []
    assert by_id[3][1] is None
    assert [by_id[100 + i][1] for i in range(len(TRICKY))] == TRICKY
    assert len(rows) == 3 + len(TRICKY)


@both_accounts
def test_overwrite_replaces_the_rows_and_a_failed_run_keeps_the_old_ones(wh: Warehouse) -> None:
    props = {"id": {"type": "integer"}, "v": {"type": "string"}}
    wh.run(
        [
            schema_msg("items", props, ["id"]),
            record_msg("items", {"id": 1, "v": "old"}),
            record_msg("items", {"id": 2, "v": "old"}),
        ]
    )
    failing = [
        schema_msg("items", props, ["id"]),
        record_msg("items", {"id": 3, "v": "new"}),
        record_msg("items", {"id": 4, "v": "new"}),
        state_msg({"pos": 2}),
        record_msg("items", {"id": 5, "v": 5}),  # input line 5: not a string
    ]
    line = one_error_line(wh.cli(failing, load_method="overwrite", batch_size_rows=2), wh.secrets)
    assert "stream 'items', input line 5: property 'v' is integer, but the schema says string" in line
    assert wh.rows("items", ["id", "v"]) == [(1, "old"), (2, "old")]
    assert wh.tables() == ["ITEMS"]  # the failed run's side table was dropped
    result = wh.run(failing[:4], load_method="overwrite", batch_size_rows=1)
    assert result.states == [{"pos": 2}]  # only after the rows replaced the table's
    assert wh.rows("items", ["id", "v"]) == [(3, "new"), (4, "new")]


@both_accounts
def test_state_only_after_commit_and_never_after_a_failed_commit(wh: Warehouse) -> None:
    messages = [
        schema_msg("t", {"id": {"type": "integer"}, "n": {"type": ["integer", "null"]}}, ["id"]),
        record_msg("t", {"id": 1, "n": 1}),
        record_msg("t", {"id": 2, "n": 2}),
        state_msg({"pos": 2}),
        record_msg("t", {"id": 3, "n": "not a number"}),  # with validate_records off, Snowflake refuses it
        record_msg("t", {"id": 4, "n": 4}),
        state_msg({"pos": 4}),
        record_msg("t", {"id": 5, "n": 5}),
        state_msg({"pos": 5}),
    ]
    result = wh.cli(messages, validate_records=False, batch_size_rows=2)
    line = one_error_line(result, wh.secrets)
    assert result.states == [{"pos": 2}]  # the STATE after the failed batch, and every later one, never written
    # Snowflake's COPY names the row and column it refused (the emulator words it so too: fakesnow_errors).
    assert line.endswith(
        "stream 't', input line 5, property 'n' (column N): loading the batch failed: 100038: Numeric value '…' is "
        "not recognized (the batch of input lines 5-6; nothing was committed)"
    )
    assert "not a number" not in result.stderr  # values are never logged
    assert wh.rows("t", ["id", "n"]) == [(1, 1), (2, 2)]


def test_bad_input_is_one_line_naming_stream_and_input_line(wh: Warehouse) -> None:
    messages = [
        schema_msg("people", {"id": {"type": "integer"}, "age": {"type": ["integer", "null"]}}, ["id"]),
        record_msg("people", {"id": 1, "age": 30}),
        '{"type": "RECORD", "stream": "people", "record": {"id": 2, "age": 3',
    ]
    # Key-pair login (the emulator takes the JWT without verifying it): no line of the key in any output.
    pem = _encrypted_pem()
    result = wh.cli(messages, password=None, private_key=pem, private_key_passphrase=PASSPHRASE)
    line = one_error_line(result)
    assert "stream 'people', input line 3: malformed JSON" in line
    for secret in (PASSPHRASE, *pem.splitlines()[1:-1]):
        assert secret not in result.stderr + result.stdout
    assert wh.count("people") == 0  # the open batch was not committed


def test_a_wrong_port_fails_at_start_up_in_one_line(wh: Warehouse) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    result = wh.cli([schema_msg("x", {"id": {"type": "integer"}})], port=port)
    line = one_error_line(result)
    assert "cannot connect to Snowflake (account 'fakesnow', user 'fake', auth `password`" in line
    assert "check `account` and `host` and `port` and `protocol`" in line
    assert wh.tables() == []  # nothing was created


@both_accounts
def test_state_follows_each_commit_while_the_input_continues(wh: Warehouse) -> None:
    """The tap is still running (stdin open): the STATE after a full batch comes out once that batch committed."""
    config = wh.tmp_path / "config.json"
    config.write_text(json.dumps(wh.config(batch_size_rows=2)))
    # The installed console script, as a user runs it (the other CLI runs are forked by st_helpers.CLI).
    argv = [str(Path(sys.executable).with_name("target-snowflake")), "--config", str(config)]
    proc = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env(), text=True
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    stderr: list[str] = []
    reader = threading.Thread(target=lambda: stderr.append(proc.stderr.read() if proc.stderr else ""), daemon=True)
    reader.start()
    first = [
        schema_msg("live", {"id": {"type": "integer"}}, ["id"]),
        record_msg("live", {"id": 1}),
        record_msg("live", {"id": 2}),  # the batch is full: handed to a commit
        state_msg({"pos": 2}),
    ]
    proc.stdin.write(lines_of(first))
    proc.stdin.flush()
    try:
        line = proc.stdout.readline()  # blocks until the target writes the STATE (or exits)
        assert json.loads(line) == {"pos": 2}, "".join(stderr)
        assert wh.rows("live", ["id"]) == [(1,), (2,)]  # written only after the batch committed
        proc.stdin.write(lines_of([record_msg("live", {"id": 3}), state_msg({"pos": 3})]))
        proc.stdin.close()
        assert json.loads(proc.stdout.readline()) == {"pos": 3}
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        reader.join(timeout=10)
    assert wh.rows("live", ["id"]) == [(1,), (2,), (3,)]
