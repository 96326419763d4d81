"""The README's settings table, streams and privacy config, and both meltano.yml entries, match the tap."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import yaml

from harborline_tap_xactly.streams import SQL_PERSONAL_DATA_FIELDS
from harborline_tap_xactly.tables import TABLES
from harborline_tap_xactly.tap import TapXactly

PACKAGE_DIR = Path(__file__).parent.parent
ROOT = PACKAGE_DIR.parent
#: Settings the SDK appends to every tap (stream maps, flattening, batch): declaring them in meltano.yml is optional.
SDK_BUILTIN_PREFIXES = ("stream_map", "faker_config", "flattening_", "batch_config")
START, END = "<!-- settings:start -->", "<!-- settings:end -->"


def _generated_settings_section() -> str:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        TapXactly.print_about(output_format="markdown")
    text = buffer.getvalue()
    begin = text.index("| Setting |")
    end = text.index("\n", text.index("A full list of supported settings"))
    return text[begin:end].strip()


def _entry(path: Path) -> dict:
    project = yaml.safe_load(path.read_text(encoding="utf-8"))
    return next(e for e in project["plugins"]["extractors"] if e["name"] == "tap-xactly")


def _readme() -> str:
    return (PACKAGE_DIR / "README.md").read_text(encoding="utf-8")


def test_readme_settings_table_matches_about_output() -> None:
    readme = _readme()
    pasted = readme[readme.index(START) + len(START) : readme.index(END)].strip()
    assert pasted == _generated_settings_section(), "regenerate with: tap-xactly --about --format=markdown"


def test_readme_lists_every_stream_with_its_table_and_key() -> None:
    readme = _readme()
    for table in TABLES:
        keys = ", ".join(f"`{k}`" for k in table.key)
        assert f"| `{table.stream}` | `{table.table}` | {keys} |" in readme
    assert len(TABLES) == 40


def test_readme_documents_transports_keyset_privacy_and_decisions() -> None:
    readme = _readme()
    for text in (
        "harborline-tap-xactly[jdbc]",
        "harborline-tap-xactly[odbc]",
        "Hard deletes are not seen",
        "never an OFFSET",
        '"pseudonymize": {}',
        "FULL_TABLE",
        "## Vendor facts that are not settled",
    ):
        assert text in readme, text
    shown = re.search(r'\{"pseudonymize": (\{"xc_user".*\})\}', readme)
    assert shown is not None
    assert yaml.safe_load(shown.group(1)) == SQL_PERSONAL_DATA_FIELDS


def test_meltano_yml_declares_every_setting_with_its_secrecy() -> None:
    extractor = _entry(PACKAGE_DIR / "meltano.yml")
    declared = {s["name"]: s for s in extractor["settings"] if not s["name"].startswith(SDK_BUILTIN_PREFIXES)}
    properties = {
        name: prop
        for name, prop in TapXactly.config_jsonschema["properties"].items()
        if not name.startswith(SDK_BUILTIN_PREFIXES)
    }
    assert set(declared) == set(properties)
    for name, prop in properties.items():
        assert bool(declared[name].get("sensitive")) == bool(prop.get("secret")), name
        assert declared[name].get("kind"), name
        assert declared[name].get("description"), name
        if "default" in prop and name != "pseudonymize":
            assert declared[name].get("value") == prop["default"], name
    assert extractor["config"]["pseudonymize"] == SQL_PERSONAL_DATA_FIELDS
    assert extractor["pip_url"] == "harborline-tap-xactly"


def test_root_meltano_yml_has_the_same_entry_but_for_pip_url() -> None:
    mine = _entry(PACKAGE_DIR / "meltano.yml")
    root = _entry(ROOT / "meltano.yml")
    assert root.pop("pip_url") == "${MELTANO_PROJECT_ROOT}/shared ${MELTANO_PROJECT_ROOT}/tap-xactly"
    mine.pop("pip_url")
    assert mine == root
