"""Singer tap for the Thought Industries "incoming" REST API."""

from __future__ import annotations
