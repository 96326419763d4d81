"""The README's settings table and meltano.yml stay in step with the target's real settings."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from click.testing import CliRunner

from harborline_target_snowflake.target import TargetSnowflake

ROOT = Path(__file__).resolve().parents[1]


def _about(fmt: str) -> str:
    """`target-snowflake --about --format=<fmt>`, in-process (the console script runs this very command)."""
    result = CliRunner().invoke(TargetSnowflake.cli, ["--about", f"--format={fmt}"])
    assert result.exit_code == 0, result.output
    return result.output


def test_readme_settings_table_matches_about() -> None:
    about = _about("markdown")
    table = about[about.index("| Setting |") :].split("\n\n")[0].strip()
    readme = (ROOT / "README.md").read_text()
    documented = readme.split("<!-- settings:start -->")[1].split("<!-- settings:end -->")[0].strip()
    assert documented == table, "README settings table drifted: regenerate it from `target-snowflake --about`"


def test_meltano_yml_declares_every_setting_and_marks_secrets() -> None:
    settings = json.loads(_about("json"))["settings"]["properties"]
    plugin = yaml.safe_load((ROOT / "meltano.yml").read_text())["plugins"]["loaders"][0]
    declared = {s["name"]: s for s in plugin["settings"]}
    builtin = {"stream_maps", "stream_map_config", "faker_config"}
    assert set(settings) - builtin <= set(declared)
    for name, prop in settings.items():
        if prop.get("secret"):
            assert declared[name].get("sensitive") is True, name
    assert {n for n, p in settings.items() if p.get("secret")} == {
        "password", "private_key", "private_key_passphrase", "pseudonymization_key",
    }  # fmt: skip


def test_the_root_meltano_yml_carries_the_same_entry() -> None:
    ours = yaml.safe_load((ROOT / "meltano.yml").read_text())["plugins"]["loaders"][0]
    root = yaml.safe_load((ROOT.parent / "meltano.yml").read_text())["plugins"]["loaders"]
    (entry,) = [p for p in root if p["name"] == "target-snowflake"]
    assert entry["pip_url"] == "${MELTANO_PROJECT_ROOT}/shared ${MELTANO_PROJECT_ROOT}/target-snowflake"
    assert {**entry, "pip_url": ours["pip_url"]} == ours
