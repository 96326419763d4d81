"""The SDK's standard tap tests, run against the fake ZenGRC API (a real local HTTP server).

No test is excluded. The fake serves vendor-shaped pages (``data`` + host-relative
``links.next.href``) with basic auth, so discovery, pagination, schema/record agreement, primary
keys and per-attribute type checks all run over the real request path of every stream.
"""

from __future__ import annotations

from fake_api import DEFAULT_PASSWORD, DEFAULT_USERNAME, FakeZenGRC
from singer_sdk.testing import SuiteConfig, get_tap_test_class

from harborline_tap_zengrc.tap import TapZenGRC

# Started at import because the SDK builds its test class from a config known at collection
# time; the server thread is a daemon and ends with the test process.
FAKE = FakeZenGRC(records=30, seed=3).start()

CONFIG = {
    "api_url": FAKE.url,
    "username": DEFAULT_USERNAME,
    "password": DEFAULT_PASSWORD,
    "start_date": "2023-01-01T00:00:00Z",
    "page_size": 7,
    "request_timeout": 10,
    "max_retries": 2,
    # Personal-data fields are pseudonymized by default: the standard suite runs with that default on.
    "pseudonymization_key": "standard-suite-test-key-0123456789",
}

TestTapZenGRC = get_tap_test_class(
    tap_class=TapZenGRC,
    config=CONFIG,
    suite_config=SuiteConfig(ignore_no_records=False),
)
