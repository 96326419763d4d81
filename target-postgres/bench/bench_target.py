"""Throughput and memory of target-postgres against raw COPY and peer targets, in one run, on one server.

Run through `nox -s bench` (it installs the peers in their own virtual environments and passes their paths), or by
hand: `python target-postgres/bench/bench_target.py --rows 1000000 --peer-rows 200000`.

The stream is deterministic: 12 mixed columns with an integer key. The upsert variant repeats 30 % of keys; two more
upsert variants key the same rows by a text column (ascending codes) and by a composite (text, integer) key whose
integer part grows (the key watermark applies to both, as to the integer key).
Figures: rows/s (wall clock of the whole process, start-up included; raw COPY and our target: the median of
`--repeat` runs, each on a fresh table) and peak RSS (from wait4 of that process).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg2

from harborline_singer_shared.testing.postgres import PostgresServer

SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "email": {"type": ["string", "null"]},
        "amount": {"type": "number"},
        "quantity": {"type": "integer"},
        "active": {"type": "boolean"},
        "created_at": {"type": "string", "format": "date-time"},
        "birthday": {"type": ["string", "null"], "format": "date"},
        "score": {"type": ["number", "null"]},
        "category": {"type": "string"},
        "notes": {"type": ["string", "null"]},
        "region": {"type": "string"},
    },
}
COLUMNS = list(SCHEMA["properties"])
#: The columns the text- and composite-keyed variants add (raw COPY of those variants loads them too).
EXTRA = ["sku", "tenant", "local_id"]
CATEGORIES = ["hardware", "software", "services", "training", "support"]
REGIONS = ["EMEA", "AMER", "APAC"]


#: Key shapes of the upsert variants: the integer `id` (the key watermark applies), a text key, a composite key.
KEYS: dict[str, list[str]] = {"integer": ["id"], "text": ["sku"], "composite": ["tenant", "local_id"]}


def generate(path: Path, csv_path: Path, rows: int, *, upsert: bool, seed: int = 7, key_shape: str = "integer") -> int:
    """Write the Singer stream and the same rows as CSV (for raw COPY); returns the number of distinct keys.

    `key_shape` "text" adds a `sku` string key, "composite" a (`tenant`, `local_id`) key (both add all three
    columns, to the CSV as well: raw COPY of the same 15 columns is their yardstick).
    """
    schema = SCHEMA
    if key_shape != "integer":
        extra = {"sku": {"type": "string"}, "tenant": {"type": "string"}, "local_id": {"type": "integer"}}
        schema = {**SCHEMA, "properties": {**SCHEMA["properties"], **extra}}
    csv_columns = COLUMNS + (EXTRA if key_shape != "integer" else [])
    rng = random.Random(seed)
    base = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    next_id = 1
    with path.open("w") as out, csv_path.open("w", newline="") as cout:
        writer = csv.writer(cout)
        out.write(
            json.dumps({"type": "SCHEMA", "stream": "bench", "schema": schema, "key_properties": KEYS[key_shape]})
            + "\n"
        )
        for i in range(rows):
            if upsert and next_id > 1 and rng.random() < 0.3:
                key = rng.randrange(1, next_id)
            else:
                key = next_id
                next_id += 1
            rec = {
                "id": key,
                "name": f"Customer {key} {rng.choice(['Ltd', 'GmbH', 'Inc', 'SA'])}",
                "email": f"user{key}@example.com" if i % 10 else None,
                "amount": round(rng.uniform(0, 100000), 2),
                "quantity": rng.randrange(0, 1000),
                "active": i % 3 == 0,
                "created_at": (base + datetime.timedelta(seconds=i * 7)).isoformat(),
                "birthday": f"19{rng.randrange(50, 99)}-0{rng.randrange(1, 9)}-1{rng.randrange(0, 9)}"
                if i % 4
                else None,
                "score": rng.random() if i % 5 else None,
                "category": rng.choice(CATEGORIES),
                "notes": "tab\there, newline\nthere" if i % 50 == 0 else "plain note",
                "region": rng.choice(REGIONS),
            }
            if key_shape != "integer":
                rec.update(sku=f"SKU-{key:09d}", tenant=f"t{key % 7}", local_id=key // 7)
            out.write(json.dumps({"type": "RECORD", "stream": "bench", "record": rec}) + "\n")
            writer.writerow(["" if rec[c] is None else rec[c] for c in csv_columns])
            if i % 50_000 == 0 and i:
                out.write(json.dumps({"type": "STATE", "value": {"bookmarks": {"bench": i}}}) + "\n")
        out.write(json.dumps({"type": "STATE", "value": {"bookmarks": {"bench": rows}}}) + "\n")
    return next_id - 1


def prefix(src: Path, dst: Path, rows: int) -> None:
    """The first `rows` records of a stream file (for peers that would take too long on all of them)."""
    with src.open() as fin, dst.open("w") as out:
        n = 0
        for line in fin:
            if '"RECORD"' in line[:30]:
                if n >= rows:
                    continue
                n += 1
            out.write(line)


def settle(conn_kwargs: dict) -> None:
    """Start every measured load from the same state: nothing left to write from the previous load or the generator.

    Without it a load pays for the checkpoint its predecessor's writes trigger and for the kernel flushing the
    just-generated input files (hundreds of MB) while it runs.
    """
    os.sync()
    with psycopg2.connect(**conn_kwargs) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CHECKPOINT")


def run_measured(argv: list[str], stdin_path: Path, env: dict[str, str] | None = None) -> tuple[float, float, int]:
    """(seconds, peak RSS MB, exit code) of one process fed from a file."""
    with stdin_path.open("rb") as fin:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=fin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        assert proc.stderr is not None
        err = proc.stderr.read()
        _pid, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        print(err.decode(errors="replace")[-2000:], file=sys.stderr)
    return seconds, usage.ru_maxrss / 1024, proc.returncode


def count(conn_kwargs: dict, schema: str, table: str = "bench") -> int:
    with psycopg2.connect(**conn_kwargs) as conn, conn.cursor() as cur:
        cur.execute(f'SELECT count(*) FROM "{schema}"."{table}"')
        return int(cur.fetchone()[0])


def drop_schema(conn_kwargs: dict, schema: str) -> None:
    with psycopg2.connect(**conn_kwargs) as conn, conn.cursor() as cur:
        cur.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


#: Raw COPY of the text/composite variants' 15 columns (their rows are wider than the 12-column stream's).
RAW_15 = "raw COPY (psql \\copy, CSV, 15 columns)"


def raw_copy(conn_kwargs: dict, csv_path: Path, rows: int, *, extra: bool = False) -> float:
    """The physical limit: psql \\copy of the same rows from CSV (psycopg2 copy_expert when psql is absent)."""
    ddl = (
        "CREATE TABLE raw.bench (id bigint, name text, email text, amount numeric, quantity bigint, active boolean, "
        "created_at timestamptz, birthday date, score numeric, category text, notes text, region text"
        + (", sku text, tenant text, local_id bigint)" if extra else ")")
    )
    with psycopg2.connect(**conn_kwargs) as conn, conn.cursor() as cur:
        cur.execute("DROP SCHEMA IF EXISTS raw CASCADE; CREATE SCHEMA raw")
        cur.execute(ddl)
    settle(conn_kwargs)
    psql = shutil.which("psql")
    started = time.perf_counter()
    if psql:
        dsn = " ".join(f"{k}={v}" for k, v in conn_kwargs.items() if k in {"host", "port", "user", "dbname"})
        subprocess.run(
            [psql, dsn, "-q", "-c", f"\\copy raw.bench FROM '{csv_path}' WITH (FORMAT csv)"],
            check=True,
        )
    else:
        with psycopg2.connect(**conn_kwargs) as conn, conn.cursor() as cur, csv_path.open() as fh:
            cur.copy_expert("COPY raw.bench FROM STDIN WITH (FORMAT csv)", fh)
    seconds = time.perf_counter() - started
    assert count(conn_kwargs, "raw") == rows
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--peer-rows", type=int, default=200_000)
    parser.add_argument("--flat-rows", type=int, default=0, help="also load this many rows (e.g. 5000000) for RSS")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs of raw COPY and of our target on the full stream; the median is reported (this VM's speed varies "
        "by 20-30 %% between runs). Peers run once.",
    )
    parser.add_argument("--target", default=shutil.which("target-postgres") or "target-postgres")
    parser.add_argument("--meltanolabs", help="path to meltanolabs target-postgres executable")
    parser.add_argument("--pipelinewise", help="path to pipelinewise target-postgres executable")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-target-"))
    results: list[tuple[str, int, float, float]] = []
    spread: dict[str, list[float]] = {}
    with PostgresServer() as pg:
        kw = pg.connect_kwargs()
        with psycopg2.connect(**kw) as conn, conn.cursor() as cur:
            cur.execute("ALTER ROLE CURRENT_USER PASSWORD 'bench-not-secret'")  # pipelinewise insists on one

        def config(schema: str, **extra: object) -> Path:
            cfg = {
                "host": kw.get("host"),
                "port": kw.get("port"),
                "user": kw.get("user"),
                "password": "bench-not-secret",
                "database": kw.get("dbname"),
                "dbname": kw.get("dbname"),
                "default_target_schema": schema,
                **extra,
            }
            path = work / f"{schema}.json"
            path.write_text(json.dumps(cfg))
            return path

        def ours(label: str, stream: Path, rows: int, expect: int, schema: str, load_method: str) -> None:  # noqa: PLR0917
            cfg = config(schema, load_method=load_method)
            runs: list[tuple[float, float]] = []
            ok = True
            for _ in range(args.repeat if rows == args.rows else 1):
                drop_schema(kw, schema)
                settle(kw)
                secs, rss, rc = run_measured([args.target, "--config", str(cfg)], stream)
                ok = ok and rc == 0 and count(kw, schema) == expect
                runs.append((secs, rss))
            secs = statistics.median(r[0] for r in runs)
            spread[label] = [r[0] for r in runs]
            results.append((label + ("" if ok else " (FAILED)"), rows, secs, max(r[1] for r in runs)))

        for upsert in (False, True):
            kind = "upsert" if upsert else "append"
            stream, csv_path = work / f"{kind}.singer", work / f"{kind}.csv"
            keys = generate(stream, csv_path, args.rows, upsert=upsert)
            if not upsert:
                raw_runs = [raw_copy(kw, csv_path, args.rows) for _ in range(args.repeat)]
                spread["raw COPY (psql \\copy, CSV)"] = raw_runs
                results.append(("raw COPY (psql \\copy, CSV)", args.rows, statistics.median(raw_runs), 0.0))
            load = "upsert" if upsert else "append-only"
            expect = keys if upsert else args.rows
            ours(f"target-postgres ({kind})", stream, args.rows, expect, f"ours_{kind}", load)
            peer_stream = work / f"{kind}-peer.singer"
            prefix(stream, peer_stream, args.peer_rows)
            if not upsert:
                peer_expect = args.peer_rows
            else:
                seen = set()
                with peer_stream.open() as fh:
                    for line in fh:
                        if '"RECORD"' in line[:30]:
                            seen.add(json.loads(line)["record"]["id"])
                peer_expect = len(seen)
            peers = []
            if args.meltanolabs:
                peers += [
                    ("meltanolabs (default)", args.meltanolabs, {}),
                    ("meltanolabs (use_copy)", args.meltanolabs, {"use_copy": True}),
                ]
            if args.pipelinewise:
                peers.append(("pipelinewise", args.pipelinewise, {}))
            for label, exe, extra in peers:
                pschema = f"{label.split()[0]}_{kind}_{len(results)}"
                cfg = config(pschema, **extra)
                settle(kw)
                secs, rss, rc = run_measured([exe, "--config", str(cfg)], peer_stream)
                try:
                    ok = rc == 0 and count(kw, pschema) == peer_expect
                except psycopg2.Error:
                    ok = False
                results.append((f"{label} ({kind})" + ("" if ok else " (FAILED)"), args.peer_rows, secs, rss))
        for shape in ("text", "composite"):
            stream, csv_path = work / f"upsert-{shape}.singer", work / f"upsert-{shape}.csv"
            keys = generate(stream, csv_path, args.rows, upsert=True, key_shape=shape)
            if shape == "text":  # the CSV of both shapes holds the same 15 columns
                raw_runs = [raw_copy(kw, csv_path, args.rows, extra=True) for _ in range(args.repeat)]
                spread[RAW_15] = raw_runs
                results.append((RAW_15, args.rows, statistics.median(raw_runs), 0.0))
            ours(f"target-postgres (upsert, {shape} key)", stream, args.rows, keys, f"ours_{shape}", "upsert")
        if args.flat_rows:
            stream, csv_path = work / "flat.singer", work / "flat.csv"
            generate(stream, csv_path, args.flat_rows, upsert=False)
            ours(
                "target-postgres (append, RSS check)",
                stream,
                args.flat_rows,
                args.flat_rows,
                "ours_flat",
                "append-only",
            )

    shutil.rmtree(work, ignore_errors=True)
    raw_rate = next(r / s for label, r, s, _ in results if label.startswith("raw COPY"))
    raw_15 = next((r / s for label, r, s, _ in results if label == RAW_15), None)
    ml = {k: r / s for k, r, s, _ in results if k.startswith("meltanolabs (default)")}
    print()
    print(f"{'load':45} {'rows':>9} {'seconds':>8} {'rows/s':>9} {'peak RSS MB':>12} {'vs raw COPY':>12}  runs (s)")
    for label, rows, secs, rss in results:
        rate = rows / secs
        runs = " ".join(f"{x:.2f}" for x in spread.get(label.removesuffix(" (FAILED)"), []))
        own = f" ({rate / raw_15:.0%} of 15-column raw COPY)" if raw_15 and ("key)" in label or label == RAW_15) else ""
        print(f"{label:45} {rows:>9} {secs:>8.2f} {rate:>9.0f} {rss:>12.0f} {rate / raw_rate:>11.0%}  {runs}{own}")
    for kind in ("append", "upsert"):
        mine = [r / s for k, r, s, _ in results if k == f"target-postgres ({kind})"]
        base = [v for k, v in ml.items() if k.endswith(f"({kind})")]
        if mine and base:
            print(f"target-postgres ({kind}) vs meltanolabs default: {mine[0] / base[0]:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
