"""The warehouse loader both targets run on, independent of any SQL dialect.

- `reader`: the input loop (msgspec, input line numbers in every error, the typed fast path's hooks);
- `rows` / `structs`: records to delimited text rows (dict path and typed msgspec path), generated per SCHEMA;
- `sink.WarehouseSink`: the record path and batch bookkeeping of one stream;
- `target.WarehouseTarget`: message handling, routing, STATE, ACTIVATE_VERSION, the settings every warehouse has;
- `state.StateEmitter`: STATE only after every batch before it committed, never backwards;
- `errors`, `logs`: one-line errors, log lines safe from control characters.

A dialect (target-postgres, target-snowflake) supplies connections, DDL from a `rules.TablePlan`, and how a batch
is sent and committed (append, merge, overwrite swap).
"""
