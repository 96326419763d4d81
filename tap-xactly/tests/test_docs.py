"""The README's settings table, streams and privacy config, and both meltano.yml entries, match the tap."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from harborline_singer_shared.testing.taps import (
    assert_meltano_yml_declares_settings,
    assert_readme_settings_match_about,
    assert_root_meltano_yml_matches,
)
from harborline_tap_xactly.streams import SQL_PERSONAL_DATA_FIELDS
from harborline_tap_xactly.tables import TABLES
from harborline_tap_xactly.tap import TapXactly

PACKAGE_DIR = Path(__file__).parent.parent


def _readme() -> str:
    return (PACKAGE_DIR / "README.md").read_text(encoding="utf-8")


def test_readme_settings_table_matches_about_output() -> None:
    assert_readme_settings_match_about(PACKAGE_DIR, TapXactly)


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


def test_meltano_yml_declares_every_setting_with_its_secrecy_and_default() -> None:
    extractor = assert_meltano_yml_declares_settings(
        PACKAGE_DIR, TapXactly, personal_data_fields=SQL_PERSONAL_DATA_FIELDS
    )
    declared = {s["name"]: s for s in extractor["settings"]}
    for name, prop in TapXactly.config_jsonschema["properties"].items():
        if "default" in prop and name in declared and name != "pseudonymize":
            assert declared[name].get("value") == prop["default"], name


def test_root_meltano_yml_has_the_same_entry_but_for_pip_url() -> None:
    assert_root_meltano_yml_matches(PACKAGE_DIR, TapXactly)
