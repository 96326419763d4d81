"""Identifier naming: normalised, length-limited, and never two sources on one name.

Warehouses fold case and cap identifier length, so `Name` and `name`, or two 80-character names that share a
prefix, would land on one column and one would silently overwrite the other. The allocator here gives every
source name its own identifier, deterministically:

1. A source that already owns an identifier (the table's column comment records the source) keeps it.
2. Otherwise its normalised form: lower case, `[a-z0-9_]` only (other characters become `_`), a leading digit
   prefixed with `_`, and, past the dialect's byte limit, a readable prefix plus `_` and 8 hex digits of the
   SHA-256 of the source name.
3. If that is taken, the normalised form plus `_` and 8 hex digits of the source's hash (shortened the same way).

Sources are allocated in a fixed order (exact-normal names first, then sorted), so the same schema always gives the
same names, whatever order its properties arrive in.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping

_INVALID = re.compile(r"[^a-z0-9_]")
HASH_CHARS = 8


def _digest(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8")).hexdigest()[:HASH_CHARS]


def normalize_identifier(name: str) -> str:
    """Lower-case, replace anything outside `[a-z0-9_]` with `_`, never start with a digit or be empty."""
    out = _INVALID.sub("_", name.lower())
    if not out:
        return "_"
    if out[0].isdigit():
        out = "_" + out
    return out


def shorten(name: str, source: str, max_bytes: int) -> str:
    """`name` if it fits in `max_bytes`, else a readable prefix plus `_` and a hash of `source`."""
    if len(name.encode("utf-8")) <= max_bytes:
        return name
    keep = max_bytes - HASH_CHARS - 1
    return f"{name[:keep]}_{_digest(source)}"


def _with_suffix(base: str, suffix: str, max_bytes: int) -> str:
    """`base` + `suffix`, cutting `base` (never the suffix) to fit `max_bytes`."""
    return base[: max_bytes - len(suffix.encode("utf-8"))] + suffix


class NameAllocator:
    """Hands out identifiers within one namespace (the columns of a table, or the tables of a schema)."""

    def __init__(
        self,
        max_bytes: int,
        *,
        existing: Mapping[str, str] | None = None,
        reserved: Iterable[str] = (),
    ) -> None:
        """Start from what the warehouse already has.

        Args:
            max_bytes: the dialect's identifier limit (63 for PostgreSQL).
            existing: identifier -> source name it holds, read back from the warehouse.
            reserved: identifiers that no source may take (e.g. the load timestamp column).
        """
        self.max_bytes = max_bytes
        self._owner: dict[str, str] = dict(existing or {})
        self._by_source: dict[str, str] = {src: ident for ident, src in self._owner.items()}
        self._reserved = set(reserved)

    def _free(self, ident: str) -> bool:
        return ident not in self._owner and ident not in self._reserved

    def assign(self, sources: Iterable[str], display: Mapping[str, str] | None = None) -> dict[str, str]:
        """Identifier for each source key; repeated calls keep earlier answers.

        Args:
            sources: identities of the sources (what a column comment records).
            display: source key -> the name to normalise (default: the key itself), e.g. `parent__child` for a
                nested path whose key is its JSON array.
        """
        shown = display or {}
        wanted = list(dict.fromkeys(sources))
        new = [s for s in wanted if s not in self._by_source]

        def base_of(source: str) -> str:
            return normalize_identifier(shown.get(source, source))

        new.sort(key=lambda s: (base_of(s) != shown.get(s, s), shown.get(s, s), s))
        for source in new:
            base = base_of(source)
            candidate = shorten(base, source, self.max_bytes)
            if not self._free(candidate):
                candidate = _with_suffix(base, f"_{_digest(source)}", self.max_bytes)
                if candidate == shorten(base, source, self.max_bytes):  # a long name: that form was the first try
                    candidate = _with_suffix(base, f"_{_digest(source + chr(0))}", self.max_bytes)
            counter = 1
            while not self._free(candidate):  # both taken (hash collision, or names held by other columns)
                counter += 1
                candidate = _with_suffix(base, f"_{_digest(source)}_{counter}", self.max_bytes)
            self._owner[candidate] = source
            self._by_source[source] = candidate
        return {s: self._by_source[s] for s in wanted}
