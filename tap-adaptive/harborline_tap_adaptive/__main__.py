"""Allow ``python -m harborline_tap_adaptive``, so tests and debuggers need no installed console script."""

from __future__ import annotations

from harborline_tap_adaptive.tap import TapAdaptive

TapAdaptive.cli()
