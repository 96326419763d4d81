"""The README and both meltano.yml entries stay in step with the tap's real settings and streams."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
from pathlib import Path

import yaml

from harborline_tap_adaptive.streams import PERSONAL_DATA_FIELDS
from harborline_tap_adaptive.tap import TapAdaptive

PACKAGE_DIR = Path(__file__).parent.parent
ROOT = PACKAGE_DIR.parent
README = (PACKAGE_DIR / "README.md").read_text(encoding="utf-8")
#: Settings the SDK appends to every tap (stream maps, flattening, batch): declaring them in meltano.yml is optional.
SDK_BUILTIN_PREFIXES = ("stream_map", "faker_config", "flattening_", "batch_config")
START, END = "<!-- settings:start -->", "<!-- settings:end -->"


def _generated_settings_section() -> str:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        TapAdaptive.print_about(output_format="markdown")
    text = buffer.getvalue()
    begin = text.index("| Setting |")
    end = text.index("\n", text.index("A full list of supported settings"))
    return text[begin:end].strip()


def _entry(path: Path) -> dict:
    project = yaml.safe_load(path.read_text(encoding="utf-8"))
    return next(e for e in project["plugins"]["extractors"] if e["name"] == "tap-adaptive")


def test_readme_settings_table_matches_about_output() -> None:
    pasted = README[README.index(START) + len(START) : README.index(END)].strip()
    assert pasted == _generated_settings_section(), "regenerate with: tap-adaptive --about --format=markdown"


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
    declared = {s["name"] for s in _entry(PACKAGE_DIR / "meltano.yml")["settings"]}
    lines = [line for line in block.split("```bash\n", 1)[1].split("```", 1)[0].splitlines() if line.strip()]
    assert lines
    for line in lines:
        words = shlex.split(re.sub(r"<[^>]+>", "placeholder", line), comments=True)
        assert words[0] == "meltano", line
        if words[1:3] == ["config", "set"]:
            assert words[3] == "tap-adaptive"
            assert words[4] in declared, line


def test_meltano_yml_declares_every_setting_with_its_secrecy() -> None:
    extractor = _entry(PACKAGE_DIR / "meltano.yml")
    declared = {s["name"]: s for s in extractor["settings"] if not s["name"].startswith(SDK_BUILTIN_PREFIXES)}
    properties = {
        name: prop
        for name, prop in TapAdaptive.config_jsonschema["properties"].items()
        if not name.startswith(SDK_BUILTIN_PREFIXES)
    }
    assert set(declared) == set(properties)
    for name, prop in properties.items():
        assert bool(declared[name].get("sensitive")) == bool(prop.get("secret")), name
        assert declared[name].get("kind"), name
        assert declared[name].get("description"), name
    assert declared["password"]["sensitive"] is True
    assert extractor["config"]["pseudonymize"] == PERSONAL_DATA_FIELDS
    assert extractor["pip_url"] == "harborline-tap-adaptive"
    assert "variant" not in extractor
    assert set(extractor["capabilities"]) == {str(c) for c in TapAdaptive.capabilities}


def test_root_meltano_yml_has_the_same_entry_but_for_pip_url() -> None:
    mine = _entry(PACKAGE_DIR / "meltano.yml")
    root = _entry(ROOT / "meltano.yml")
    assert root.pop("pip_url") == "${MELTANO_PROJECT_ROOT}/shared ${MELTANO_PROJECT_ROOT}/tap-adaptive"
    mine.pop("pip_url")
    assert mine == root
