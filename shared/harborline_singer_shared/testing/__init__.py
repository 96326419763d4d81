"""Test helpers shared by every Harborline plugin's test suite.

Why a package of its own: production modules must never import test machinery (it pulls in
pytest, requests-mock and server binaries), so everything test-only lives here and only tests and
``conftest.py`` files import it. Enable the fixtures in a package's ``tests/conftest.py`` with::

    pytest_plugins = ["harborline_singer_shared.testing.fixtures"]
"""

from __future__ import annotations

from harborline_singer_shared.testing.http import (
    FixtureRequest,
    FixtureResponse,
    FixtureServer,
    iter_json_lines,
    load_json_fixture,
    register_json_pages,
    register_responses,
)
from harborline_singer_shared.testing.postgres import PostgresServer, PostgresServerError
from harborline_singer_shared.testing.taps import (
    SyncResult,
    assert_meltano_yml_declares_settings,
    assert_readme_settings_match_about,
    assert_root_meltano_yml_matches,
    pipe_to_target_postgres,
    run_tap,
)

__all__ = [
    "FixtureRequest",
    "FixtureResponse",
    "FixtureServer",
    "PostgresServer",
    "PostgresServerError",
    "SyncResult",
    "assert_meltano_yml_declares_settings",
    "assert_readme_settings_match_about",
    "assert_root_meltano_yml_matches",
    "iter_json_lines",
    "load_json_fixture",
    "pipe_to_target_postgres",
    "register_json_pages",
    "register_responses",
    "run_tap",
]
