"""Allow ``python -m harborline_tap_clari``, so tests and debuggers need no installed console script."""

from __future__ import annotations

from harborline_tap_clari.tap import TapClari

TapClari.cli()
