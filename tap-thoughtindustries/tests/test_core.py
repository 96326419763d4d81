"""The SDK's standard tap tests, run against the local fake Thought Industries API."""

from __future__ import annotations

import atexit

from fake_api import DEFAULT_API_KEY, FakeThoughtIndustries
from singer_sdk.testing import SuiteConfig, get_tap_test_class

from harborline_tap_thoughtindustries.tap import TapThoughtIndustries

# The standard suite needs the config when the class is built, so the server starts at import and
# stops when the test process exits.
_API = FakeThoughtIndustries(users=200, events=2500, days=4, seed=3).start()
atexit.register(_API.stop)

SAMPLE_CONFIG = {
    "api_url": _API.url,
    "api_key": DEFAULT_API_KEY,
    "start_date": _API.dataset.start.isoformat(),
    "end_date": _API.dataset.end.isoformat(),
    "requests_per_minute": 1_000_000,
    # Personal-data fields are pseudonymized by default: the standard suite runs with that default on.
    "pseudonymization_key": "standard-suite-test-key-0123456789",
}

TestTapThoughtIndustries = get_tap_test_class(
    tap_class=TapThoughtIndustries,
    config=SAMPLE_CONFIG,
    suite_config=SuiteConfig(max_records_limit=None),
)
