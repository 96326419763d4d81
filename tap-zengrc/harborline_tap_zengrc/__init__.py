"""Singer tap for the ZenGRC (Reciprocity) REST API v2.

The package holds only what is specific to ZenGRC (object types, record schemas, the envelope and
the next-link pagination); retrying, auth errors, pacing and pseudonymization come from
``harborline_singer_shared``.
"""

from __future__ import annotations

from importlib.metadata import version

#: The one source of the version is pyproject.toml; this reads what was installed.
__version__ = version("harborline-tap-zengrc")
