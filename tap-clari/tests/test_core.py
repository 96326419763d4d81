"""The SDK's standard tap tests, run against the fake Clari (a real local HTTP server).

No test is excluded. Every export of the run goes through the whole job cycle (SCHEDULED -> STARTED -> DONE over
three polls, with no wait between polls), and the documents have weeks in shuffled order and week ids reused across
quarters, so discovery, schema/record agreement, primary keys and the per-attribute type checks all run over the
real request path of every stream.
"""

from __future__ import annotations

import atexit

from conftest import KEY
from fake_api import DEFAULT_API_KEY, FakeClari
from singer_sdk.testing import SuiteConfig, get_tap_test_class

from harborline_tap_clari.tap import TapClari

# The standard suite needs the config when the class is built, so the server starts at import and stops when the
# test process exits.
_API = FakeClari(users=4, polls_until_done=3).start()
atexit.register(_API.stop)

CONFIG = {
    "api_url": _API.url,
    "api_key": DEFAULT_API_KEY,
    "forecast_ids": ["net_bookings", "renewals"],
    "quarters_back": 1,
    "poll_interval_seconds": 0,
    "max_retries": 2,
    "request_timeout": 10,
    "pseudonymization_key": KEY,
}

TestTapClari = get_tap_test_class(
    tap_class=TapClari,
    config=CONFIG,
    suite_config=SuiteConfig(ignore_no_records=False, max_records_limit=None),
)
