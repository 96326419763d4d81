"""The README's settings table and meltano.yml stay in step with the tap's real settings."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import yaml

from harborline_tap_zengrc.streams import PERSONAL_DATA_FIELDS
from harborline_tap_zengrc.tap import TapZenGRC

PACKAGE_DIR = Path(__file__).parent.parent
#: Settings the SDK appends to every tap (stream maps, flattening, batch): declaring them in meltano.yml is optional.
SDK_BUILTIN_PREFIXES = ("stream_map", "faker_config", "flattening_", "batch_config")
START, END = "<!-- settings:start -->", "<!-- settings:end -->"


def _generated_settings_section() -> str:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        TapZenGRC.print_about(output_format="markdown")
    text = buffer.getvalue()
    begin = text.index("| Setting |")
    end = text.index("\n", text.index("A full list of supported settings"))
    return text[begin:end].strip()


def test_readme_settings_table_matches_about_output() -> None:
    readme = (PACKAGE_DIR / "README.md").read_text(encoding="utf-8")
    pasted = readme[readme.index(START) + len(START) : readme.index(END)].strip()
    assert pasted == _generated_settings_section(), "regenerate with: tap-zengrc --about --format=markdown"


def test_meltano_yml_declares_every_setting_with_its_secrecy() -> None:
    project = yaml.safe_load((PACKAGE_DIR / "meltano.yml").read_text(encoding="utf-8"))
    (extractor,) = project["plugins"]["extractors"]
    declared = {s["name"]: s for s in extractor["settings"] if not s["name"].startswith(SDK_BUILTIN_PREFIXES)}
    properties = {
        name: prop
        for name, prop in TapZenGRC.config_jsonschema["properties"].items()
        if not name.startswith(SDK_BUILTIN_PREFIXES)
    }
    assert set(declared) == set(properties)
    for name, prop in properties.items():
        assert bool(declared[name].get("sensitive")) == bool(prop.get("secret")), name
    assert extractor["config"]["pseudonymize"] == PERSONAL_DATA_FIELDS
