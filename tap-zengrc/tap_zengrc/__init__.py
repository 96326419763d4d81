"""Singer tap for the ZenGRC (Reciprocity) REST API v2.

The package holds only what is specific to ZenGRC (object types, record schemas, the envelope and
the next-link pagination); retrying, auth errors, pacing and pseudonymization come from
``harborline_singer_shared``.
"""

from __future__ import annotations

__version__ = "0.1.0"
