"""The root README's examples that name tap-zengrc work as written."""

from __future__ import annotations

from pathlib import Path

import yaml
from fake_api import DEFAULT_PASSWORD, DEFAULT_USERNAME

from harborline_singer_shared.pseudonymize import pseudonymizer_for_plugin
from harborline_tap_zengrc.tap import TapZenGRC

README = Path(__file__).resolve().parents[2] / "README.md"


def _block(name: str) -> str:
    text = README.read_text(encoding="utf-8")
    block = text[text.index(f"<!-- {name}:start -->") : text.index(f"<!-- {name}:end -->")]
    return block.split("```yaml\n", 1)[1].split("```", 1)[0]


def test_the_pseudonymize_example_is_accepted_and_applied() -> None:
    config = yaml.safe_load(_block("pseudonymize-example"))["config"]
    tap = TapZenGRC(
        config={"api_url": "https://acme.api.zengrc.com", "username": DEFAULT_USERNAME, "password": DEFAULT_PASSWORD}
        | config
    )  # the start-up check refuses any stream or field the tap does not have
    pseudonymizer = pseudonymizer_for_plugin(tap)
    assert pseudonymizer is not None
    assert pseudonymizer.paths_for("people") == [("name",), ("email",), ("secondary_contact", "name")]
    people = tap.streams["people"].schema["properties"]
    assert people["email"]["type"] in ("string", ["string", "null"])
