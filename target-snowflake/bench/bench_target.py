"""target-snowflake into the fakesnow emulator, beside target-postgres on the same stream, in one run.

Run through `nox -s bench`, or by hand: `python target-snowflake/bench/bench_target.py --rows 1000000`.

The stream is target-postgres' bench stream (`generate()` there: 12 mixed columns, integer key, the upsert variant
repeats 30 % of keys). Each load is the real CLI as a subprocess; wall clock (start-up included) and peak RSS (wait4).
target-postgres and the Python-side runs alternate `--repeat` times (default 3) and their medians are compared: one
run of each moved by 20-30 % between runs on the shared 2-core VM.

- end-to-end: target-snowflake into fakesnow (server mode, in this process). The emulator's speed is reported only.
- Python-side: the same CLI and the same stream, but `TableLoad.load` stops once the batch's gzip file is written
  (re-encoding and compression included); PUT, TRUNCATE, COPY, BEGIN, MERGE/INSERT, COMMIT are skipped. Everything
  else runs as in production (connect, DDL, the shared loader, the commit thread, STATE). This is records in ->
  files ready to PUT, compared with target-postgres end-to-end (its COPY into PostgreSQL included: the comparison
  is, if anything, against us).
- statements per batch: a 10-column and a 200-column stream through the real CLI into fakesnow, every statement the
  connector executes recorded (SnowflakeCursor.execute wrapped in the target process); those run inside each
  `TableLoad.load` are one batch's statements.
- peak RSS: of each run, and of a longer Python-side run (`--flat-rows`) to show it does not grow with the input.
"""

from __future__ import annotations

import argparse
import atexit
import collections
import importlib.util
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


# -- inside the target process (`--child MODE`) ------------------------------------------------------------------


def child(mode: str, argv: list[str]) -> None:
    """Run the target CLI with `TableLoad.load` changed for the measurement, then exit as the CLI does."""
    from harborline_target_snowflake import load as load_mod  # noqa: PLC0415
    from harborline_target_snowflake.target import TargetSnowflake  # noqa: PLC0415

    if mode == "noop":

        def files_only(self: Any, conn: Any, chunks: Any, rows: int | None = None, attempt: Any = None) -> Any:  # noqa: ARG001
            path = self.workdir / f"batch_{uuid.uuid4().hex}.csv.gz"
            try:
                load_mod.write_batch_file(chunks, path)
            finally:
                path.unlink(missing_ok=True)
            return load_mod.LoadResult(rows=rows or 0)

        load_mod.TableLoad.load = files_only  # type: ignore[method-assign]
    elif mode == "count":
        from snowflake.connector.cursor import SnowflakeCursor  # noqa: PLC0415

        log: list[dict[str, Any]] = []
        local = threading.local()
        execute, load = SnowflakeCursor.execute, load_mod.TableLoad.load

        def counted_execute(self: Any, command: str, *args: Any, **kwargs: Any) -> Any:
            batch = getattr(local, "batch", None)
            if batch is not None:
                batch.append(command.split(None, 1)[0].upper())
            else:
                log.append({"outside": command.split(None, 1)[0].upper()})
            return execute(self, command, *args, **kwargs)

        def counted_load(self: Any, conn: Any, chunks: Any, rows: int | None = None, attempt: Any = None) -> Any:
            local.batch = []
            try:
                return load(self, conn, chunks, rows, attempt)
            finally:
                log.append({"batch": local.batch, "rows": rows})
                local.batch = None

        SnowflakeCursor.execute = counted_execute  # type: ignore[method-assign]
        load_mod.TableLoad.load = counted_load  # type: ignore[method-assign]
        out = Path(os.environ["BENCH_STATEMENT_LOG"])
        atexit.register(lambda: out.write_text(json.dumps(log)))
    sys.argv = ["target-snowflake", *argv]
    TargetSnowflake.cli()


# -- the bench ---------------------------------------------------------------------------------------------------


#: Runs one process and reports its wall clock and peak RSS. A small launcher: on Linux a child's peak RSS starts
#: at its parent's (kept across fork and exec), and this process hosts the emulator.
LAUNCHER = """
import json, os, subprocess, sys, time
started = time.perf_counter()
proc = subprocess.Popen(sys.argv[2:], stdout=subprocess.DEVNULL)
_pid, status, usage = os.wait4(proc.pid, 0)
seconds = time.perf_counter() - started
code = os.waitstatus_to_exitcode(status)
open(sys.argv[1], "w").write(json.dumps([seconds, usage.ru_maxrss / 1024, code]))
"""


