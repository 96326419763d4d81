"""A long windowed run says where it is, and does not repeat a line per window."""

from __future__ import annotations

import collections
import logging
from typing import Any

import pytest
from conftest import run_tap


def test_progress_names_stream_and_window_and_no_line_repeats_per_window(
    base_config: dict, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        run_tap({**base_config, "window_days": 0.25}, streams=["course_actions", "logins"])  # 24 windows each
    # The SDK's METRIC lines (its metrics logger, for Meltano) are structured data, one per request chain by design.
    info = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO and "metrics" not in r.name]
    for stream in ("course_actions", "logins"):
        finals = [m for m in info if m.startswith(f"stream '{stream}': window 24 of 24 read (")]
        assert len(finals) == 1, info
        assert "events so far" in finals[0]
    repeated: dict[str, Any] = {m: n for m, n in collections.Counter(info).items() if n >= 10}
    assert not repeated, repeated  # e.g. the SDK's "Pagination stopped after 0 pages" once per window
