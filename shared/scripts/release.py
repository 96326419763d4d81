"""Build every package as a release would, and prove the result installs and runs away from this checkout.

    python shared/scripts/release.py build OUT    # nox -s dist: every sdist + wheel into OUT, checked
    python shared/scripts/release.py check        # nox -s release: the wheelhouse test below

`build` runs `python -m build` (no isolation: the backend comes from uv.lock) for each package folder, then checks
what it built: `twine check`, a `harborline-` distribution name, no local path or direct URL anywhere in the
metadata, the version named by the newest CHANGELOG entry, and each plugin folder's meltano.yml entry equal to the
root meltano.yml's but for `pip_url`.

`check` copies the tracked files to a temporary build tree, builds the wheelhouse there (our wheels plus every
public dependency at its locked version), copies the wheelhouse out and deletes the build tree. Then, from the
wheelhouse alone (`pip install --no-index`):

1. a fresh virtualenv takes harborline-tap-zengrc and harborline-target-postgres; both CLIs answer `--about`
   with their name and version, and `tap-zengrc | target-postgres` loads a fake ZenGRC API into a throwaway
   PostgreSQL with the expected row counts;
2. the README's install from a checkout (`pip install ./shared ./tap-zengrc`) works in another fresh virtualenv;
3. a throwaway Meltano project outside the repository, built from the plugin folders' meltano.yml entries as a
   user would copy them, installs offline from the wheelhouse and runs both taps into target-postgres
   (`meltano_e2e.py --wheelhouse`).
"""

from __future__ import annotations

import argparse
import contextlib
import email.parser
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
import zipfile
from pathlib import Path

import meltano_e2e
import yaml

from harborline_singer_shared.testing.postgres import PostgresServer

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "harborline-"
#: The pair the wheelhouse test installs and runs, as the issue tracker's release check names them.
TAP, TARGET = "tap-zengrc", "target-postgres"


class ReleaseError(RuntimeError):
    """A release check failed; the message says which."""


def log(message: str) -> None:
    """Print one progress line."""
    print(f"[release] {message}", flush=True)


