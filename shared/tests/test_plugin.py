"""HarborlinePluginMixin: one-line errors with exit code 1, and secrets masked in every log line."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

SECRET = "s3cr3t-api-token-value"

PLUGIN = textwrap.dedent(
    """
    from __future__ import annotations
    import logging
    from singer_sdk import Stream, Tap
    from singer_sdk import typing as th
    from harborline_singer_shared.http import AuthenticationError
    from harborline_singer_shared.plugin import HarborlinePluginMixin

    class Things(Stream):
        name = "things"
        schema = th.PropertiesList(th.Property("id", th.IntegerType)).to_dict()

        def get_records(self, context):
            logging.getLogger("tap-demo").warning("about to call the API with %s", self.config["token"])
            if self.config.get("fail"):
                raise AuthenticationError("HTTP 401 from GET /things: check the `token` setting", status_code=401)
            yield {"id": 1}

    class TapDemo(HarborlinePluginMixin, Tap):
        name = "tap-demo"
        config_jsonschema = th.PropertiesList(
            th.Property("token", th.StringType, secret=True, required=True),
            th.Property("fail", th.BooleanType),
        ).to_dict()

        def discover_streams(self):
            return [Things(self)]

    TapDemo.cli()
    """
)


def _run(tmp_path: Path, config: dict[str, object]) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "tap_demo.py"
    script.write_text(PLUGIN)
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(config))
    return subprocess.run(
        [sys.executable, str(script), "--config", str(cfg)], capture_output=True, text=True, timeout=60, check=False
    )


def test_clear_error_is_one_line_and_exit_1(tmp_path: Path) -> None:
    result = _run(tmp_path, {"token": SECRET, "fail": True})
    assert result.returncode == 1
    error_lines = [line for line in result.stderr.splitlines() if "check the `token` setting" in line]
    assert len(error_lines) == 1
    assert "Traceback" not in result.stderr
    assert SECRET not in result.stderr
    assert SECRET not in result.stdout


def test_secrets_are_masked_in_logs_of_a_successful_run(tmp_path: Path) -> None:
    result = _run(tmp_path, {"token": SECRET})
    assert result.returncode == 0, result.stderr
    assert "about to call the API with ***" in result.stderr
    assert SECRET not in result.stderr
    assert '"record":{"id":1}' in result.stdout


def test_config_error_is_one_line_naming_every_reason(tmp_path: Path) -> None:
    """An invalid config gives one ERROR line with the reasons (the SDK alone prints them and a second line)."""
    result = _run(tmp_path, {"token": 12345, "fail": "often"})
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "| ERROR" in line]
    assert len(errors) == 1, errors
    assert "Config validation failed:" in errors[0]
    assert "config['fail']" in errors[0]
    assert "config['token']" in errors[0]
    assert "12345" not in result.stderr  # a mistyped secret is masked even in the validation error
    assert "Traceback" not in result.stderr
