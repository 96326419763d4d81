"""Every developer and CI task of the monorepo, as nox sessions.

Packages are discovered from `*/pyproject.toml`, so a new plugin gets its `tests-<pkg>` session without touching
this file. Every session installs exactly the versions in `uv.lock` (`uv sync --locked`: a pyproject change that
was not locked fails at once instead of resolving something new); `tests-latest` is the one that does not.

    nox -l                 list sessions
    nox -t ci              everything CI runs (the README's test command), one session per core at a time
    nox -s tests-shared    one package's tests
    nox -s tests-latest    every suite against the newest versions the pyprojects allow (not in CI)
    nox -s dist            every sdist + wheel into dist/, checked
    nox -s demo            tap-thoughtindustries | target-postgres into a throwaway PostgreSQL
    nox -s bench           target and tap throughput against peers and raw COPY
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import nox

ROOT = Path(__file__).parent
# 2026.08.10 added `--parallel`; `nox.options.parallel` below needs it.
nox.needs_version = ">=2026.8.10"
nox.options.error_on_external_run = True
# uv makes each fresh environment a matter of seconds (it links from its cache); plain venv if uv is absent.
nox.options.default_venv_backend = "uv|venv"
nox.options.sessions = ["lint"]
# Sessions run `parallel` at a time, each in its own nox subprocess whose output is printed as one block when it ends.
# Every session is about one core's worth of work (a suite and the processes it starts take turns), so a 2-core CI
# machine runs two at once. The order below is the start order: cheap checks first, then the longest first (as each
# session ends the next one starts), so the two slots end at about the same time. `nox -j 1 ...` runs one at a time
# with output as it comes.
nox.options.parallel = "auto"
nox.options.allow_parallel = True

SDK_PIN = "singer-sdk~=0.54.9"


def _pyproject(pkg: str) -> dict:
    with (ROOT / pkg / "pyproject.toml").open("rb") as fh:
        return tomllib.load(fh)


PACKAGES = sorted(p.parent.name for p in ROOT.glob("*/pyproject.toml") if not p.parent.name.startswith("."))


def _dist_name(pkg: str) -> str:
    return str(_pyproject(pkg)["project"]["name"])


_WORKSPACE = [str(_pyproject(p)["project"]["name"]) for p in PACKAGES]


def _import_name(pkg: str) -> str:
    return str(_pyproject(pkg)["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"][0])


def _sync(session: nox.Session, *args: str, quiet: bool = True) -> None:
    """Install exactly what uv.lock holds for `args` into the session's environment.

    Workspace packages are installed non-editable: tests import the installed package, as a user would.
    """
    # uv caches a built workspace package by its pyproject.toml alone: without a rebuild, a session could test a
    # stale build of code changed since (the version is not bumped for every commit).
    rebuild = [arg for name in _WORKSPACE for arg in ("--reinstall-package", name)]
    session.run_install(
        "uv",
        "sync",
        "--locked",
        "--no-editable",
        *(["--quiet"] if quiet else []),
        *rebuild,
        *args,
        env={"UV_PROJECT_ENVIRONMENT": session.virtualenv.location},
        external=True,
    )


# -- CI (`nox -t ci`), in start order: cheap checks first (they fail within seconds), then the longest first ---------


@nox.session(tags=["ci"])
def lint(session: nox.Session) -> None:
    """Ruff lint and format check over the whole repo, with the one root ruff.toml."""
    _sync(session, "--only-group", "lint")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(tags=["ci"], venv_backend="none")
def deps(session: nox.Session) -> None:
    """Every package pins the same singer-sdk and names its siblings by version, never by path."""
    bad = []
    for pkg in PACKAGES:
        requirements = _pyproject(pkg)["project"].get("dependencies", [])
        sdk = [d for d in requirements if d.startswith("singer-sdk")]
        if sdk != [SDK_PIN]:
            bad.append(f"{pkg}: singer-sdk pin {sdk} is not [{SDK_PIN!r}]")
        bad += [f"{pkg}: {d!r} names a path or URL" for d in requirements if "@" in d or "file:" in d]
        if not _dist_name(pkg).startswith("harborline-"):
            bad.append(f"{pkg}: distribution name {_dist_name(pkg)!r} lacks the harborline- prefix")
    if bad:
        session.error("; ".join(bad))


def _make_tests(pkg: str) -> None:
    @nox.session(name=f"tests-{pkg}", tags=["ci", "tests"])
    def tests(session: nox.Session) -> None:
        """The package's tests, with the package and its test group installed from the lock."""
        _sync(session, "--package", _dist_name(pkg), "--group", "test")
        session.chdir(ROOT / pkg)
        session.run("pytest", "-m", "not live", *session.posargs)


#: Started right after the cheap checks, longest first; every other package's suite starts later (see below).
_LONG_SUITES = ["target-postgres", "target-snowflake"]
for _pkg in _LONG_SUITES:
    _make_tests(_pkg)


@nox.session(tags=["ci"])
def release(session: nox.Session) -> None:
    """Install as a user would, offline from a wheelhouse built in a deleted copy of the tree.

    The wheelhouse installs into a fresh venv (--no-index) and loads data; each plugin folder's meltano.yml entry,
    copied into a throwaway Meltano project, installs offline from it and runs.
    """
    _sync(session, "--all-packages", "--group", "test", "--group", "dist", "--group", "meltano")
    session.run("python", str(ROOT / "shared" / "scripts" / "release.py"), "check", *session.posargs)


