"""The README's settings table and meltano.yml stay in step with the target's real settings."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _about(fmt: str) -> str:
    return subprocess.run(
        ["target-postgres", "--about", f"--format={fmt}"], capture_output=True, text=True, check=True, timeout=60
    ).stdout


def test_readme_settings_table_matches_about() -> None:
    about = _about("markdown")
    table = about[about.index("| Setting |") :].split("\n\n")[0].strip()
    readme = (ROOT / "README.md").read_text()
    documented = readme.split("<!-- settings:start -->")[1].split("<!-- settings:end -->")[0].strip()
    assert documented == table, "README settings table drifted: regenerate it from `target-postgres --about`"


def test_meltano_yml_declares_every_setting_and_marks_secrets() -> None:
    settings = json.loads(_about("json"))["settings"]["properties"]
    plugin = yaml.safe_load((ROOT / "meltano.yml").read_text())["plugins"]["loaders"][0]
    declared = {s["name"]: s for s in plugin["settings"]}
    builtin = {"stream_maps", "stream_map_config", "faker_config"}
    assert set(settings) - builtin <= set(declared)
    for name, prop in settings.items():
        if prop.get("secret"):
            assert declared[name].get("sensitive") is True, name
