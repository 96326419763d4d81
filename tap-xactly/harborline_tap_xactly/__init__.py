"""Singer tap for Xactly Connect.

The package holds only what is specific to Xactly (the XC tables and their keys, keyset paging over any DB-API
driver, the Connect SOAP API); retry backoff, start-up checks and pseudonymization come from
``harborline_singer_shared``.
"""

from __future__ import annotations

from importlib.metadata import version

#: The one source of the version is pyproject.toml; this reads what was installed.
__version__ = version("harborline-tap-xactly")
