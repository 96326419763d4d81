"""The README's example config, run as written against the fake API: it must finish after a bounded number of requests.

Issue 16 saw it run for about two hours and log 91 identical "Pagination stopped after 0 pages" lines. Only api_url
is replaced (by the fake's) and the client-side pacing lifted (through the environment: the test machine is not the
vendor); the example's start_date, window_days and api_key are used as they are.
"""

from __future__ import annotations

import collections
import json
import math
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from fake_api import EVENT_ENDPOINTS, FakeThoughtIndustries

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example_config() -> dict:
    text = README.read_text(encoding="utf-8")
    block = text[text.index("<!-- example-config:start -->") : text.index("<!-- example-config:end -->")]
    return json.loads(block.split("```json\n", 1)[1].split("```", 1)[0])


def test_the_readme_example_config_finishes_with_one_request_chain_per_window(tmp_path: Path) -> None:
    example = readme_example_config()
    start = datetime.fromisoformat(example["start_date"])
    now = datetime.now(UTC)
    with FakeThoughtIndustries(
        users=30, events=400, days=(now - start).days + 2, end=now, api_key=example["api_key"]
    ) as api:
        config = tmp_path / "c.json"
        config.write_text(json.dumps({**example, "api_url": api.url}))
        result = subprocess.run(
            [sys.executable, "-m", "harborline_tap_thoughtindustries", "--config", str(config), "--config", "ENV"],
            env={**os.environ, "TAP_THOUGHTINDUSTRIES_REQUESTS_PER_MINUTE": "100000"},
            capture_output=True,
            text=True,
            check=False,
            timeout=600,  # a safety net for a hang only
        )
        assert result.returncode == 0, result.stderr[-3000:]
        windows = math.ceil((now - start).total_seconds() / (example["window_days"] * 86400))
        for endpoint in EVENT_ENDPOINTS:
            requests = api.event_requests(endpoint)
            # Each window walks its time cursor back to an empty page: about 3 requests for the few events per
            # window here. A loop (issue 16: 31,160 requests) or a window per day would be far above this.
            assert windows <= len(requests) <= 4 * windows, (endpoint, len(requests), windows)
    records = [json.loads(line) for line in result.stdout.splitlines() if '"RECORD"' in line]
    assert any(r["stream"] == "users" for r in records)
    lines = [re.sub(r"^\S+ \S+ \| ", "", line) for line in result.stderr.splitlines() if "METRIC" not in line]
    repeated = {line: n for line, n in collections.Counter(lines).items() if n >= 10}
    assert not repeated, repeated
    assert any(re.search(r"stream '\w+': window \d+ of \d+ read", line) for line in lines), result.stderr[-3000:]
