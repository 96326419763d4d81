"""Fixtures for the target-postgres tests (helpers live in tp_helpers.py, importable from every test module)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from tp_helpers import Db, new_schema, shared_database


@pytest.fixture
def db(tmp_path: Path):
    database = Db(shared_database(), new_schema(), tmp_path)
    yield database
    database.close()


@pytest.fixture(autouse=True)
def _no_meltano_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests decide the schema themselves; a MELTANO_EXTRACTOR_NAMESPACE from the caller must not leak in."""
    monkeypatch.delenv("MELTANO_EXTRACTOR_NAMESPACE", raising=False)
    for key in list(os.environ):
        if key.startswith("TARGET_POSTGRES_"):
            monkeypatch.delenv(key)
