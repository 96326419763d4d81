"""The SDK's standard tap tests against XC-shaped tables in a real PostgreSQL (`sql_driver: postgresql`).

No test is excluded: discovery, schema/record agreement, primary keys, final state and the per-attribute type checks
run over every one of the 40 streams, each with rows, through the real keyset query path (page_size 2, so every
table takes more than one page).
"""

from __future__ import annotations

import atexit

from conftest import KEY
from singer_sdk.testing import SuiteConfig, get_tap_test_class
from xc_fixture import create_tables, seed

from harborline_singer_shared.testing.postgres import PostgresServer
from harborline_tap_xactly.tap import TapXactly

# The standard suite needs the config when the class is built, so the server starts at import and stops when the
# test process exits.
_SERVER = PostgresServer().start()
atexit.register(_SERVER.stop)
_SERVER.create_database("xc_core")
create_tables(_SERVER.connect_kwargs("xc_core"), grant_reader=False)
seed(_SERVER.connect_kwargs("xc_core"))

CONFIG = {
    "sql_driver": "postgresql",
    "sql_dsn": _SERVER.dsn("xc_core"),
    "page_size": 2,
    "pseudonymization_key": KEY,
}

TestTapXactly = get_tap_test_class(
    tap_class=TapXactly,
    config=CONFIG,
    suite_config=SuiteConfig(ignore_no_records=False, max_records_limit=None),
)
