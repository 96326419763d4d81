"""Test helpers every tap's suite needs: run a sync in-process, check the docs, pipe into target-postgres.

Why here: these were copied from package to package and drifted (one copy gained ``states()``, another a
stricter meltano.yml check). One version, generic over the tap class, keeps every package to the strictest
checks; what really differs (a pinned "today", the tap's module, its personal-data fields) stays in the package
and comes in as an argument.

pytest and psycopg2 are imported only where needed: demos and benchmarks import this package without them.
"""

from __future__ import annotations

import contextlib
import difflib
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import yaml  # type: ignore[import-untyped]  # PyYAML (a singer-sdk dependency) ships no types

from harborline_singer_shared.retry import Clock, ManualClock
from harborline_singer_shared.testing.zygote import Zygote

if TYPE_CHECKING:
    import pytest
    from singer_sdk import Tap

    from harborline_singer_shared.testing.postgres import PostgresServer

__all__ = [
    "SDK_BUILTIN_SETTING_PREFIXES",
    "SyncResult",
    "about_settings_table",
    "assert_meltano_yml_declares_settings",
    "assert_readme_settings_match_about",
    "assert_root_meltano_yml_matches",
    "clear_developer_env",
    "meltano_extractor",
    "pipe_to_target_postgres",
    "query_rows",
    "readme_settings_table",
    "run_plugin_cli",
    "run_tap",
    "target_postgres_command",
    "target_postgres_config",
]

TapT = TypeVar("TapT", bound="Tap")

#: Settings the SDK appends to every tap (stream maps, flattening, batch): declaring them in meltano.yml is optional.
SDK_BUILTIN_SETTING_PREFIXES = ("stream_map", "faker_config", "flattening_", "batch_config")
#: Markers around the settings table pasted into each README from ``--about --format=markdown``.
SETTINGS_START, SETTINGS_END = "<!-- settings:start -->", "<!-- settings:end -->"
#: Variables that would hand a developer's real settings to a child process.
_PLUGIN_ENV_PREFIXES = ("TAP_", "TARGET_", "MELTANO_", "HARBORLINE_")
_PSEUDONYMIZATION_KEY_ENV = "HARBORLINE_PSEUDONYMIZATION_KEY"
#: One zygote per plugin module, started at its first CLI run (`run_plugin_cli`).
_ZYGOTES: dict[str, Zygote] = {}


# --- running a sync in-process -------------------------------------------------------------------------------------


@dataclass
class SyncResult(Generic[TapT]):
    """The Singer messages one in-process run wrote, and its failure if it failed."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    error: BaseException | None = None
    stdout: str = ""
    tap: TapT | None = None

    def records(self, stream: str | None = None) -> list[dict[str, Any]]:
        """The record bodies of RECORD messages, of one stream if given."""
        return [
            m["record"] for m in self.messages if m["type"] == "RECORD" and (stream is None or m["stream"] == stream)
        ]

    def schema(self, stream: str) -> dict[str, Any]:
        """The schema of the stream's first SCHEMA message (StopIteration if none: the stream never started)."""
        return next(m["schema"] for m in self.messages if m["type"] == "SCHEMA" and m["stream"] == stream)

    def states(self) -> list[dict[str, Any]]:
        """The value of every STATE message, in order."""
        return [m["value"] for m in self.messages if m["type"] == "STATE"]

    def last_state(self) -> dict[str, Any] | None:
        """The value of the last STATE message; None when the run wrote none."""
        states = self.states()
        return states[-1] if states else None

    def bookmark(self, stream: str) -> Any:
        """The stream's ``replication_key_value`` in the last STATE (None when absent)."""
        bookmarks = (self.last_state() or {}).get("bookmarks", {})
        return bookmarks.get(stream, {}).get("replication_key_value")


