"""Test helpers: run the tap in-process and pick messages apart; vendor-shaped fixtures."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

from harborline_singer_shared.retry import ManualClock
from harborline_tap_zengrc.tap import TapZenGRC

FIXTURES = Path(__file__).parent / "fixtures"
MOCK_BASE = "https://acme.api.zengrc.com/api/v2"
MOCK_USERNAME = "key-id-4e1c"
MOCK_PASSWORD = "key-secret-S3CR3T-9f2a7b"  # a test credential


def load_fixture(name: str) -> Any:
    """Load a vendor-shaped JSON page from tests/fixtures."""
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def select_streams(tap: TapZenGRC, names: set[str] | None) -> None:
    """Deselect every stream not in ``names`` (None keeps all)."""
    if names is None:
        return
    for name, stream in tap.streams.items():
        stream.selected = name in names


def sync(
    config: dict[str, Any],
    *,
    streams: set[str] | None = None,
    state: dict[str, Any] | None = None,
    clock: ManualClock | None = None,
) -> tuple[list[dict[str, Any]], TapZenGRC]:
    """Run the tap in-process and return the Singer messages it wrote (and the tap).

    Streams get a ``ManualClock`` so retries never really sleep.
    """
    tap = TapZenGRC(config=dict(config), state=state, validate_config=True)
    select_streams(tap, streams)
    manual = clock or ManualClock()
    for stream in tap.streams.values():
        stream.clock = manual
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        tap.sync_all()
    messages = [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]
    return messages, tap


def records(messages: list[dict[str, Any]], stream: str | None = None) -> list[dict[str, Any]]:
    """The record bodies of RECORD messages (of one stream if given)."""
    return [m["record"] for m in messages if m["type"] == "RECORD" and (stream is None or m["stream"] == stream)]


def last_state(messages: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The value of the last STATE message."""
    states = [m["value"] for m in messages if m["type"] == "STATE"]
    return states[-1] if states else None
