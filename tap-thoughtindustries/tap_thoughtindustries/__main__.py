"""Run the tap as ``python -m tap_thoughtindustries``."""

from __future__ import annotations

from tap_thoughtindustries.tap import TapThoughtIndustries

TapThoughtIndustries.cli()