def run_tap(
    tap_class: type[TapT],
    config: Mapping[str, Any],
    *,
    clock: Clock | None = None,
    manual_clock: bool = True,
    state: dict[str, Any] | None = None,
    streams: Collection[str] | None = None,
    expect_error: bool = False,
    prepare: Callable[[TapT], None] | None = None,
) -> SyncResult[TapT]:
    """Run a sync in this process and capture what it writes, so a test can assert on messages and errors.

    Args:
        tap_class: The tap to run.
        config: Its config (copied: the tap never changes the caller's dict).
        clock: Given to every stream. Without one, each run gets a fresh ``ManualClock`` so retries and pacing
            never really sleep, unless ``manual_clock`` is False: then the streams keep their own clock.
        manual_clock: See ``clock``.
        state: The state to start from (passed as is).
        streams: Select exactly these streams (None: the tap's default selection).
        expect_error: Return a failing sync's exception in ``error`` instead of raising it; a sync that then
            succeeds fails the test, so an expected failure can never pass silently.
        prepare: Called with the tap right after it is built (before streams are touched): per-package tweaks
            such as a pinned "today".
    """
    tap = tap_class(config=dict(config), state=state)
    if prepare is not None:
        prepare(tap)
    stream_clock: Clock | None = clock if clock is not None else (ManualClock() if manual_clock else None)
    for name, stream in tap.streams.items():
        if stream_clock is not None:
            # Harborline streams take retry and pacing waits from ``clock``; set on every stream, as before.
            setattr(stream, "clock", stream_clock)  # noqa: B010 - not an attribute of the SDK's Stream type
        if streams is not None:
            stream.selected = name in streams
    buffer = io.StringIO()
    result: SyncResult[TapT] = SyncResult(tap=tap)
    with contextlib.redirect_stdout(buffer):
        try:
            tap.sync_all()
        except Exception as exc:  # the caller said whether a failure was expected
            if not expect_error:
                raise
            result.error = exc
    result.stdout = buffer.getvalue()
    result.messages = [json.loads(line) for line in result.stdout.splitlines() if line]
    if expect_error and result.error is None:
        import pytest  # noqa: PLC0415 - test-only dependency, not needed by demos importing this package

        pytest.fail("the sync was expected to fail but succeeded")
    return result