def run_measured(argv: list[str], stdin_path: Path, env: dict[str, str]) -> tuple[float, float, int]:
    """(seconds, peak RSS MB, exit code) of one process fed from a file (launched by `LAUNCHER`)."""
    report = stdin_path.with_suffix(".measured.json")
    with stdin_path.open("rb") as fin:
        proc = subprocess.run(
            [sys.executable, "-c", LAUNCHER, str(report), *argv],
            stdin=fin,
            stderr=subprocess.PIPE,
            env=env,
            check=False,
        )
    seconds, rss, code = json.loads(report.read_text())
    report.unlink()
    if code != 0 or proc.returncode != 0:
        print(proc.stderr.decode(errors="replace")[-2000:], file=sys.stderr)
    return seconds, rss, code


def wide_stream(path: Path, columns: int, rows: int) -> None:
    """A keyed stream of `columns` columns (mixed types; 30 % repeated keys) for counting statements."""
    kinds = [
        {"type": ["string", "null"]},
        {"type": ["number", "null"]},
        {"type": ["integer", "null"]},
        {"type": ["boolean", "null"]},
        {"type": ["string", "null"], "format": "date-time"},
    ]
    props = {"id": {"type": "integer"}} | {f"c{i:03d}": kinds[i % len(kinds)] for i in range(1, columns)}
    values = ["text", 1.25, 42, True, "2024-05-01T12:00:00+00:00"]
    rng = random.Random(columns)
    with path.open("w") as out:
        schema = {"type": "SCHEMA", "stream": "wide", "schema": {"properties": props}, "key_properties": ["id"]}
        out.write(json.dumps(schema) + "\n")
        for i in range(rows):
            key = rng.randrange(1, i + 1) if i and rng.random() < 0.3 else i + 1
            rec = {"id": key} | {f"c{c:03d}": values[c % len(values)] for c in range(1, columns)}
            out.write(json.dumps({"type": "RECORD", "stream": "wide", "record": rec}) + "\n")
        out.write(json.dumps({"type": "STATE", "value": {"bookmarks": {"wide": rows}}}) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--flat-rows", type=int, default=3_000_000, help="a longer Python-side run for RSS (0: none)")
    parser.add_argument("--count-rows", type=int, default=5_000, help="rows of the 10/200-column streams")
    parser.add_argument("--count-batch", type=int, default=1_000, help="batch_size_rows of the 10/200-column runs")
    parser.add_argument("--no-emulator", action="store_true", help="skip the end-to-end runs into fakesnow")
    parser.add_argument(
        "--repeat", type=int, default=3, help="target-postgres and Python-side runs, alternated; medians compared"
    )
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT / "target-snowflake" / "tests"))
    spec = importlib.util.spec_from_file_location("pg_bench", ROOT / "target-postgres" / "bench" / "bench_target.py")
    assert spec
    assert spec.loader
    pg_bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pg_bench)
    generate = pg_bench.generate  # target-postgres' stream
    import psycopg2  # noqa: PLC0415
    import sf_server  # noqa: PLC0415 - starts fakesnow with the test suite's shims
    from sf_helpers import TEST_TIMEOUTS, session_parameters_for_tests  # noqa: PLC0415
    from st_helpers import cli_env  # noqa: PLC0415

    from harborline_singer_shared.testing.postgres import PostgresServer  # noqa: PLC0415
    from harborline_target_snowflake import connector  # noqa: PLC0415

    work = Path(tempfile.mkdtemp(prefix="bench-snowflake-"))
    settings = sf_server.settings()
    env = cli_env()
    target = [sys.executable, "-m", "harborline_target_snowflake"]
    this = [sys.executable, str(Path(__file__).resolve()), "--child"]
    results: list[tuple[str, int, float, float, bool]] = []
    conn = connector.connect(settings, session_parameters=session_parameters_for_tests(settings), **TEST_TIMEOUTS)

    def sf_config(schema: str, **extra: Any) -> Path:
        path = work / f"sf-{schema}.json"
        path.write_text(json.dumps({**settings, "default_target_schema": schema, **extra}))
        return path

    def sf_count(schema: str, table: str) -> int:
        cur = conn.cursor()
        cur.execute(f'SELECT count(*) FROM "{schema.upper()}"."{table.upper()}"')
        return int(cur.fetchone()[0])

    runs = 0

    def sf(argv: list[str], stream: Path, expect: int | None, **extra: Any) -> tuple[float, float, bool]:
        nonlocal runs
        runs += 1
        schema = f"bench_{runs}"
        os.sync()
        secs, rss, rc = run_measured([*argv, "--config", str(sf_config(schema, **extra))], stream, env)
        return secs, rss, rc == 0 and (expect is None or sf_count(schema, "bench") == expect)

    def median(label: str, rows: int, measured: list[tuple[float, float, bool]]) -> None:
        """One result line: the median wall clock of the runs, the largest peak RSS, all of them correct."""
        secs = statistics.median(m[0] for m in measured)
        results.append((label, rows, secs, max(m[1] for m in measured), all(m[2] for m in measured)))

    with PostgresServer() as pg:
        kw = pg.connect_kwargs()
        for kind in ("append", "upsert"):
            stream = work / f"{kind}.singer"
            keys = generate(stream, work / f"{kind}.csv", args.rows, upsert=kind == "upsert")
            (work / f"{kind}.csv").unlink()
            expect = keys if kind == "upsert" else args.rows
            method = "upsert" if kind == "upsert" else "append-only"
            cfg = {k: kw.get(k) for k in ("host", "port", "user")} | {"database": kw.get("dbname")}
            pg_cfg = work / f"pg-{kind}.json"
            pg_cfg.write_text(json.dumps(cfg | {"default_target_schema": f"postgres_{kind}", "load_method": method}))
            pg_exe = shutil.which("target-postgres") or "target-postgres"
            pg_runs, py_runs = [], []
            # Alternated, so both see the same moments of a noisy machine; each PostgreSQL run on a fresh table.
            for _ in range(args.repeat):
                with psycopg2.connect(**kw) as pconn, pconn.cursor() as cur:
                    cur.execute(f'DROP SCHEMA IF EXISTS "postgres_{kind}" CASCADE')
                os.sync()
                secs, rss, rc = run_measured([pg_exe, "--config", str(pg_cfg)], stream, env)
                with psycopg2.connect(**kw) as pconn, pconn.cursor() as cur:
                    cur.execute(f'SELECT count(*) FROM "postgres_{kind}"."bench"')
                    pg_runs.append((secs, rss, rc == 0 and cur.fetchone()[0] == expect))
                py_runs.append(sf([*this, "noop"], stream, None, load_method=method))
            median(f"target-postgres ({kind})", args.rows, pg_runs)
            median(f"target-snowflake Python-side ({kind})", args.rows, py_runs)
            if not args.no_emulator:
                fake = sf(target, stream, expect, load_method=method)
                median(f"target-snowflake into fakesnow ({kind})", args.rows, [fake])
            stream.unlink()
    if args.flat_rows:
        stream = work / "flat.singer"
        generate(stream, work / "flat.csv", args.flat_rows, upsert=False)
        (work / "flat.csv").unlink()
        median("target-snowflake Python-side (append, RSS)", args.flat_rows, [sf([*this, "noop"], stream, None)])
        stream.unlink()

    per_batch: dict[int, tuple[collections.Counter[int], int, int]] = {}
    for columns in (10, 200):
        stream = work / f"wide{columns}.singer"
        wide_stream(stream, columns, args.count_rows)
        log = work / f"statements{columns}.json"
        schema = f"wide_{columns}"
        cfg = sf_config(schema, load_method="upsert", batch_size_rows=args.count_batch)
        _secs, _rss, rc = run_measured(
            [*this, "count", "--config", str(cfg)], stream, env | {"BENCH_STATEMENT_LOG": str(log)}
        )
        entries = json.loads(log.read_text()) if rc == 0 else []
        batches = collections.Counter(len(e["batch"]) for e in entries if "batch" in e)
        outside = sum(1 for e in entries if "outside" in e)
        per_batch[columns] = (batches, outside, rc)
    conn.close()
    shutil.rmtree(work, ignore_errors=True)

    print()
    print(f"median of {args.repeat} alternated runs for target-postgres and Python-side; one run for the others")
    print(f"{'load':48} {'rows':>9} {'seconds':>8} {'rows/s':>9} {'peak RSS MB':>12}")
    for label, rows, secs, rss, ok in results:
        print(f"{label + ('' if ok else ' (FAILED)'):48} {rows:>9} {secs:>8.2f} {rows / secs:>9.0f} {rss:>12.0f}")
    rate = {label: rows / secs for label, rows, secs, _, _ in results}
    for kind in ("append", "upsert"):
        mine, base = rate.get(f"target-snowflake Python-side ({kind})"), rate.get(f"target-postgres ({kind})")
        if mine and base:
            print(f"target-snowflake Python-side ({kind}) vs target-postgres: {mine / base:.0%} (goal >= 80 %)")
    rss = [r for label, _, _, r, _ in results if label.startswith("target-snowflake")]
    print(f"target-snowflake peak RSS, largest of all runs: {max(rss):.0f} MB (goal < 300 MB)")
    for columns, (batches, outside, rc) in per_batch.items():
        shown = ", ".join(f"{n} statements x {b} batches" for n, b in sorted(batches.items()))
        print(
            f"statements per batch, {columns:>3} columns: {shown or 'FAILED rc=' + str(rc)} (+{outside} once per run)"
        )
    same = per_batch[10][0].keys() == per_batch[200][0].keys() and len(per_batch[10][0]) == 1
    print(f"statements per batch independent of the column count: {'yes' if same else 'NO'}")
    return 0 if all(ok for *_, ok in results) and same else 1


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3:])
    else:
        sys.exit(main())
