"""Singer tap for Clari's forecast exports.

The package holds only what is specific to Clari (the asynchronous export job, the results document, fiscal
quarters and the five streams); retrying, auth errors and pseudonymization come from ``harborline_singer_shared``.
"""

from __future__ import annotations

from importlib.metadata import version

#: The one source of the version is pyproject.toml; this reads what was installed.
__version__ = version("harborline-tap-clari")
