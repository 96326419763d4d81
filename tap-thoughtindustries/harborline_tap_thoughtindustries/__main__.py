"""Run the tap as ``python -m harborline_tap_thoughtindustries``."""

from __future__ import annotations

from harborline_tap_thoughtindustries.tap import TapThoughtIndustries

TapThoughtIndustries.cli()
