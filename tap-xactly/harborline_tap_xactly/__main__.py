"""Allow ``python -m harborline_tap_xactly``, so tests and debuggers need no installed console script."""

from __future__ import annotations

from harborline_tap_xactly.tap import TapXactly

TapXactly.cli()
