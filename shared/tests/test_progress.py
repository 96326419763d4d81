"""Progress lines come at a steady interval, and the last step always says where the run ended."""

from __future__ import annotations

import logging

import pytest

from harborline_singer_shared.progress import Progress
from harborline_singer_shared.retry import ManualClock


def test_lines_come_at_the_interval_and_the_final_step_always(caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock()
    progress = Progress(logging.getLogger("tap-x.s"), interval=10, clock=clock.monotonic)
    logged = []
    with caplog.at_level(logging.INFO, logger="tap-x.s"):
        for window in range(1, 31):
            clock.sleep(1)
            logged.append(progress.step("stream 's': window %d of 30 read", window, final=window == 30))
    assert [i + 1 for i, was in enumerate(logged) if was] == [11, 21, 30]
    assert [r.getMessage() for r in caplog.records] == [
        "stream 's': window 11 of 30 read",
        "stream 's': window 21 of 30 read",
        "stream 's': window 30 of 30 read",
    ]
