"""Allow ``python -m harborline_tap_zengrc``, so tests and debuggers need no installed console script."""

from __future__ import annotations

from harborline_tap_zengrc.tap import TapZenGRC

TapZenGRC.cli()
