"""The target in-process against the emulator: schema evolution, ACTIVATE_VERSION, pseudonymization, faults."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sf_live import both_accounts
from singer_sdk.exceptions import ConfigValidationError
from snowflake.connector import errors
from st_helpers import Warehouse, record_msg, schema_msg, state_msg

from harborline_singer_shared.retry import RetryPolicy
from harborline_singer_shared.rules import IncompatibleSchemaChangeError
from harborline_singer_shared.warehouse.errors import RecordTypeError, TargetLoadError
from harborline_target_snowflake import load, sinks

KEY = "k" * 32


@both_accounts
def test_schema_evolution_adds_columns_and_widens_in_place_or_by_rebuild_keeping_the_key(wh: Warehouse) -> None:
    v1 = {"id": {"type": "integer"}, "n": {"type": ["integer", "null"]}, "s": {"type": ["string", "null"]}}
    wh.run([schema_msg("evo", v1, ["id"]), record_msg("evo", {"id": 1, "n": 7, "s": "a"})])
    v2 = {**v1, "n": {"type": ["number", "null"]}, "added": {"type": ["boolean", "null"]}}
    wh.run([schema_msg("evo", v2, ["id"]), record_msg("evo", {"id": 2, "n": 2.5, "added": True})])
    columns = wh.columns("evo")
    assert columns["N"] == "NUMBER(38,9)"  # integer -> number: another scale, so the table was rebuilt
    assert columns["ADDED"] == "BOOLEAN"
    assert wh.rows("evo", ["id", "n", "s", "added"]) == [(1, 7, "a", None), (2, 2.5, None, True)]
    assert [r[4] for r in wh.query(f"SHOW PRIMARY KEYS IN TABLE {wh.table('evo')}")] == ["ID"]
    assert wh.tables() == ["EVO"]  # no rebuild or staging table left behind
    # The key still merges after the rebuild.
    wh.run([schema_msg("evo", v2, ["id"]), record_msg("evo", {"id": 1, "n": 1.25, "s": "b"})])
    assert wh.rows("evo", ["id", "n", "s"]) == [(1, 1.25, "b"), (2, 2.5, None)]


def test_a_rebuild_table_left_by_a_killed_run_is_dropped_at_the_next_start(wh: Warehouse) -> None:
    v1 = {"id": {"type": "integer"}, "n": {"type": ["integer", "null"]}}
    wh.run([schema_msg("kept", v1, ["id"]), record_msg("kept", {"id": 1, "n": 7})])
    from harborline_target_snowflake import connector  # noqa: PLC0415

    leftover = connector.side_name("kept", "rebuild")
    wh.query(f'CREATE TABLE "{wh.schema.upper()}"."{leftover}" ("ID" NUMBER(38,0))')
    assert wh.tables() == [leftover, "KEPT"]
    wh.run([schema_msg("kept", v1, ["id"]), record_msg("kept", {"id": 2, "n": 8})])
    assert wh.tables() == ["KEPT"]
    assert wh.rows("kept", ["id", "n"]) == [(1, 7), (2, 8)]


def test_append_only_keeps_every_record(wh: Warehouse) -> None:
    messages = [
        schema_msg("events", {"id": {"type": "integer"}, "v": {"type": "string"}}, ["id"]),
        record_msg("events", {"id": 1, "v": "a"}),
        record_msg("events", {"id": 1, "v": "b"}),
        record_msg("events", {"id": 1, "v": "c"}),
    ]
    wh.run(messages, load_method="append-only", batch_size_rows=2)
    wh.run(messages[:2], load_method="append-only")
    assert sorted(r[1] for r in wh.rows("events", ["id", "v"])) == ["a", "a", "b", "c"]


def test_narrowing_is_refused_in_one_line_and_nothing_changes(wh: Warehouse) -> None:
    v1 = {"id": {"type": "integer"}, "v": {"type": "number"}}
    wh.run([schema_msg("m", v1, ["id"]), record_msg("m", {"id": 1, "v": 1.5})])
    before = wh.columns("m")
    narrower = {"id": {"type": "integer"}, "v": {"type": "integer"}}
    with pytest.raises(IncompatibleSchemaChangeError) as info:
        wh.run([schema_msg("m", narrower, ["id"]), record_msg("m", {"id": 2, "v": 2})])
    line = str(info.value)
    assert "\n" not in line
    assert "stream 'm', input line 1: column 'v' is number and the new SCHEMA asks for integer: a narrowing" in line
    assert wh.columns("m") == before
    assert wh.rows("m", ["id", "v"]) == [(1, 1.5)]


def _versioned(version: int, ids: list[int]) -> list[Any]:
    messages: list[Any] = [schema_msg("full", {"id": {"type": "integer"}, "v": {"type": "string"}}, ["id"])]
    messages += [record_msg("full", {"id": i, "v": f"v{version}"}, version=version) for i in ids]
    messages.append({"type": "ACTIVATE_VERSION", "stream": "full", "version": version})
    return messages


@both_accounts
def test_activate_version_soft_deletes_rows_of_older_versions(wh: Warehouse) -> None:
    wh.run(_versioned(1, [1, 2, 3]))
    wh.run(_versioned(2, [1, 2]))
    live = wh.rows("full", ["id", "v", "_sdc_table_version"])
    assert live == [(1, "v2", 2), (2, "v2", 2), (3, "v1", 1)]
    assert wh.count("full", '"_SDC_DELETED_AT" IS NOT NULL') == 1
    assert wh.count("full", '"_SDC_DELETED_AT" IS NOT NULL AND "ID" = 3') == 1
    wh.run(_versioned(3, [3]))  # sent again: live again
    assert wh.count("full", '"_SDC_DELETED_AT" IS NULL') == 1
    assert wh.count("full", '"_SDC_DELETED_AT" IS NULL AND "ID" = 3') == 1


@both_accounts
def test_activate_version_hard_delete_removes_them(wh: Warehouse) -> None:
    wh.run(_versioned(1, [1, 2, 3]), hard_delete=True)
    wh.run(_versioned(2, [2]), hard_delete=True)
    assert wh.rows("full", ["id", "v"]) == [(2, "v2")]


def test_pseudonymized_fields_never_reach_the_table_in_clear(wh: Warehouse) -> None:
    props = {"id": {"type": "integer"}, "email": {"type": ["string", "null"]}}
    messages = [
        schema_msg("people", props, ["id"]),
        record_msg("people", {"id": 1, "email": "ada@example.com"}),
        record_msg("people", {"id": 2, "email": "ada@example.com"}),
        record_msg("people", {"id": 3, "email": "bob@example.com"}),
    ]
    wh.run(messages, pseudonymize={"people": ["email"]}, pseudonymization_key=KEY)
    emails = [r[1] for r in wh.rows("people", ["id", "email"])]
    assert all(e.startswith("hl1:") for e in emails)
    assert emails[0] == emails[1] != emails[2]


def test_a_later_schema_in_an_overwrite_run_evolves_the_side_table(wh: Warehouse) -> None:
    v1 = {"id": {"type": "integer"}, "v": {"type": "string"}}
    wh.run([schema_msg("ow", v1, ["id"]), record_msg("ow", {"id": 9, "v": "old"})])
    v2 = {**v1, "extra": {"type": ["integer", "null"]}}
    result = wh.run(
        [
            schema_msg("ow", v1, ["id"]),
            record_msg("ow", {"id": 1, "v": "a"}),
            state_msg({"pos": 1}),
            schema_msg("ow", v2, ["id"]),
            record_msg("ow", {"id": 2, "v": "b", "extra": 7}),
            state_msg({"pos": 2}),
        ],
        load_method="overwrite",
    )
    assert result.states == [{"pos": 2}]  # held until the rows replaced the table's at the end
    assert wh.rows("ow", ["id", "v", "extra"]) == [(1, "a", None), (2, "b", 7)]
    assert wh.tables() == ["OW"]


def test_long_and_colliding_names_stay_distinct(wh: Warehouse) -> None:
    long_a, long_b = "a" * 300 + "x", "a" * 300 + "y"
    props = {
        "id": {"type": "integer"},
        "Name": {"type": "string"},
        "name": {"type": "string"},
        long_a: {"type": "string"},
        long_b: {"type": "string"},
    }
    wh.run(
        [
            schema_msg("n" * 300, props, ["id"]),
            record_msg("n" * 300, {"id": 1, "Name": "A", "name": "a", long_a: "x", long_b: "y"}),
        ]
    )
    (table,) = wh.tables()
    assert len(table) == 255
    columns = [c for c in wh.columns(table.lower()) if c != "__LOADED_AT"]
    assert len(columns) == 5
    assert all(len(c) <= 255 for c in columns)
    values = sorted(str(v) for v in wh.query(f'SELECT * EXCLUDE ("__LOADED_AT") FROM {wh.table(table.lower())}')[0])
    assert values == ["1", "A", "a", "x", "y"]


class _FaultOnce:
    """Makes the first load's MERGE (or INSERT) fail with `error`, as a dropped connection would."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, error: BaseException) -> None:
        self.error: BaseException | None = error
        self.loads = 0
        real = load.TableLoad.load
        outer = self

        def faulty(self: load.TableLoad, conn: Any, chunks: Any, rows: int | None = None, attempt: Any = None) -> Any:
            outer.loads += 1
            if outer.error is None:
                return real(self, conn, chunks, rows, attempt)
            original_cursor = conn.cursor

            def cursor() -> Any:
                cur = original_cursor()
                execute = cur.execute

                def fail_at_write(sql: str, *args: Any, **kwargs: Any) -> Any:
                    if outer.error is not None and sql.startswith(("MERGE", "INSERT")):
                        error, outer.error = outer.error, None
                        raise error
                    return execute(sql, *args, **kwargs)

                cur.execute = fail_at_write
                return cur

            conn.cursor = cursor
            try:
                return real(self, conn, chunks, rows, attempt)
            finally:
                conn.cursor = original_cursor

        monkeypatch.setattr(load.TableLoad, "load", faulty)


