"""`window_days` as text: how Meltano passes a fractional setting from the environment (TAP_..._WINDOW_DAYS=0.5)."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import run_tap
from singer_sdk.exceptions import ConfigValidationError

from harborline_tap_thoughtindustries.tap import TapThoughtIndustries


def _windows_requested(fake_api: Any) -> int:
    return sum(1 for r in fake_api.requests if r.path.endswith("/events/courseAction"))


def test_window_days_as_text_reads_the_same_windows_as_the_number(fake_api: Any, base_config: dict) -> None:
    as_number = run_tap({**base_config, "window_days": 0.5}, streams=["course_actions"])
    by_number = _windows_requested(fake_api)
    as_text = run_tap({**base_config, "window_days": "0.5"}, streams=["course_actions"])
    assert _windows_requested(fake_api) - by_number == by_number  # the same requests again
    assert as_text.records("course_actions") == as_number.records("course_actions")
    assert len(as_number.records("course_actions")) > 0


@pytest.mark.parametrize("bad", ["0", "-1", "half", ""])
def test_window_days_text_that_is_no_positive_number_is_refused(base_config: dict, bad: str) -> None:
    with pytest.raises(ConfigValidationError) as refused:
        TapThoughtIndustries(config={**base_config, "window_days": bad})
    assert [e for e in refused.value.errors if "config['window_days']" in e], refused.value.errors