def run_plugin_cli(
    module: str,
    args: list[str],
    *,
    clear_prefixes: tuple[str, ...] = (),
    env: Mapping[str, str] | None = None,
    timeout: float = 300,
    plain: bool = False,
) -> subprocess.CompletedProcess[str]:
    """``python -m <module> <args>`` as a real process (text output captured, never raising on its exit code).

    Variables starting with ``clear_prefixes`` (a developer's real settings) are removed from the environment,
    then ``env`` is added. ``timeout`` is a safety net for a hung process only. The process is forked by a zygote
    that imported the module once (see ``zygote``), or, with ``plain``, started from scratch.
    """
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(clear_prefixes)} if clear_prefixes else None
    if env:
        full_env = {**(full_env if full_env is not None else os.environ), **env}
    if plain:
        return subprocess.run(  # noqa: S603 - the test's own interpreter and arguments
            [sys.executable, "-m", module, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=full_env,
            check=False,
        )
    zygote = _ZYGOTES.setdefault(module, Zygote(module))
    done = zygote.run(args, env=full_env, timeout=timeout)
    return subprocess.CompletedProcess(done.args, done.returncode, _text(done.stdout), _text(done.stderr))


def _text(output: bytes) -> str:
    """Bytes decoded as ``subprocess.run(text=True)`` decodes them (locale encoding, universal newlines)."""
    return io.TextIOWrapper(io.BytesIO(output)).read()


def clear_developer_env(monkeypatch: pytest.MonkeyPatch, prefix: str) -> None:
    """Remove ``<prefix>*`` variables and the pseudonymization key: a developer's real settings never reach a test."""
    for name in list(os.environ):
        if name.startswith(prefix) or name == _PSEUDONYMIZATION_KEY_ENV:
            monkeypatch.delenv(name, raising=False)


# --- docs: README and meltano.yml stay in step with the tap -------------------------------------------------------


def _expect(ok: object, message: str) -> None:
    """Fail the calling test with ``message`` (plain asserts here get no pytest explanation and vanish with -O)."""
    if not ok:
        raise AssertionError(message)


def about_settings_table(tap_class: type[Tap]) -> str:
    """The settings table ``<tap> --about --format=markdown`` prints (what the README must show)."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        tap_class.print_about(output_format="markdown")
    text = buffer.getvalue()
    begin = text.index("| Setting |")
    end = text.index("\n", text.index("A full list of supported settings"))
    return text[begin:end].strip()


def readme_settings_table(package_dir: Path) -> str:
    """The table pasted between the settings markers of the package's README.md."""
    readme = (package_dir / "README.md").read_text(encoding="utf-8")
    return readme[readme.index(SETTINGS_START) + len(SETTINGS_START) : readme.index(SETTINGS_END)].strip()


def assert_readme_settings_match_about(package_dir: Path, tap_class: type[Tap]) -> None:
    """The README's settings table is exactly the one the tap prints: users read the README, not the code."""
    pasted, generated = readme_settings_table(package_dir), about_settings_table(tap_class)
    diff = difflib.unified_diff(pasted.splitlines(), generated.splitlines(), "README.md", "--about", lineterm="")
    _expect(
        pasted == generated,
        f"regenerate with: {tap_class.name} --about --format=markdown\n" + "\n".join(diff),
    )


def meltano_extractor(meltano_yml: Path, name: str) -> dict[str, Any]:
    """The extractor entry called ``name`` in a meltano.yml (StopIteration if there is none)."""
    project = yaml.safe_load(meltano_yml.read_text(encoding="utf-8"))
    return next(e for e in project["plugins"]["extractors"] if e["name"] == name)


def assert_meltano_yml_declares_settings(
    package_dir: Path,
    tap_class: type[Tap],
    *,
    personal_data_fields: Mapping[str, Any],
    pip_url: str | None = None,
) -> dict[str, Any]:
    """The package's meltano.yml is the tap's only extractor and declares every setting as the tap defines it.

    Checked: each setting (but the SDK's built-ins) is declared with a kind and a description, ``sensitive``
    exactly where the tap marks it secret (so Meltano never prints a secret); the default ``pseudonymize`` is the
    tap's personal-data fields; the entry installs ``pip_url`` (default ``harborline-<tap name>``) as a custom
    plugin (no Hub ``variant``); its capabilities are the tap's. Returns the entry for package-specific checks.
    """
    project = yaml.safe_load((package_dir / "meltano.yml").read_text(encoding="utf-8"))
    (extractor,) = project["plugins"]["extractors"]
    _expect(extractor["name"] == tap_class.name, f"meltano.yml's extractor is {extractor['name']!r}")
    declared = {s["name"]: s for s in extractor["settings"] if not s["name"].startswith(SDK_BUILTIN_SETTING_PREFIXES)}
    properties = {
        name: prop
        for name, prop in tap_class.config_jsonschema["properties"].items()
        if not name.startswith(SDK_BUILTIN_SETTING_PREFIXES)
    }
    _expect(
        set(declared) == set(properties),
        f"meltano.yml settings differ from the tap's: undeclared {sorted(set(properties) - set(declared))}, "
        f"not settings of the tap {sorted(set(declared) - set(properties))}",
    )
    for name, prop in properties.items():
        _expect(bool(declared[name].get("sensitive")) == bool(prop.get("secret")), f"{name}: sensitive != secret")
        _expect(declared[name].get("kind"), f"{name}: no kind")
        _expect(declared[name].get("description"), f"{name}: no description")
    pseudonymize = extractor["config"]["pseudonymize"]
    _expect(pseudonymize == personal_data_fields, f"pseudonymize {pseudonymize} != {dict(personal_data_fields)}")
    expected_pip_url = pip_url or f"harborline-{tap_class.name}"
    _expect(extractor["pip_url"] == expected_pip_url, f"pip_url {extractor['pip_url']!r} != {expected_pip_url!r}")
    _expect("variant" not in extractor, "a custom plugin names no variant")
    capabilities = {str(c) for c in tap_class.capabilities}
    _expect(set(extractor["capabilities"]) == capabilities, f"capabilities != {sorted(capabilities)}")
    return dict(extractor)


def assert_root_meltano_yml_matches(package_dir: Path, tap_class: type[Tap]) -> None:
    """The monorepo's meltano.yml has the package's entry unchanged but for pip_url (installed from the checkout)."""
    mine = meltano_extractor(package_dir / "meltano.yml", tap_class.name)
    root = meltano_extractor(package_dir.parent / "meltano.yml", tap_class.name)
    expected_pip_url = f"${{MELTANO_PROJECT_ROOT}}/shared ${{MELTANO_PROJECT_ROOT}}/{package_dir.name}"
    root_pip_url = root.pop("pip_url")
    _expect(root_pip_url == expected_pip_url, f"root pip_url {root_pip_url!r} != {expected_pip_url!r}")
    mine.pop("pip_url")
    _expect(mine == root, f"the root meltano.yml's {tap_class.name} entry differs:\n{root}\n!=\n{mine}")


# --- end to end: tap | target-postgres ------------------------------------------------------------------------------


def target_postgres_command() -> list[str]:
    """The installed ``target-postgres`` script next to this interpreter, else the module (as a user would run it)."""
    installed = Path(sys.executable).with_name("target-postgres")
    if installed.exists():
        return [str(installed)]
    return [sys.executable, "-m", "harborline_target_postgres"]


def target_postgres_config(server: PostgresServer, database: str, schema: str) -> dict[str, Any]:
    """A target-postgres config loading into ``schema`` of a database on the test server."""
    connect = server.connect_kwargs(database)
    config = {k: connect[k] for k in ("host", "port", "user", "password") if k in connect}
    return config | {"database": database, "default_target_schema": schema}


def pipe_to_target_postgres(
    work_dir: Path,
    tap_module: str,
    tap_config: Mapping[str, Any],
    target_config: Mapping[str, Any],
    *,
    state: str | None = None,
    timeout: float = 600,
) -> str:
    """Run ``python -m <tap_module> | target-postgres`` as real processes; return the target's stdout (its STATE).

    Both must exit 0, else the assertion shows the tail of both logs. The children get no TAP_/TARGET_/MELTANO_/
    HARBORLINE_ variables: only the configs written to ``work_dir`` count.
    """
    (work_dir / "tap.json").write_text(json.dumps(tap_config))
    (work_dir / "target.json").write_text(json.dumps(target_config))
    tap_args = [sys.executable, "-m", tap_module, "--config", str(work_dir / "tap.json")]
    if state is not None:
        (work_dir / "state.json").write_text(state)
        tap_args += ["--state", str(work_dir / "state.json")]
    env = {k: v for k, v in os.environ.items() if not k.startswith(_PLUGIN_ENV_PREFIXES)}
    with (work_dir / "tap.log").open("w") as tap_log, (work_dir / "target.log").open("w") as target_log:
        tap = subprocess.Popen(tap_args, stdout=subprocess.PIPE, stderr=tap_log, env=env)  # noqa: S603
        target = subprocess.run(  # noqa: S603
            [*target_postgres_command(), "--config", str(work_dir / "target.json")],
            stdin=tap.stdout,
            stdout=subprocess.PIPE,
            stderr=target_log,
            env=env,
            check=False,
            timeout=timeout,
        )
        assert tap.stdout is not None  # noqa: S101 - Popen(stdout=PIPE)
        tap.stdout.close()
        tap_status = tap.wait(timeout=timeout)
    logs = (work_dir / "tap.log").read_text()[-3000:] + (work_dir / "target.log").read_text()[-3000:]
    _expect((tap_status, target.returncode) == (0, 0), f"tap exited {tap_status}, target {target.returncode}:\n{logs}")
    return target.stdout.decode()


def query_rows(connect_kwargs: Mapping[str, Any], sql: str) -> list[tuple[Any, ...]]:
    """All rows of one query, on a connection closed afterwards."""
    import psycopg2  # noqa: PLC0415 - a test dependency, not one of this package's

    with psycopg2.connect(**connect_kwargs) as connection, connection.cursor() as cursor:
        cursor.execute(sql)
        rows: list[tuple[Any, ...]] = cursor.fetchall()
    connection.close()
    return rows