def run(argv: list[str | Path], **kwargs: object) -> str:
    """Run a command; return its stdout, or raise with its output on failure."""
    result = subprocess.run([str(a) for a in argv], capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        raise ReleaseError(
            f"`{' '.join(map(str, argv))}` failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )
    return str(result.stdout)


def packages(tree: Path) -> list[Path]:
    """The package folders of a tree: every folder with a pyproject.toml, the workspace root excluded."""
    return sorted(p.parent for p in tree.glob("*/pyproject.toml") if not p.parent.name.startswith("."))


# -- build ------------------------------------------------------------------------------------------------------------


def changelog_version(package: Path) -> str:
    """The version of the newest `## [X.Y.Z]` entry of the package's CHANGELOG.md."""
    changelog = package / "CHANGELOG.md"
    if not changelog.exists():
        raise ReleaseError(f"{package.name}: no CHANGELOG.md")
    match = re.search(r"^## \[([^\]]+)\]", changelog.read_text(encoding="utf-8"), re.MULTILINE)
    if not match:
        raise ReleaseError(f"{package.name}/CHANGELOG.md has no `## [version]` entry")
    return match.group(1)


def artifact_metadata(path: Path) -> str:
    """The core metadata text of a wheel (METADATA) or an sdist (PKG-INFO)."""
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as zf:
            name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
            return zf.read(name).decode()
    with tarfile.open(path) as tf:
        member = next(m for m in tf.getmembers() if m.name.count("/") == 1 and m.name.endswith("/PKG-INFO"))
        handle = tf.extractfile(member)
        if handle is None:
            raise ReleaseError(f"{path.name}: PKG-INFO is not a file")
        return handle.read().decode()


def check_artifact(path: Path, expected: dict[str, str], build_tree: Path) -> None:
    """A built file has the expected name and version, and no local path or direct reference in its metadata."""
    text = artifact_metadata(path)
    meta = email.parser.Parser().parsestr(text)
    name, version = meta["Name"], meta["Version"]
    problems = []
    if name not in expected:
        problems.append(f"unexpected distribution {name!r}")
    elif expected[name] != version:
        problems.append(f"version {version} but the CHANGELOG's newest entry is {expected[name]}")
    problems += [
        f"Requires-Dist {requirement!r} is a direct reference (no index accepts it)"
        for requirement in meta.get_all("Requires-Dist") or []
        if "@" in requirement.split(";")[0] or "file:" in requirement
    ]
    problems += [
        f"metadata mentions the local path {p!r}" for p in (str(build_tree), str(ROOT), "file://") if p in text
    ]
    if not meta["Requires-Python"]:
        problems.append("no Requires-Python")
    if problems:
        raise ReleaseError(f"{path.name}: " + "; ".join(problems))


def meltano_entry(path: Path, kind: str, name: str) -> dict[str, object]:
    """One plugin's entry from a meltano.yml."""
    project = yaml.safe_load(path.read_text(encoding="utf-8"))
    for plugin in project["plugins"].get(kind, []):
        if plugin["name"] == name:
            return dict(plugin)
    raise ReleaseError(f"{path} has no {kind} entry named {name!r}")


def check_meltano_entries(tree: Path) -> None:
    """Each plugin folder's meltano.yml entry is the root project's but for pip_url.

    Its pip_url names the released distribution: installable without this checkout and without Meltano Hub.
    """
    for package in packages(tree):
        if not package.name.startswith(("tap-", "target-")):
            continue
        kind = "extractors" if package.name.startswith("tap-") else "loaders"
        mine = meltano_entry(package / "meltano.yml", kind, package.name)
        root = meltano_entry(tree / "meltano.yml", kind, package.name)
        if mine.pop("pip_url") != PREFIX + package.name:
            raise ReleaseError(f"{package.name}/meltano.yml: pip_url must be {PREFIX + package.name!r}")
        root.pop("pip_url")
        if mine != root:
            differ = sorted(k for k in set(mine) | set(root) if mine.get(k) != root.get(k))
            raise ReleaseError(f"{package.name}/meltano.yml differs from the root meltano.yml's entry in {differ}")
        if "variant" in mine:
            raise ReleaseError(f"{package.name}/meltano.yml: a variant would send Meltano to the Hub")


def build(tree: Path, out: Path) -> list[Path]:
    """Build and check every package of `tree` into `out`; return the files built."""
    out.mkdir(parents=True, exist_ok=True)
    for old in [*out.glob("*.whl"), *out.glob("*.tar.gz")]:
        old.unlink()
    expected = {}
    for package in packages(tree):
        with (package / "pyproject.toml").open("rb") as fh:
            project = tomllib.load(fh)["project"]
        if not project["name"].startswith(PREFIX):
            raise ReleaseError(f"{package.name}: distribution {project['name']!r} lacks the {PREFIX} prefix")
        expected[project["name"]] = project["version"]
        if changelog_version(package) != project["version"]:
            raise ReleaseError(
                f"{package.name}: pyproject version {project['version']} but CHANGELOG.md's newest entry is "
                f"{changelog_version(package)}"
            )
        run([sys.executable, "-m", "build", "--no-isolation", "--sdist", "--wheel", "--outdir", out, package])
    built = sorted([*out.glob("*.whl"), *out.glob("*.tar.gz")])
    if len(built) != 2 * len(expected):
        raise ReleaseError(f"expected a wheel and an sdist per package, got {[p.name for p in built]}")
    run([sys.executable, "-m", "twine", "check", "--strict", *built])
    for path in built:
        check_artifact(path, expected, tree)
    check_meltano_entries(tree)
    log(f"built and checked {len(built)} files in {out}: {', '.join(p.name for p in built)}")
    return built


# -- check ------------------------------------------------------------------------------------------------------------


def copy_tracked(dest: Path) -> None:
    """Copy the files git tracks or would track (as they are in the work tree) to `dest`: the build tree."""
    listed = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT).split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


def make_wheelhouse(workdir: Path) -> Path:
    """Build our wheels in a copy of the tree, add every locked public dependency, copy it out, delete the tree."""
    tree = workdir / "build-tree"
    copy_tracked(tree)
    built = build(tree, tree / "dist")
    requirements = workdir / "locked-requirements.txt"
    # Every package's runtime dependencies, plus the build backend so a checkout (sdist) installs offline too.
    run(["uv", "export", "--locked", "--all-packages", "--no-dev", "--group", "backend", "--no-emit-workspace",
         "--no-hashes", "--quiet", "--output-file", requirements], cwd=tree)  # fmt: skip
    downloader = fresh_venv(workdir / "downloader")
    wheelhouse = workdir / "wheelhouse"
    wheelhouse.mkdir()
    run([downloader / "bin" / "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
         "--dest", wheelhouse, "--requirement", requirements])  # fmt: skip
    for path in built:
        shutil.copy2(path, wheelhouse / path.name)
    shutil.rmtree(tree)
    shutil.rmtree(downloader)
    log(f"wheelhouse of {len(list(wheelhouse.iterdir()))} files in {wheelhouse}; build tree deleted")
    return wheelhouse


def fresh_venv(path: Path) -> Path:
    """A new virtualenv with pip, from the interpreter running this script."""
    base = getattr(sys, "_base_executable", sys.executable)
    run([base, "-m", "venv", path])
    return path


def offline_install(venv: Path, wheelhouse: Path, *requirements: str | Path, cwd: Path | None = None) -> None:
    """`pip install` from the wheelhouse only: nothing from an index, nor from the machine's pip configuration.

    A PIP_FIND_LINKS or pip.conf of the machine could otherwise hide a wheel missing from the wheelhouse.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")} | {"PIP_CONFIG_FILE": os.devnull}
    argv = [venv / "bin" / "pip", "install", "--quiet", "--no-index", "--find-links", wheelhouse, *requirements]
    run(argv, cwd=cwd, env=env)


def check_about(venv: Path, script: str) -> None:
    """The console script answers `--about` with its own name and the installed distribution's version."""
    about = json.loads(run([venv / "bin" / script, "--about", "--format=json"]))
    version = run(
        [venv / "bin" / "python", "-c", f"import importlib.metadata as m; print(m.version('{PREFIX}{script}'))"]
    )
    if about.get("name") != script or about.get("version") != version.strip():
        raise ReleaseError(f"{script} --about says {about.get('name')!r} {about.get('version')!r}")
    log(f"{script} --about: {about['name']} {about['version']}, {len(about['settings']['properties'])} settings")


def readme_block(name: str) -> str:
    """The fenced code between `<!-- name:start -->` and `<!-- name:end -->` in the root README."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text[text.index(f"<!-- {name}:start -->") : text.index(f"<!-- {name}:end -->")]
    return block.split("```bash\n", 1)[1].split("```", 1)[0]


def load_demo_stream(venv: Path, workdir: Path) -> None:
    """The README's hand-run recipe, verbatim, with the fresh venv's CLIs: twice, as a first and a later run.

    tap-zengrc reads a fake ZenGRC API and target-postgres loads a throwaway PostgreSQL; rows are counted after each
    run, and the second run starts from the state the first one kept.
    """
    args = meltano_e2e.parse_args([])
    expected = meltano_e2e.expected_zengrc(args)
    recipe = readme_block("hand-run")
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(PostgresServer())
        server.create_database(meltano_e2e.DATABASE)
        url = meltano_e2e.start_fake(
            [str(meltano_e2e.ZENGRC_FAKE), "--records", str(args.zengrc_records), "--seed", str(args.seed)],
            "fake ZenGRC API",
            workdir,
            stack,
        )
        connect = server.connect_kwargs(meltano_e2e.DATABASE)
        tap_config = {
            "api_url": url,
            "username": meltano_e2e.ZENGRC_USERNAME,
            "password": meltano_e2e.ZENGRC_PASSWORD,
            "start_date": meltano_e2e.ZENGRC_START,
            "page_size": 15,
            "pseudonymization_key": meltano_e2e.PSEUDONYMIZATION_KEY,
        }
        target_config = {k: connect[k] for k in ("host", "port", "user", "password") if k in connect}
        target_config |= {"database": meltano_e2e.DATABASE, "default_target_schema": expected.schema}
        rundir = workdir / "hand-run"
        rundir.mkdir()
        (rundir / "tap.json").write_text(json.dumps(tap_config))
        (rundir / "target.json").write_text(json.dumps(target_config))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TAP_", "TARGET_", "MELTANO_", "ZENGRC_"))}
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        for run_number in (1, 2):
            result = subprocess.run(
                ["bash", "-c", recipe], cwd=rundir, env=env, capture_output=True, text=True, check=False
            )
            if result.returncode:
                raise ReleaseError(f"the README's hand-run recipe failed on run {run_number}:\n{result.stderr[-3000:]}")
            state = json.loads((rundir / "state.json").read_text())
            if not state.get("bookmarks"):
                raise ReleaseError(f"run {run_number} of the README's recipe kept no bookmarks: {state}")
            meltano_e2e.check_counts(
                expected, meltano_e2e.snapshot(server, expected.schema), f"README hand-run recipe, run {run_number}"
            )


def check(*, keep: bool) -> None:
    """The whole wheelhouse test (see the module docstring)."""
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="harborline-release-"))
    try:
        wheelhouse = make_wheelhouse(workdir)

        venv = fresh_venv(workdir / "venv")
        offline_install(venv, wheelhouse, PREFIX + TAP, PREFIX + TARGET)
        check_about(venv, TAP)
        check_about(venv, TARGET)
        load_demo_stream(venv, workdir)

        checkout = fresh_venv(workdir / "checkout-venv")
        offline_install(checkout, wheelhouse, "./shared", f"./{TAP}", cwd=ROOT)
        check_about(checkout, TAP)
        log(f"pip install ./shared ./{TAP} from the checkout works")

        status = meltano_e2e.main(["--wheelhouse", str(wheelhouse), *(["--keep"] if keep else [])])
        if status:
            raise ReleaseError("the Meltano project built from the plugin folders' meltano.yml entries failed")
    finally:
        if keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    log(f"all release checks passed in {time.monotonic() - started:.0f} s")


def main(argv: list[str] | None = None) -> int:
    """Run `build OUT` or `check`; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="build and check every package").add_argument("out", type=Path)
    sub.add_parser("check", help="the wheelhouse test").add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            build(ROOT, args.out.resolve())
        else:
            check(keep=args.keep)
    except (ReleaseError, meltano_e2e.E2EError, OSError) as err:
        print(f"[release] FAILED: {err}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