def test_a_transient_fault_mid_batch_is_redone_and_the_table_ends_exact(
    wh: Warehouse, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(sinks, "RECONNECT_POLICY", RetryPolicy(max_attempts=5, base_delay=0.01, max_delay=0.05))
    wh.run(
        [
            schema_msg("r", {"id": {"type": "integer"}, "v": {"type": "string"}}, ["id"]),
            record_msg("r", {"id": 1, "v": "a"}),
        ]
    )
    fault = _FaultOnce(monkeypatch, errors.OperationalError(msg="connection reset by peer", errno=250003))
    messages = [
        schema_msg("r", {"id": {"type": "integer"}, "v": {"type": "string"}}, ["id"]),
        record_msg("r", {"id": 1, "v": "b"}),
        record_msg("r", {"id": 2, "v": "c"}),
        state_msg({"pos": 2}),
    ]
    result = wh.run(messages)
    assert fault.loads == 2  # rolled back, then redone from the kept rows on a new connection
    assert "reconnecting and redoing the batch" in caplog.text
    assert result.states == [{"pos": 2}]
    assert wh.rows("r", ["id", "v"]) == [(1, "b"), (2, "c")]


def test_a_value_snowflake_refuses_names_stream_input_line_and_property(wh: Warehouse) -> None:
    """COPY's row is the record's place in the batch file; a value holding newlines spans lines, not rows."""
    props = {
        "id": {"type": "integer"},
        "note": {"type": ["string", "null"]},
        "meta": {"type": ["object", "null"], "properties": {"born": {"type": ["string", "null"], "format": "date"}}},
    }
    messages = [
        schema_msg("people", props, ["id"]),
        record_msg("people", {"id": 1, "note": "two\nlines\r\nand more", "meta": {"born": "2024-01-02"}}),
        record_msg("people", {"id": 2, "note": "x\ty"}),
        record_msg("people", {"id": 3, "meta": {"born": "2024-13-45"}}),  # input line 4: no such date
        record_msg("people", {"id": 4}),
    ]
    with pytest.raises(TargetLoadError) as info:
        wh.run(messages, validate_records=False)  # the value goes to Snowflake as it is
    assert str(info.value) == (
        "stream 'people', input line 4, property 'meta.born' (column META__BORN): loading the batch failed: "
        "100040: Date '…' is not recognized (the batch of input lines 2-5; nothing was committed)"
    )
    assert wh.count("people") == 0


def test_connections_stay_bounded_whatever_the_number_of_streams(wh: Warehouse) -> None:
    messages: list[Any] = []
    for i in range(6):
        messages += [schema_msg(f"s{i}", {"id": {"type": "integer"}}, ["id"]), record_msg(f"s{i}", {"id": i})]
    target = wh.target(max_connections=2, batch_size_rows=1)
    peaks: list[int] = []
    real_acquire = target.pool.acquire
    lock = threading.Lock()

    def acquire() -> Any:
        pooled = real_acquire()
        with lock:
            peaks.append(target.pool.peak)
        return pooled

    target.pool.acquire = acquire  # type: ignore[method-assign]
    import io  # noqa: PLC0415

    from st_helpers import lines_of  # noqa: PLC0415

    target.listen(io.StringIO(lines_of(messages)))
    assert max(peaks) <= 2
    assert len(wh.tables()) == 6


def test_a_value_over_16_mb_names_stream_line_and_property(wh: Warehouse) -> None:
    messages = [
        schema_msg("big", {"id": {"type": "integer"}, "blob": {"type": "string"}}, ["id"]),
        record_msg("big", {"id": 1, "blob": "ok"}),
        record_msg("big", {"id": 2, "blob": "x" * (16 * 1024 * 1024 + 1)}),
    ]
    with pytest.raises(RecordTypeError, match=r"stream 'big', input line 3: property 'blob' holds 16,777,217 bytes"):
        wh.run(messages)
    assert wh.count("big") == 0


def test_activate_version_with_record_metadata_uses_the_metadata_columns(wh: Warehouse) -> None:
    wh.run(_versioned(1, [1, 2]), add_record_metadata=True)
    wh.run(_versioned(2, [2]), add_record_metadata=True)
    assert wh.rows("full", ["id", "_sdc_table_version"]) == [(1, 1), (2, 2)]
    assert wh.count("full", '"_SDC_DELETED_AT" IS NOT NULL AND "ID" = 1') == 1
    assert wh.count("full", '"_SDC_DELETED_AT" IS NULL AND "ID" = 2') == 1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"private_key": "x"}, "set exactly one of `password`, `private_key` or `private_key_path`"),
        ({"database": None}, "`database` is not set"),
        ({"timestamp_type": "TIMESTAMP_LTZ"}, "timestamp_type"),
        ({"max_connections": 0}, "`max_connections` must be at least 1"),
        ({"stage": "~"}, "`stage` must name an internal stage"),
    ],
)
def test_settings_errors_stop_at_start_up(wh: Warehouse, overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigValidationError) as info:
        wh.target(**overrides)
    assert message in " ".join(str(e) for e in info.value.errors) + str(info.value)
    assert "snow-secret-password" not in str(info.value)


