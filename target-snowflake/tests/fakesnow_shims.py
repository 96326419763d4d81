"""What Snowflake does and fakesnow 0.12.1 does not, patched into the in-process emulator so tests run the
production SQL unchanged. Each patch says which Snowflake behaviour it restores.

- CSV fields are read as text and converted to the column's type (fakesnow lets DuckDB sniff types, so `007`
  became 7 and empty timestamps 1970-01-01), and a quoted empty field is an empty string, not NULL.
- A CSV line may be longer than 2 MB (DuckDB's default limit; Snowflake takes a 16 MB VARCHAR value and more).
- MERGE works inside an explicit transaction (fakesnow runs it through a temporary table, which DuckDB refuses
  in a transaction that already wrote the database).
- `ALTER TABLE a SWAP WITH b` (fakesnow: syntax error), done here as three renames, table comments kept.
- A CSV file of more than 10 columns loads (DuckDB names them `column00`..., fakesnow asks for `column0`).
- `COMMENT ON COLUMN` answers normally (fakesnow applies it, then fails describing the statement).
- A column's inline `COMMENT '...'` in CREATE TABLE and ALTER TABLE ... ADD COLUMN is kept (fakesnow drops it):
  applied here as COMMENT ON COLUMN after the statement.
- ALTER COLUMN ... SET DATA TYPE is refused where Snowflake refuses it (another type, another scale, a shorter
  VARCHAR or less precision): fakesnow accepts any ALTER, so our planner's choices would go unchecked.

Snowflake's errors (COPY's detailed rejection message, and faults injected by tests) are in `fakesnow_errors`.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import fakesnow.copy_into
import fakesnow.transforms
import fakesnow_errors
import snowflake.connector.errors
import sqlglot
from fakesnow.cursor import FakeSnowflakeCursor
from fakesnow_errors import FAULTS
from sqlglot import exp

from harborline_target_snowflake.connector import literal

_SWAP = re.compile(r"\s*ALTER\s+TABLE\s+(\S+)\s+SWAP\s+WITH\s+(\S+)\s*;?\s*", re.IGNORECASE)
_SET_TYPE = re.compile(
    r"\s*ALTER\s+TABLE\s+(\S+)\s+ALTER\s+COLUMN\s+(\S+)\s+SET\s+DATA\s+TYPE\s+(.+?)\s*;?\s*", re.IGNORECASE
)
_CREATE_OR_ADD = re.compile(r"\s*(CREATE\b.*?\bTABLE\b|ALTER\s+TABLE\b.*?\bADD\b)", re.IGNORECASE | re.DOTALL)
_NUMBER = re.compile(r"NUMBER\((\d+),(\d+)\)", re.IGNORECASE)
_VARCHAR = re.compile(r"VARCHAR(?:\((\d+)\))?", re.IGNORECASE)
#: The longest CSV line the emulator reads (DuckDB's default is 2 MB): a few maximum-size VARCHAR values.
_MAX_CSV_LINE_BYTES = 128 * 1024 * 1024
_installed = False


def _unquote(name: str) -> str:
    return name[1:-1].replace('""', '"') if name.startswith('"') else name.upper()


def _parts(qualified: str) -> list[str]:
    return [_unquote(p) for p in re.findall(r'"(?:[^"]|"")*"|[^.]+', qualified)]


def _read_csv_as_text(original: Any) -> Any:
    def read_expression(self: Any, url: str) -> exp.Expr:
        expr = original(self, url)
        expr.append("expressions", self.make_eq("all_varchar", True))
        expr.append("expressions", self.make_eq("allow_quoted_nulls", False))
        expr.append("expressions", self.make_eq("max_line_size", _MAX_CSV_LINE_BYTES))
        return expr

    return read_expression


def _wide_csv_columns(original: Any) -> Any:
    def inserts(expr: exp.Copy, *args: Any, **kwargs: Any) -> list[exp.Expr]:
        out = original(expr, *args, **kwargs)
        width = len(str(len(expr.this.expressions) - 1))
        if width == 1:
            return out

        def pad(node: exp.Expr) -> exp.Expr:
            if isinstance(node, exp.Column) and (m := re.fullmatch(r"column(\d+)", node.name)):
                return exp.Column(this=exp.to_identifier(f"column{int(m.group(1)):0{width}d}"))
            return node

        return [i.transform(pad) for i in out]

    return inserts


def _merge_without_temp_table(original: Any) -> Any:
    def merge(expression: exp.Expr) -> list[exp.Expr]:
        parts = original(expression)
        if len(parts) == 1:
            return parts
        select = parts[0].expression  # CREATE TEMPORARY TABLE merge_candidates AS <select>

        def inline(node: exp.Expr) -> exp.Expr:
            if isinstance(node, exp.Table) and node.name.lower() == "merge_candidates":
                alias = node.args.get("alias") or exp.TableAlias(this=exp.to_identifier("merge_candidates"))
                return exp.Subquery(this=select.copy(), alias=alias)
            return node

        return [p.transform(inline) for p in parts[1:]]

    return merge


def _table_comment(cur: FakeSnowflakeCursor, schema: str, table: str) -> str | None:
    cur._duck_conn.execute(
        "SELECT comment FROM _fs_global._fs_information_schema._fs_tables_ext "
        "WHERE ext_table_schema = ? AND ext_table_name = ?",
        [schema, table],
    )
    row = cur._duck_conn.fetchone()
    return row[0] if row else None


def _inline_column_comments(cur: FakeSnowflakeCursor, original: Any, command: str) -> tuple[str, list[tuple[str, str]]]:
    """(table, [(column, comment)]) of a CREATE TABLE or ADD COLUMN whose column definitions carry comments.

    Nothing for a `CREATE TABLE IF NOT EXISTS` of a table that exists: Snowflake leaves it (and its comments) as
    they are.
    """
    if not _CREATE_OR_ADD.match(command) or "COMMENT" not in command.upper():
        return "", []
    tree = sqlglot.parse_one(command, read="snowflake")
    if isinstance(tree, exp.Create) and isinstance(tree.this, exp.Schema):
        table, defs = tree.this.this, tree.this.expressions
        if tree.args.get("exists"):
            original(
                cur,
                "SELECT COUNT(*) FROM information_schema.tables "
                f"WHERE table_schema = {literal(table.db)} AND table_name = {literal(table.name)}",
            )
            if cur.fetchone()[0]:
                return "", []
    elif isinstance(tree, exp.Alter):
        table, defs = tree.this, tree.args.get("actions") or []
    else:
        return "", []
    comments = [
        (str(d.this.sql("snowflake")), str(c.kind.this.name))
        for d in defs
        if isinstance(d, exp.ColumnDef)
        for c in d.constraints
        if isinstance(c.kind, exp.CommentColumnConstraint)
    ]
    return table.sql("snowflake"), comments


def _refuse_alter(cur: FakeSnowflakeCursor, original: Any, table: str, column: str, new_type: str) -> None:
    parts = _parts(table)
    original(
        cur,
        "SELECT data_type, character_maximum_length, numeric_precision, numeric_scale FROM information_schema.columns "
        f"WHERE table_schema = '{parts[-2]}' AND table_name = '{parts[-1]}' AND column_name = '{_unquote(column)}'",
    )
    row = cur.fetchone()
    if row is None:
        return
    data_type, length, precision, scale = row
    ok = False
    if data_type == "TEXT" and (m := _VARCHAR.fullmatch(new_type)):
        ok = m.group(1) is None or int(m.group(1)) >= (length or 0)
    elif data_type == "NUMBER" and (m := _NUMBER.fullmatch(new_type)):
        ok = int(m.group(2)) == (scale or 0) and int(m.group(1)) >= (precision or 0)
    if not ok:
        raise snowflake.connector.errors.ProgrammingError(
            msg=f"SQL compilation error: cannot change column {_unquote(column)} from type {data_type} to {new_type}",
            errno=2108,
            sqlstate="0A000",
        )


def _execute(original: Any) -> Any:
    def execute(self: FakeSnowflakeCursor, command: str, *args: Any, **kwargs: Any) -> FakeSnowflakeCursor:
        FAULTS.check(command)
        if m := _SWAP.fullmatch(command):
            a, b = _parts(m.group(1)), _parts(m.group(2))
            comments = {tuple(p): _table_comment(self, p[-2], p[-1]) for p in (a, b)}
            q = lambda p: ".".join('"' + x.replace('"', '""') + '"' for x in p)  # noqa: E731
            tmp = [*a[:-1], "HL_SWAP_TMP"]
            original(self, f"ALTER TABLE {q(a)} RENAME TO {q(tmp)}")
            original(self, f"ALTER TABLE {q(b)} RENAME TO {q(a)}")
            original(self, f"ALTER TABLE {q(tmp)} RENAME TO {q(b)}")
            for now, was in ((a, b), (b, a)):
                if (text := comments[tuple(was)]) is not None:
                    original(self, f"COMMENT ON TABLE {q(now)} IS '" + text.replace("'", "''") + "'")
            return original(self, "SELECT 'Statement executed successfully.' AS \"status\"", **kwargs)
        if m := _SET_TYPE.fullmatch(command):
            _refuse_alter(self, original, m.group(1), m.group(2), m.group(3))
        table, column_comments = _inline_column_comments(self, original, command)
        if column_comments:  # (quiet: sqlglot warns that DuckDB has no column comments; they are applied below)
            sqlglot_log = logging.getLogger("sqlglot")
            level = sqlglot_log.level
            sqlglot_log.setLevel(logging.ERROR)
            try:
                result = original(self, command, *args, **kwargs)
            finally:
                sqlglot_log.setLevel(level)
        else:
            result = original(self, command, *args, **kwargs)
        for column, text in column_comments:
            with self._conn.cursor() as cur:
                original(cur, f"COMMENT ON COLUMN {table}.{column} IS {literal(text)}")
        FAULTS.check(command, after=True)
        return result

    return execute


def _describe(original: Any) -> Any:
    def describe_last_sql(self: FakeSnowflakeCursor) -> list:
        try:
            return original(self)
        except Exception:
            if not re.match(r"\s*COMMENT\b", self._last_sql or "", re.IGNORECASE):
                raise
            with self._conn.cursor() as cur:
                cur._execute(sqlglot.parse_one("DESCRIBE SELECT 'ok' AS status", read="duckdb"))
                return cur.fetchall()

    return describe_last_sql


def install() -> None:
    """Patch the emulator (idempotent); call before the server handles a statement."""
    global _installed  # noqa: PLW0603 - patch once per process
    if _installed:
        return
    read_csv = fakesnow.copy_into.ReadCSV
    read_csv.read_expression = _read_csv_as_text(read_csv.read_expression)  # type: ignore[method-assign]
    fakesnow.copy_into._inserts = _wide_csv_columns(fakesnow.copy_into._inserts)
    fakesnow.transforms.merge = _merge_without_temp_table(fakesnow.transforms.merge)  # type: ignore[attr-defined]
    FakeSnowflakeCursor.execute = _execute(FakeSnowflakeCursor.execute)  # type: ignore[method-assign]
    FakeSnowflakeCursor._describe_last_sql = _describe(FakeSnowflakeCursor._describe_last_sql)  # type: ignore[method-assign]
    fakesnow_errors.install()
    _installed = True
