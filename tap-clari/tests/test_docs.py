"""The README's settings table and both meltano.yml entries stay in step with the tap's real settings."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import yaml

from harborline_tap_clari.streams import PERSONAL_DATA_FIELDS
from harborline_tap_clari.tap import TapClari

PACKAGE_DIR = Path(__file__).parent.parent
ROOT = PACKAGE_DIR.parent
#: Settings the SDK appends to every tap (stream maps, flattening, batch): declaring them in meltano.yml is optional.
SDK_BUILTIN_PREFIXES = ("stream_map", "faker_config", "flattening_", "batch_config")
START, END = "<!-- settings:start -->", "<!-- settings:end -->"


def _generated_settings_section() -> str:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        TapClari.print_about(output_format="markdown")
    text = buffer.getvalue()
    begin = text.index("| Setting |")
    end = text.index("\n", text.index("A full list of supported settings"))
    return text[begin:end].strip()


def _entry(path: Path) -> dict:
    project = yaml.safe_load(path.read_text(encoding="utf-8"))
    return next(e for e in project["plugins"]["extractors"] if e["name"] == "tap-clari")


def test_readme_settings_table_matches_about_output() -> None:
    readme = (PACKAGE_DIR / "README.md").read_text(encoding="utf-8")
    pasted = readme[readme.index(START) + len(START) : readme.index(END)].strip()
    assert pasted == _generated_settings_section(), "regenerate with: tap-clari --about --format=markdown"


def test_readme_documents_every_stream_and_the_fiscal_example() -> None:
    readme = (PACKAGE_DIR / "README.md").read_text(encoding="utf-8")
    for stream in ("forecast_entries", "users", "fields", "time_periods", "time_frames"):
        assert f"| `{stream}` |" in readme
    assert "2025-01-15 is in `2025_Q4`" in readme
    assert "2025-02-01 is in `2026_Q1`" in readme
    assert "backfill" in readme.lower()
    assert '"pseudonymize": {}' in readme


def test_meltano_yml_declares_every_setting_with_its_secrecy() -> None:
    extractor = _entry(PACKAGE_DIR / "meltano.yml")
    declared = {s["name"]: s for s in extractor["settings"] if not s["name"].startswith(SDK_BUILTIN_PREFIXES)}
    properties = {
        name: prop
        for name, prop in TapClari.config_jsonschema["properties"].items()
        if not name.startswith(SDK_BUILTIN_PREFIXES)
    }
    assert set(declared) == set(properties)
    for name, prop in properties.items():
        assert bool(declared[name].get("sensitive")) == bool(prop.get("secret")), name
        assert declared[name].get("kind"), name
        assert declared[name].get("description"), name
    assert extractor["config"]["pseudonymize"] == PERSONAL_DATA_FIELDS
    assert extractor["pip_url"] == "harborline-tap-clari"
    assert "variant" not in extractor


def test_root_meltano_yml_has_the_same_entry_but_for_pip_url() -> None:
    mine = _entry(PACKAGE_DIR / "meltano.yml")
    root = _entry(ROOT / "meltano.yml")
    assert root.pop("pip_url") == "${MELTANO_PROJECT_ROOT}/shared ${MELTANO_PROJECT_ROOT}/tap-clari"
    mine.pop("pip_url")
    assert mine == root
