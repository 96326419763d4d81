"""The README's settings table and meltano.yml stay in step with the tap's real settings."""

from __future__ import annotations

from pathlib import Path

from harborline_singer_shared.testing.taps import (
    assert_meltano_yml_declares_settings,
    assert_readme_settings_match_about,
)
from harborline_tap_zengrc.streams import PERSONAL_DATA_FIELDS
from harborline_tap_zengrc.tap import TapZenGRC

PACKAGE_DIR = Path(__file__).parent.parent


def test_readme_settings_table_matches_about_output() -> None:
    assert_readme_settings_match_about(PACKAGE_DIR, TapZenGRC)


def test_meltano_yml_declares_every_setting_with_its_secrecy() -> None:
    assert_meltano_yml_declares_settings(PACKAGE_DIR, TapZenGRC, personal_data_fields=PERSONAL_DATA_FIELDS)
