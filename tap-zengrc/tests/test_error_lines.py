"""Every error line of a failed run names the stream it happened in, the same way: `stream 'x': ...`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from fake_api import DEFAULT_PASSWORD, DEFAULT_USERNAME, FakeZenGRC, Fault


def test_a_request_given_up_after_its_retries_names_the_stream(tmp_path: Path) -> None:
    with FakeZenGRC(records=3, seed=1) as fake:
        fake.inject(Fault(503, times=10_000))  # every request fails
        config = {
            "api_url": fake.url,
            "username": DEFAULT_USERNAME,
            "password": DEFAULT_PASSWORD,
            "max_retries": 1,
            "pseudonymize": {},
        }
        path = tmp_path / "config.json"
        path.write_text(json.dumps(config), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ZENGRC_", "TAP_ZENGRC_"))}
        result = subprocess.run(
            [sys.executable, "-m", "harborline_tap_zengrc", "--config", str(path)],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
            check=False,
        )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1, result.stderr[-3000:]
    assert "| stream 'assessments': Giving up on GET /api/v2/assessments after 1 attempt(s)" in errors[0]
