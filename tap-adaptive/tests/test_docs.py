"""The README and both meltano.yml entries stay in step with the tap's real settings and streams."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

from harborline_singer_shared.testing.taps import (
    assert_meltano_yml_declares_settings,
    assert_readme_settings_match_about,
    assert_root_meltano_yml_matches,
    meltano_extractor,
)
from harborline_tap_adaptive.streams import PERSONAL_DATA_FIELDS
from harborline_tap_adaptive.tap import TapAdaptive

PACKAGE_DIR = Path(__file__).parent.parent
README = (PACKAGE_DIR / "README.md").read_text(encoding="utf-8")


def test_readme_settings_table_matches_about_output() -> None:
    assert_readme_settings_match_about(PACKAGE_DIR, TapAdaptive)


def test_readme_documents_every_stream_with_its_key() -> None:
    tap = TapAdaptive(config={"username": "u", "password": "p", "pseudonymize": {}})
    for name, stream in tap.streams.items():
        keys = ", ".join(f"`{k}`" for k in stream.primary_keys)
        assert f"| `{name}` | {keys} |" in README, name
    assert json.dumps({"pseudonymize": PERSONAL_DATA_FIELDS}) in README
    assert '"pseudonymize": {}' in README
    for words in ("reexport_versions", "account_codes", "MNPI", "**decided**"):
        assert words in README


def test_readme_config_example_is_a_valid_config() -> None:
    block = README.split("A config for the `data` stream (the tests load this block):\n\n```json\n", 1)[1]
    config = json.loads(block.split("```", 1)[0])
    tap = TapAdaptive(config={**config, "password": "p", "pseudonymize": {}})
    assert tap.config["version_folder"] == "Shared with Data"
    assert tap.config["time_span_start"] == "01/2025"


def test_readme_meltano_commands_are_meltano_commands_on_declared_settings() -> None:
    block = README[README.index("<!-- meltano-commands:start -->") : README.index("<!-- meltano-commands:end -->")]
    declared = {s["name"] for s in meltano_extractor(PACKAGE_DIR / "meltano.yml", "tap-adaptive")["settings"]}
    lines = [line for line in block.split("```bash\n", 1)[1].split("```", 1)[0].splitlines() if line.strip()]
    assert lines
    for line in lines:
        words = shlex.split(re.sub(r"<[^>]+>", "placeholder", line), comments=True)
        assert words[0] == "meltano", line
        if words[1:3] == ["config", "set"]:
            assert words[3] == "tap-adaptive"
            assert words[4] in declared, line


def test_meltano_yml_declares_every_setting_with_its_secrecy() -> None:
    extractor = assert_meltano_yml_declares_settings(
        PACKAGE_DIR, TapAdaptive, personal_data_fields=PERSONAL_DATA_FIELDS
    )
    declared = {s["name"]: s for s in extractor["settings"]}
    assert declared["password"]["sensitive"] is True


def test_root_meltano_yml_has_the_same_entry_but_for_pip_url() -> None:
    assert_root_meltano_yml_matches(PACKAGE_DIR, TapAdaptive)