def test_a_property_declared_only_null_is_a_varchar_that_a_later_schema_types(wh: Warehouse) -> None:
    """`{"type": "null"}`: a VARCHAR whose comment records the null kind, so any later type widens it (null -> any)."""
    v1 = {"id": {"type": "integer"}, "z": {"type": "null"}, "y": {"type": ["null"]}}
    wh.run([schema_msg("nul", v1, ["id"]), record_msg("nul", {"id": 1, "z": None})])
    assert wh.columns("nul") == {"ID": "NUMBER(38,0)", "Z": "TEXT", "Y": "TEXT", "__LOADED_AT": "TIMESTAMP_TZ"}
    v2 = {"id": {"type": "integer"}, "z": {"type": "integer"}, "y": {"type": "string"}}
    wh.run([schema_msg("nul", v2, ["id"]), record_msg("nul", {"id": 2, "z": 5, "y": "s"})])
    assert wh.columns("nul") == {"ID": "NUMBER(38,0)", "Z": "NUMBER(38,0)", "Y": "TEXT", "__LOADED_AT": "TIMESTAMP_TZ"}
    assert wh.rows("nul", ["id", "z", "y"]) == [(1, None, None), (2, 5, "s")]
    comments = dict(
        wh.query(
            "SELECT column_name, comment FROM information_schema.columns "
            f"WHERE table_schema = '{wh.schema.upper()}' AND table_name = 'NUL'"
        )
    )
    assert (comments["Z"], comments["Y"]) == ('["z"]', '["y"]')  # no longer null-only
