"""The SDK's standard tap tests, run against the fake Adaptive API (a real local HTTP server).

No test is excluded. Every stream has records: the config names a modeled sheet (for the three sheet streams) and the
version folder and allow-list of the data stream, so discovery, schema/record agreement, primary keys and the
per-attribute type checks run over the real request path of every stream, ``data`` included.
"""

from __future__ import annotations

import atexit

from conftest import KEY, make_config
from fake_api import FakeAdaptive
from singer_sdk.testing import SuiteConfig, get_tap_test_class

from harborline_tap_adaptive.tap import TapAdaptive

# The standard suite needs the config when the class is built, so the server starts at import and stops when the
# test process exits.
_API = FakeAdaptive().start()
atexit.register(_API.stop)

CONFIG = {**make_config(_API), "modeled_sheets": ["Personnel"], "dimensions": ["Region"], "pseudonymization_key": KEY}

TestTapAdaptive = get_tap_test_class(
    tap_class=TapAdaptive,
    config=CONFIG,
    suite_config=SuiteConfig(ignore_no_records=False, max_records_limit=None),
)