@nox.session(tags=["ci"])
def meltano(session: nox.Session) -> None:
    """A real `meltano install` + `meltano run` of the root meltano.yml (both taps into target-postgres), twice."""
    _sync(session, "--all-packages", "--group", "test", "--group", "meltano")
    session.run("python", str(ROOT / "shared" / "scripts" / "meltano_e2e.py"), *session.posargs)


@nox.session(tags=["ci"])
def typing(session: nox.Session) -> None:
    """Mypy over every package with the root mypy.ini (shared/ is checked strictly)."""
    _sync(session, "--all-packages", "--group", "test", "--group", "typing")
    # One cache for all packages, new in each run (it lives in the session's environment, made afresh): the SDK and
    # the other libraries every package imports are analysed once, not once per package (about 4x less CPU).
    cache = Path(session.create_tmp()).resolve() / "mypy-cache"  # absolute: each mypy runs in its package folder
    for pkg in PACKAGES:
        # Run from inside the package so module names are `harborline_x.*`, not `x.harborline_x.*`.
        session.chdir(ROOT / pkg)
        session.run("mypy", "--config-file", str(ROOT / "mypy.ini"), "--cache-dir", str(cache), _import_name(pkg))


for _pkg in PACKAGES:
    if _pkg not in _LONG_SUITES:
        _make_tests(_pkg)


@nox.session(tags=["ci"])
def dist(session: nox.Session) -> None:
    """Every sdist + wheel into dist/, checked (twine, prefixed names, no local paths, CHANGELOG versions)."""
    _sync(session, "--all-packages", "--group", "test", "--group", "dist")
    session.run("python", str(ROOT / "shared" / "scripts" / "release.py"), "build", str(ROOT / "dist"))


# -- not in CI ------------------------------------------------------------------------------------------------------


@nox.session(name="tests-latest", default=False)
def tests_latest(session: nox.Session) -> None:
    """Every package's tests against the newest releases the pyprojects allow, ignoring uv.lock.

    Not part of `ci`: an upstream release that breaks us shows up here, when you choose to run it, and the lock
    keeps main green until it is fixed and `uv lock --upgrade` is committed.
    """
    groups = [r for pkg in PACKAGES for r in nox.project.dependency_groups(_pyproject(pkg), "test")]
    session.install("--upgrade", "--resolution=highest", *(f"./{p}" for p in PACKAGES), *groups)
    session.run("uv", "pip", "list", external=True, silent=False)
    for pkg in PACKAGES:
        session.chdir(ROOT / pkg)
        session.run("pytest", "-m", "not live", *session.posargs)


@nox.session(requires=[f"tests-{p}" for p in PACKAGES])
def tests(session: nox.Session) -> None:
    """All packages' tests (each in its own environment, via `requires`)."""
    session.log(f"tests ran for: {', '.join(PACKAGES)}")


# -- by hand ----------------------------------------------------------------------------------------------------------


@nox.session
def demo(session: nox.Session) -> None:
    """tap-thoughtindustries | target-postgres: fake API with generated data into a throwaway PostgreSQL."""
    session.log("installing the locked packages (uv lists each one) ...")
    _sync(session, "--all-packages", "--group", "test", quiet=False)
    session.run("python", str(ROOT / "shared" / "scripts" / "demo.py"), *session.posargs)


@nox.session(default=False, allow_parallel=False)  # alone: other sessions would skew the figures
def bench(session: nox.Session) -> None:
    """Throughput and peak RSS: target-postgres vs raw COPY and peer targets; the taps vs plain loops.

    Peers run in their own virtual environments (their dependencies conflict with ours).
    `nox -s bench -- --rows 1000000 --peer-rows 200000 --flat-rows 5000000` for the full measurement.
    Bytecode is compiled at install, as `pip install` does (and as the peers get it): start-up then measures the
    imports a user's runs pay, not compiling them (which a VM with PYTHONDONTWRITEBYTECODE=1 repeats every run).
    """
    _sync(session, "--all-packages", "--group", "test", "--compile-bytecode")
    peers = Path(session.virtualenv.location).parent / "bench-peers"
    exes = {}
    for name, requirement, exe in (
        ("meltanolabs", "meltanolabs-target-postgres", "target-postgres"),
        ("pipelinewise", "pipelinewise-target-postgres", "target-postgres"),
    ):
        venv = peers / name
        if not (venv / "bin" / exe).exists():
            session.run("python", "-m", "venv", str(venv))
            session.run(str(venv / "bin" / "pip"), "install", "-q", requirement, external=True)
        exes[name] = str(venv / "bin" / exe)
    target_args = session.posargs or ["--rows", "1000000", "--peer-rows", "200000"]
    session.run(
        "python",
        str(ROOT / "target-postgres" / "bench" / "bench_target.py"),
        "--meltanolabs",
        exes["meltanolabs"],
        "--pipelinewise",
        exes["pipelinewise"],
        *target_args,
    )
    session.run("python", str(ROOT / "target-snowflake" / "bench" / "bench_target.py"))
    session.run("python", str(ROOT / "tap-thoughtindustries" / "bench" / "bench_tap.py"))
    session.run("python", str(ROOT / "tap-clari" / "bench" / "bench_tap.py"))
    session.run("python", str(ROOT / "tap-adaptive" / "bench" / "bench_tap.py"))
    session.run("python", str(ROOT / "tap-xactly" / "bench" / "bench_tap.py"))
