"""The README's settings table and both meltano.yml entries stay in step with the tap's real settings."""

from __future__ import annotations

from pathlib import Path

from harborline_singer_shared.testing.taps import (
    assert_meltano_yml_declares_settings,
    assert_readme_settings_match_about,
    assert_root_meltano_yml_matches,
)
from harborline_tap_thoughtindustries.streams import PERSONAL_DATA_FIELDS
from harborline_tap_thoughtindustries.tap import TapThoughtIndustries

PACKAGE_DIR = Path(__file__).parent.parent


def test_readme_settings_table_matches_about_output() -> None:
    assert_readme_settings_match_about(PACKAGE_DIR, TapThoughtIndustries)


def test_meltano_yml_declares_every_setting_with_its_secrecy() -> None:
    assert_meltano_yml_declares_settings(PACKAGE_DIR, TapThoughtIndustries, personal_data_fields=PERSONAL_DATA_FIELDS)


def test_root_meltano_yml_has_the_same_entry_but_for_pip_url() -> None:
    assert_root_meltano_yml_matches(PACKAGE_DIR, TapThoughtIndustries)
