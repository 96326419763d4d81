"""The README's settings table and both meltano.yml entries stay in step with the tap's real settings."""

from __future__ import annotations

from pathlib import Path

from harborline_singer_shared.testing.taps import (
    assert_meltano_yml_declares_settings,
    assert_readme_settings_match_about,
    assert_root_meltano_yml_matches,
)
from harborline_tap_clari.streams import PERSONAL_DATA_FIELDS
from harborline_tap_clari.tap import TapClari

PACKAGE_DIR = Path(__file__).parent.parent


def test_readme_settings_table_matches_about_output() -> None:
    assert_readme_settings_match_about(PACKAGE_DIR, TapClari)


def test_readme_documents_every_stream_and_the_fiscal_example() -> None:
    readme = (PACKAGE_DIR / "README.md").read_text(encoding="utf-8")
    for stream in ("forecast_entries", "users", "fields", "time_periods", "time_frames"):
        assert f"| `{stream}` |" in readme
    assert "2025-01-15 is in `2025_Q4`" in readme
    assert "2025-02-01 is in `2026_Q1`" in readme
    assert "backfill" in readme.lower()
    assert '"pseudonymize": {}' in readme


def test_meltano_yml_declares_every_setting_with_its_secrecy() -> None:
    assert_meltano_yml_declares_settings(PACKAGE_DIR, TapClari, personal_data_fields=PERSONAL_DATA_FIELDS)


def test_root_meltano_yml_has_the_same_entry_but_for_pip_url() -> None:
    assert_root_meltano_yml_matches(PACKAGE_DIR, TapClari)
