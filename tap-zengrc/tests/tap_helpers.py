"""Test helpers: run the tap in-process (the shared runner); vendor-shaped fixtures."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from harborline_singer_shared.testing import taps
from harborline_tap_zengrc.tap import TapZenGRC

FIXTURES = Path(__file__).parent / "fixtures"
MOCK_BASE = "https://acme.api.zengrc.com/api/v2"
MOCK_USERNAME = "key-id-4e1c"
MOCK_PASSWORD = "key-secret-S3CR3T-9f2a7b"  # a test credential

#: Run a sync in-process; streams get a ``ManualClock`` so retries never really sleep.
run_tap = functools.partial(taps.run_tap, TapZenGRC)


def load_fixture(name: str) -> Any:
    """Load a vendor-shaped JSON page from tests/fixtures."""
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))
